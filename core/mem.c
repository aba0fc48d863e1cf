/*
** mem.c: counted, aligned allocation with a GC hook (TH's heap tracking, done once).
** The hook runs on the thread that owns the Lua state only; worker threads never call it.
*/
#include <stdatomic.h>
#include <stdlib.h>
#include <threads.h>

#include "mem.h"

static atomic_size_t held;
static void (*gc_hook)(void *);
static void *gc_ud;
static size_t soft_limit, base_limit;
static _Thread_local int in_hook;
static thread_local int is_main = 0;

void trl_mem_set_hook (void (*hook)(void *ud), void *ud, size_t limit) {
  gc_hook = hook;
  gc_ud = ud;
  soft_limit = base_limit = limit;
  is_main = 1;
}

static void run_hook (void) {
  if (gc_hook && is_main && !in_hook) {
    in_hook = 1;
    gc_hook(gc_ud);
    in_hook = 0;
  }
}

void *trl_alloc (size_t nbytes) {
  size_t n = (nbytes + 63) & ~(size_t)63;
  if (n == 0) n = 64;
  if (soft_limit && is_main && atomic_load(&held) + n > soft_limit) {
    run_hook();  // then let the heap grow to twice what survived, as Lua's own GC pause does
    size_t h = atomic_load(&held) * 2;
    soft_limit = h > base_limit ? h : base_limit;
  }
  void *p = aligned_alloc(64, n);
  if (p == NULL) {
    run_hook();
    p = aligned_alloc(64, n);
    if (p == NULL) return NULL;
  }
  atomic_fetch_add(&held, n);
  return p;
}

void trl_free (void *p, size_t nbytes) {
  if (p == NULL) return;
  size_t n = (nbytes + 63) & ~(size_t)63;
  if (n == 0) n = 64;
  atomic_fetch_sub(&held, n);
  free(p);
}

size_t trl_mem_bytes (void) {
  return atomic_load(&held);
}
