/*
** test_mem.c: the block cache of mem.c. Freed blocks of 64 KiB and up are kept for reuse as
** long as live + cached bytes stay within the peak of live bytes plus the slack
** (TRL_CACHE_MB, set to 2 here before the first allocation); past that bound the least
** recently freed blocks go first, and the block just freed is kept. A request that finds no
** block of its class may take one up to 4x larger (not with trl_mem_exact on, nor past the
** peak). Cached blocks carry a 64-byte header: a request of a class size minus 64 bytes
** fills that class exactly (REQ). On Linux an evicted block's pages start the new block.
*/
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mem.h"

#define MIB ((size_t)1 << 20)
#define REQ(n) ((n) - 64)

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
  // a miss of 3 MiB: live + cached would be 5.25 MiB against a bound of 3 + 2; evicting the
  // least recently freed block (a, 1 MiB) is enough, so b stays
  void *c = trl_alloc(REQ(3 * MIB));
  CHECK(c != NULL);
  CHECK_EQ(trl_mem_cached(), MIB + MIB / 4);
  void *b3 = trl_alloc(REQ(MIB + MIB / 4));
  CHECK(b3 == b);
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
  // not with trl_mem_exact on (a recorded step): a new 1 MiB block
  trl_mem_exact(1);
  void *r2 = trl_alloc(REQ(MIB));
  CHECK(r2 != big && r2 != NULL);
  CHECK_EQ(trl_mem_cached(), 4 * MIB);
  trl_free(r2, REQ(MIB));
  trl_mem_exact(0);
  // nor past the peak: with 2 MiB live, taking the 4 MiB block would hold 6 > 5
  void *x = trl_alloc(REQ(MIB));   // r2's block, its own class
  CHECK(x == r2);
  void *y = trl_alloc(REQ(MIB));
  CHECK(y != big && y != NULL);
  CHECK_EQ(trl_mem_cached(), 4 * MIB);
  CHECK_EQ(trl_mem_bytes(), 3 * MIB);
  // up to 8 classes (4 per power of two) larger: 1 MiB takes the 4 MiB block, 768 KiB
  // (10 classes below it) does not
  trl_free(x, REQ(MIB)), trl_free(y, REQ(MIB)), trl_free(small, REQ(MIB));
  trl_mem_trim();
  big = trl_alloc(REQ(4 * MIB));
  trl_free(big, REQ(4 * MIB));
  void *z = trl_alloc(REQ(768 * 1024));
  CHECK(z != big);
  void *w = trl_alloc(REQ(MIB));
  CHECK(w == big);
  trl_free(z, REQ(768 * 1024)), trl_free(w, REQ(MIB));
  CHECK_EQ(trl_mem_bytes(), 0);
  trl_mem_trim();
#if defined(__linux__) && !defined(__SANITIZE_ADDRESS__)   // (mem.c: malloc under ASan)
  // An evicted block's pages go to the new block that evicted it (mremap), not back to the
  // system: 8 MiB is past every earlier peak, so live + cached (4 MiB) + 8 > 8 + 2 evicts
  // the cached 4 MiB block, whose bytes then start the new one; the rest is fresh (zero).
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
#endif
  return check_summary();
}
