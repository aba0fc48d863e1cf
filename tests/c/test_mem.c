/*
** test_mem.c: the block cache of mem.c. Freed blocks of 64 KiB and up are kept for reuse as
** long as live + cached bytes stay within the peak of live bytes plus the slack
** (TRL_CACHE_MB, set to 2 here before the first allocation); past that bound the least
** recently freed blocks go first, and the block just freed is kept. A request that finds no
** block of its class may take one up to 4x larger (not with trl_mem_exact on, nor past the
** peak). Cached blocks carry a 64-byte header: a request of a class size minus 64 bytes
** fills that class exactly (REQ). On Linux (RECYCLING) a miss takes the cached blocks' pages,
** least recently freed first, and a block larger than the request gives its head and stays
** cached, smaller; elsewhere (and under ASan) a miss maps fresh memory.
*/
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mem.h"

#define MIB ((size_t)1 << 20)
#define REQ(n) ((n) - 64)
#if defined(__linux__) && !defined(__SANITIZE_ADDRESS__)   // (mem.c: malloc under ASan)
#define RECYCLING 1
#else
#define RECYCLING 0
#endif

int main (void) {
  setenv("TRL_CACHE_MB", "2", 1);
  CHECK(trl_mem_exact(0) == 1);   // on, and staying on, for threads without the GC hook
  CHECK(trl_mem_exact(1) == 1);
  trl_mem_set_hook(NULL, NULL, NULL, 0);   // this thread installs one (none): now it may turn
  CHECK(trl_mem_exact(1) == 0);            // it off, and starts off
  // two size classes, freed oldest first: both fit (cached 2.25 MiB <= peak 2.25 + 2)
  void *a = trl_alloc(REQ(MIB)), *b = trl_alloc(REQ(MIB + MIB / 4));
  CHECK(a && b);
  CHECK((((size_t)a | (size_t)b) & 63) == 0);
  trl_free(a, REQ(MIB));
  trl_free(b, REQ(MIB + MIB / 4));
  CHECK_EQ(trl_mem_cached(), 2 * MIB + MIB / 4);
  CHECK_EQ(trl_mem_bytes(), 0);
  // the same sizes come back from the cache: no new memory, the same blocks
  void *b2 = trl_alloc(REQ(MIB + MIB / 4)), *a2 = trl_alloc(REQ(MIB));
  CHECK(b2 == b && a2 == a);
  CHECK_EQ(trl_mem_cached(), 0);
  trl_free(a2, REQ(MIB));              // a is now the older of the two
  trl_free(b2, REQ(MIB + MIB / 4));
  void *c = trl_alloc(REQ(3 * MIB)), *b3;
  CHECK(c != NULL);
#if RECYCLING
  // a miss of 3 MiB takes a's and b's pages (least recently freed first), not fresh ones
  CHECK_EQ(trl_mem_cached(), 0);
  b3 = trl_alloc(REQ(MIB + MIB / 4));
  CHECK(b3 != NULL);
#else
  // a miss of 3 MiB: live + cached would be 5.25 MiB against a bound of 3 + 2; evicting the
  // least recently freed block (a, 1 MiB) is enough, so b stays
  CHECK_EQ(trl_mem_cached(), MIB + MIB / 4);
  b3 = trl_alloc(REQ(MIB + MIB / 4));
  CHECK(b3 == b);
#endif
  // freeing c: live 1.25 + cached 3 fits the bound (peak 4.25 + 2)
  trl_free(c, REQ(3 * MIB));
  CHECK_EQ(trl_mem_cached(), 3 * MIB);
  trl_free(b3, REQ(MIB + MIB / 4));
  CHECK_EQ(trl_mem_bytes(), 0);
  CHECK_EQ(trl_mem_peak(), 3 * MIB + MIB + MIB / 4);
  trl_mem_trim();
  CHECK_EQ(trl_mem_cached(), 0);

  // A larger block for a request whose class is empty: the 4 MiB block serves 1 MiB (live
  // 1 + 4 stays within the peak of 5), counts as 4 MiB held and goes back to its own class.
  CHECK(trl_mem_exact(0) == 1);
  void *big = trl_alloc(REQ(4 * MIB)), *small = trl_alloc(REQ(MIB));
  trl_free(big, REQ(4 * MIB));
  CHECK_EQ(trl_mem_cached(), 4 * MIB);
  void *r = trl_alloc(REQ(MIB));
  CHECK(r == big);
  CHECK_EQ(trl_mem_cached(), 0);
  CHECK_EQ(trl_mem_bytes(), 5 * MIB);
  trl_free(r, REQ(MIB));
  CHECK_EQ(trl_mem_cached(), 4 * MIB);
  CHECK_EQ(trl_mem_bytes(), MIB);
  // not with trl_mem_exact on (a recorded step): a new 1 MiB block (which, recycling, takes
  // the 4 MiB block's first 1 MiB of pages; 3 MiB of it stays cached)
  trl_mem_exact(1);
  void *r2 = trl_alloc(REQ(MIB));
  CHECK(r2 != big && r2 != NULL);
  CHECK_EQ(trl_mem_cached(), RECYCLING ? 3 * MIB : 4 * MIB);
  trl_free(r2, REQ(MIB));
  trl_mem_exact(0);
  // nor past the peak: with 2 MiB live, taking the 4 MiB block would hold 6 > 5 (recycling:
  // the 3 MiB left of it would hold 5, and is taken)
  void *x = trl_alloc(REQ(MIB));   // r2's block, its own class
  CHECK(x == r2);
  void *y = trl_alloc(REQ(MIB));
  CHECK(y != NULL);
  if (RECYCLING) CHECK(y == (char *)big + MIB);
  else CHECK(y != big);
  CHECK_EQ(trl_mem_cached(), RECYCLING ? 0 : 4 * MIB);
  CHECK_EQ(trl_mem_bytes(), RECYCLING ? 5 * MIB : 3 * MIB);
  // up to 8 classes (4 per power of two) larger: 1 MiB takes the 4 MiB block, 768 KiB
  // (10 classes below it) does not (recycling, it takes its head, and 1 MiB the 3 MiB left)
  trl_free(x, REQ(MIB)), trl_free(y, REQ(MIB)), trl_free(small, REQ(MIB));
  trl_mem_trim();
  big = trl_alloc(REQ(4 * MIB));
  trl_free(big, REQ(4 * MIB));
  void *z = trl_alloc(REQ(768 * 1024));
  CHECK(z != big);
  void *w = trl_alloc(REQ(MIB));
  CHECK(w == (RECYCLING ? (char *)big + 768 * 1024 : big));
  trl_free(z, REQ(768 * 1024)), trl_free(w, REQ(MIB));
  CHECK_EQ(trl_mem_bytes(), 0);
  trl_mem_trim();
#if RECYCLING
  // A miss takes cached blocks' pages (mremap), least recently freed first, not fresh ones
  // from the system: the cached 4 MiB block's bytes start the new 8 MiB one; the rest is
  // fresh (zero).
  unsigned char *old = trl_alloc(REQ(4 * MIB));
  memset(old, 0xAB, REQ(4 * MIB));
  trl_free(old, REQ(4 * MIB));
  CHECK_EQ(trl_mem_cached(), 4 * MIB);
  unsigned char *nu = trl_alloc(REQ(8 * MIB));
  CHECK_EQ(trl_mem_cached(), 0);
  CHECK(nu[0] == 0xAB && nu[REQ(4 * MIB) - 1] == 0xAB);
  CHECK(nu[4 * MIB] == 0 && nu[REQ(8 * MIB) - 1] == 0);
  trl_free(nu, REQ(8 * MIB));
  trl_mem_trim();
  // A block larger than the request gives its head and stays cached as the largest classes
  // that fit its tail, in its place in the LRU order: 8 MiB written 0xAB, then 3 MiB with
  // trl_mem_exact on (no larger block) takes its first 3 MiB; the other 5 MiB stay cached as
  // blocks of 5 MiB (a class) and keep their bytes. A 2.5 MiB request then finds no block of
  // its class and takes the head of the 5 MiB block: 2.5 MiB stays cached.
  trl_mem_exact(1);
  unsigned char *big8 = trl_alloc(REQ(8 * MIB));
  memset(big8, 0xAB, REQ(8 * MIB));
  trl_free(big8, REQ(8 * MIB));
  unsigned char *h3 = trl_alloc(REQ(3 * MIB));
  CHECK(h3[0] == 0xAB && h3[REQ(3 * MIB) - 1] == 0xAB);
  CHECK_EQ(trl_mem_cached(), 5 * MIB);
  unsigned char *t5 = trl_alloc(REQ(5 * MIB));   // the tail, its own class: a hit
  CHECK(t5 == big8 + 3 * MIB);
  CHECK(t5[0] == 0xAB && t5[REQ(5 * MIB) - 1] == 0xAB);
  CHECK_EQ(trl_mem_cached(), 0);
  trl_free(t5, REQ(5 * MIB));
  unsigned char *h25 = trl_alloc(REQ(2 * MIB + MIB / 2));
  CHECK(h25 != NULL && h25[0] == 0xAB);
  CHECK_EQ(trl_mem_cached(), 2 * MIB + MIB / 2);
  trl_free(h3, REQ(3 * MIB)), trl_free(h25, REQ(2 * MIB + MIB / 2));
  CHECK_EQ(trl_mem_bytes(), 0);
  trl_mem_trim();
  // Only resident pages move: a 4 MiB + 64 KiB tensor in its 5 MiB block leaves the block's
  // last 960 KiB untouched, so a new 6 MiB block (5.25 MiB used) takes the 4 MiB + 64 KiB
  // first, then all of a 1 MiB block freed after it (its bytes follow), and faults only its
  // last 192 KiB in; nothing stays cached.
  unsigned char *d1 = trl_alloc(REQ(4 * MIB + MIB / 16)), *d2 = trl_alloc(REQ(MIB));
  memset(d1, 0xAB, REQ(4 * MIB + MIB / 16));
  memset(d2, 0xCD, REQ(MIB));
  trl_free(d1, REQ(4 * MIB + MIB / 16));
  trl_free(d2, REQ(MIB));
  CHECK_EQ(trl_mem_cached(), 6 * MIB);
  unsigned char *q = trl_alloc(REQ(5 * MIB + MIB / 4));
  CHECK_EQ(trl_mem_cached(), 0);
  CHECK(q[0] == 0xAB && q[REQ(4 * MIB + MIB / 16) - 1] == 0xAB);
  CHECK(q[4 * MIB + MIB / 16] == 0xCD && q[5 * MIB + MIB / 16 - 65] == 0xCD);
  CHECK(q[5 * MIB + MIB / 16] == 0 && q[REQ(5 * MIB + MIB / 4) - 1] == 0);
  trl_free(q, REQ(5 * MIB + MIB / 4));
  CHECK_EQ(trl_mem_bytes(), 0);
  trl_mem_trim();
  // A conv pack's buffer (trl_alloc_direct, not counted) takes cached pages as a miss does,
  // and when freed its pages become a cached block: a 4 MiB block's bytes fill a 4 MiB pack
  // (past the block's header), and the pack, freed, serves the next 4 MiB request, bytes
  // and all.
  unsigned char *tb = trl_alloc(REQ(4 * MIB));
  memset(tb, 0xAB, REQ(4 * MIB));
  trl_free(tb, REQ(4 * MIB));
  unsigned char *pk = trl_alloc_direct(4 * MIB);
  CHECK(pk != NULL && ((size_t)pk & 4095) == 0);
  CHECK_EQ(trl_mem_cached(), 0);
  CHECK_EQ(trl_mem_bytes(), 0);
  CHECK(pk[64] == 0xAB && pk[4 * MIB - 1] == 0xAB);
  memset(pk, 0xEF, 4 * MIB);
  trl_free_direct(pk, 4 * MIB);
  CHECK_EQ(trl_mem_cached(), 4 * MIB);
  unsigned char *tb2 = trl_alloc(REQ(4 * MIB));
  CHECK(tb2 == pk + 64 && tb2[0] == 0xEF && tb2[REQ(4 * MIB) - 1] == 0xEF);
  CHECK_EQ(trl_mem_cached(), 0);
  trl_free(tb2, REQ(4 * MIB));
  trl_mem_exact(0);
  trl_mem_trim();
#else
  // Elsewhere a pack's buffer is mapped fresh and unmapped when freed: the cache stays as it was.
  unsigned char *pk = trl_alloc_direct(4 * MIB);
  CHECK(pk != NULL);
  memset(pk, 0xEF, 4 * MIB);
  size_t before = trl_mem_cached();
  trl_free_direct(pk, 4 * MIB);
  CHECK_EQ(trl_mem_cached(), before);
#endif
  return check_summary();
}
