/*
** test_mem.c: the block cache of mem.c. Freed blocks of 64 KiB and up are kept for reuse as
** long as live + cached bytes stay within the peak of live bytes plus the slack
** (TRL_CACHE_MB, set to 2 here before the first allocation); past that bound the least
** recently freed blocks go first, and the block just freed is kept.
*/
#include <stdlib.h>

#include "check.h"
#include "mem.h"

#define MIB ((size_t)1 << 20)

int main (void) {
  setenv("TRL_CACHE_MB", "2", 1);
  // two size classes, freed oldest first: both fit (cached 2.25 MiB <= peak 2.25 + 2)
  void *a = trl_alloc(MIB), *b = trl_alloc(MIB + MIB / 4);
  CHECK(a && b);
  trl_free(a, MIB);
  trl_free(b, MIB + MIB / 4);
  CHECK_EQ(trl_mem_cached(), 2 * MIB + MIB / 4);
  CHECK_EQ(trl_mem_bytes(), 0);
  // the same sizes come back from the cache: no new memory, the same blocks
  void *b2 = trl_alloc(MIB + MIB / 4), *a2 = trl_alloc(MIB);
  CHECK(b2 == b && a2 == a);
  CHECK_EQ(trl_mem_cached(), 0);
  trl_free(a2, MIB);              // a is now the older of the two
  trl_free(b2, MIB + MIB / 4);
  // a miss of 3 MiB: live + cached would be 5.25 MiB against a bound of 3 + 2; evicting the
  // least recently freed block (a, 1 MiB) is enough, so b stays
  void *c = trl_alloc(3 * MIB);
  CHECK(c != NULL);
  CHECK_EQ(trl_mem_cached(), MIB + MIB / 4);
  void *b3 = trl_alloc(MIB + MIB / 4);
  CHECK(b3 == b);
  // freeing c: live 1.25 + cached 3 fits the bound (peak 4.25 + 2)
  trl_free(c, 3 * MIB);
  CHECK_EQ(trl_mem_cached(), 3 * MIB);
  trl_free(b3, MIB + MIB / 4);
  CHECK_EQ(trl_mem_bytes(), 0);
  CHECK_EQ(trl_mem_peak(), 3 * MIB + MIB + MIB / 4);
  trl_mem_trim();
  CHECK_EQ(trl_mem_cached(), 0);
  return check_summary();
}
