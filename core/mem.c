/*
** mem.c: counted, aligned allocation with a block cache and a GC hook (TH's heap tracking,
** done once). Blocks of 64 KiB and more are rounded to size classes (4 per power of two) and
** kept on a free list when released, so a training step that allocates the same shapes every
** iteration stops paying for mmap and page faults after warm-up (PyTorch's caching allocator
** does the same). The cache may hold any amount as long as live + cached bytes stay within the
** peak of live bytes plus a slack ($TRL_CACHE_MB, default 256): a step frees in backward what
** the next forward allocates again, and the process stays near its peak of live tensors. Past
** that bound the least recently freed blocks go back to malloc first (shapes no longer in use),
** never the ones the current step keeps reusing. Outside a recorded step (trl_mem_exact), a
** request whose class has no cached block may take one of up to 4x the size, within the peak:
** inference at batch 128 frees the stem's 400 MB output early and asks for ever smaller
** blocks as the net goes deeper; with exact classes the bound made it evict and fault in
** about 1.6 GB per step (bench/NOTES.md 39). On Linux a miss takes the pages of cached
** blocks, least recently freed first (mremap; a larger block gives its head and stays cached,
** smaller), so a step whose blocks do not match the last step's classes reuses resident
** memory instead of faulting fresh zeroed pages in (NOTES 40, 64).
** The hooks run on the thread that installed them only; workers never call them:
** each large allocation advances Lua's incremental GC by its size (as if Lua had allocated it),
** and a full GC runs when malloc fails or tensor memory passes the soft limit.
*/
#define _GNU_SOURCE   // mremap
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mem.h"

#define CACHE_MIN (64u << 10)         // smaller blocks go straight to malloc
#define NCLASS 160                    // 4 classes per power of two, 64 KiB .. 2^56
#define SLACK_DEFAULT ((size_t)256 << 20)  // live + cached <= peak live + this ($TRL_CACHE_MB)

// A cached block: its first bytes link it into its class's list (newest first), record when
// it was freed, so eviction can take the least recently freed blocks first, and how many of
// its bytes (from its start, whole pages) are resident: those its largest tensor wrote, or
// recycle moved in. Its tail past them was never touched (class rounding), and moving that
// to a new block would move no pages. 'res' keeps its place while the block is in use (the
// header, below), so it outlives each tensor.
typedef struct block { struct block *next; uint64_t stamp; size_t res; } block;

// Blocks of CACHE_MIN and up start with a header of HDR bytes (the caller's pointer is past
// it) holding the block's size class (an int at its start: a request may get a block of a
// larger class) and its resident bytes (at block's 'res').
#define HDR 64
_Static_assert(sizeof(block) <= HDR, "a cached block's fields fit in the header");
#define UPSIZE 8   // a miss may take a cached block up to 8 classes (4x) larger

static atomic_size_t held;
static void (*gc_hook)(void *);
static void (*gc_step)(void *, size_t);
static void *gc_ud;
static size_t soft_limit, base_limit;
static _Thread_local int in_hook, is_main, exact_only = 1;   // see trl_mem_exact

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static block *cache[NCLASS];
static size_t cached, slack = SLACK_DEFAULT;
static int slack_read;
static size_t peak_held;
static uint64_t ticks;   // under cache_lock: the stamp of the next freed block

// Size class of 'n' (>= CACHE_MIN) and its rounded size.
static int size_class (size_t n, size_t *rounded) {
  int e = 63 - __builtin_clzll((unsigned long long)n);   // 2^e <= n < 2^(e+1)
  size_t q = (size_t)1 << (e - 2), base = (size_t)1 << e;  // quarter steps
  size_t k = (n - base + q - 1) / q;                        // 0..4
  *rounded = base + k * q;
  int c = (e - 16) * 4 + (int)k;
  return c < NCLASS ? c : -1;
}

static void unmap_block (void *b, int c);

static void cache_trim (void) {
  pthread_mutex_lock(&cache_lock);
  for (int c = 0; c < NCLASS; c++) {
    while (cache[c]) {
      block *b = cache[c];
      cache[c] = b->next;
      unmap_block(b, c);
    }
  }
  cached = 0;
  pthread_mutex_unlock(&cache_lock);
}

void trl_mem_set_hook (void (*hook)(void *ud), void (*step)(void *ud, size_t kb), void *ud,
                       size_t limit) {
  gc_hook = hook;
  gc_step = step;
  gc_ud = ud;
  soft_limit = base_limit = limit;
  is_main = 1;
  exact_only = 0;
}

static void run_hook (void) {
  if (gc_hook && is_main && !in_hook) {
    in_hook = 1;
    gc_hook(gc_ud);
    in_hook = 0;
  }
}

// TRL_GCSTRESS=1: report every allocation, and the binding then runs a full GC each time, so
// a tensor that C code uses without anchoring it is freed at once (a debug mode for tests).
static int gc_stress (void) {
  static int v = -1;
  if (v < 0) v = getenv("TRL_GCSTRESS") != NULL && getenv("TRL_GCSTRESS")[0] == '1';
  return v;
}

// Blocks of CACHE_MIN and up (their sizes are whole pages) are mapped and unmapped here, so
// that evicting one gives its memory back to the system, or its pages to a new block. Under
// AddressSanitizer they come from malloc instead, which it guards.
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#if defined(__linux__) && defined(MREMAP_FIXED) && !defined(SANITIZED)
#define RECYCLE 1   // a miss takes cached blocks' pages (recycle)
#endif

// With TRL_HUGEPAGES=1, blocks of HUGE_MIN and up ask for 2 MiB pages (transparent huge
// pages, where the kernel has them in 'madvise' mode) for the 2 MiB-aligned part of the block:
// one page fault per 2 MiB instead of 512. Off by default: faulting a huge page can wait for
// the kernel to compact memory, and one run in three of the notebook's training took 25-30%
// longer with it (bench/NOTES.md 30).
#define HUGE_MIN ((size_t)8 << 20)
#define HUGE_PAGE ((uintptr_t)2 << 20)

void trl_mem_advise_huge (void *p, size_t n) {
#ifdef MADV_HUGEPAGE
  uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t b = ((uintptr_t)p + n) & ~(HUGE_PAGE - 1);
  if (b > a) madvise((void *)a, b - a, MADV_HUGEPAGE);   // advice only: failure is harmless
#else
  (void)p, (void)n;
#endif
}

static void ask_huge (void *p, size_t n) {
  static int on = -1;
  if (on < 0) on = getenv("TRL_HUGEPAGES") && getenv("TRL_HUGEPAGES")[0] == '1';
  if (on) trl_mem_advise_huge(p, n);
}

static size_t class_size (int c);

static void *map_once (size_t n) {
#ifdef SANITIZED
  return aligned_alloc(4096, n);
#else
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
#endif
}

// A new block of class c (untouched: its pages come at the first write, or from recycle).
static void *map_block (int c) {
  size_t n = class_size(c);
  void *p = map_once(n);
  if (p == NULL) {
    cache_trim();
    run_hook();
    p = map_once(n);
  }
  if (p && n >= HUGE_MIN) ask_huge(p, n);
  return p;
}

static void unmap_once (void *p, size_t n) {
#ifdef SANITIZED
  (void)n;
  free(p);
#else
  munmap(p, n);
#endif
}

static void unmap_block (void *b, int c) { unmap_once(b, class_size(c)); }

// n rounded up to whole pages.
static size_t page_up (size_t n) {
  static size_t pg;
  if (!pg) pg = (size_t)sysconf(_SC_PAGESIZE);
  return (n + pg - 1) / pg * pg;
}

// Smaller blocks come from malloc.
static void *raw_alloc (size_t n) {
  void *p = aligned_alloc(64, n);
  if (p == NULL) {
    cache_trim();
    run_hook();
    p = aligned_alloc(64, n);
  }
  return p;
}

void trl_mem_trim (void) { cache_trim(); }

// With cache_lock held: the slack, read from the environment once.
static size_t cache_slack (void) {
  if (!slack_read) {
    const char *e = getenv("TRL_CACHE_MB");
    if (e) slack = (size_t)strtoull(e, NULL, 10) << 20;
    slack_read = 1;
  }
  return slack;
}

// Class c holds blocks of 2^e + k * 2^(e-2) bytes.
static size_t class_size (int c) {
  int e = c / 4 + 16, k = c % 4;
  return ((size_t)1 << e) + (size_t)k * ((size_t)1 << (e - 2));
}

// With cache_lock held: the least recently freed cached block, taken off its list (lists run
// newest to oldest, so it is some list's last block); *cls gets its class.
static block *take_oldest (int *cls) {
  block **oldest = NULL;
  int oc = -1;
  for (int c = 0; c < NCLASS; c++)
    for (block **l = &cache[c]; *l; l = &(*l)->next)
      if (!(*l)->next && (oldest == NULL || (*l)->stamp < (*oldest)->stamp)) oldest = l, oc = c;
  block *b = *oldest;
  *oldest = NULL;
  cached -= class_size(oc);
  *cls = oc;
  return b;
}

// With cache_lock held: evict cached blocks, least recently freed first, until live + cached
// + n fits within the peak of live bytes (counting n) plus the slack. Blocks that were not
// reused for longest go first: they belong to shapes the program stopped using (warm-up, an
// earlier model), while the ones just freed are the working set of the current step.
static void evict_lru (size_t live, size_t n) {
  size_t peak = live + n > peak_held ? live + n : peak_held, bound = peak + cache_slack();
  while (cached && live + n + cached > bound) {
    int c;
    block *b = take_oldest(&c);
    unmap_block(b, c);
  }
}

#ifdef RECYCLE
// With cache_lock held: the n bytes at r (whole pages, the tail of a block whose head went to
// recycle; its first 'res' bytes resident) as cached blocks of the largest classes that fit,
// each freed at 'stamp' (their place in the LRU order is their old block's). Pieces with no
// resident page, and less than CACHE_MIN left over, are unmapped: as blocks they would only
// fault their pages in again.
static void recache (char *r, size_t n, size_t res, uint64_t stamp) {
  while (n >= CACHE_MIN && res > 0) {
    int e = 63 - __builtin_clzll((unsigned long long)n);
    int c = (e - 16) * 4 + (int)((n - ((size_t)1 << e)) >> (e - 2));   // rounded down
    if (c >= NCLASS) c = NCLASS - 1;
    size_t cn = class_size(c);
    block *b = (block *)r, **l = &cache[c];
    while (*l && (*l)->stamp > stamp) l = &(*l)->next;
    b->stamp = stamp;
    b->res = res < cn ? res : cn;
    b->next = *l;
    *l = b;
    cached += cn;
    r += cn;
    n -= cn;
    res -= b->res;
  }
  if (n) unmap_once(r, n);
}

// With cache_lock held: move cached blocks' resident pages, least recently freed first, into
// 'dest' (a new block, just mapped and untouched) up to its first 'used' bytes (a whole
// number of pages). The new block then starts with resident pages (mremap moves page table
// entries: ~0.01 us a page, where faulting a fresh page in and zeroing it took 3.4 us on a
// 2-core VM) instead of growing the process while the cache holds memory that may never be
// asked for in its class again. A block with more resident bytes than what is left to fill
// gives its head and stays cached, smaller.
static void recycle (char *dest, size_t used) {
  size_t filled = 0;
  while (cached && filled < used) {
    int c;
    block *b = take_oldest(&c);
    size_t bn = class_size(c), res = b->res < bn ? b->res : bn;
    size_t take = used - filled < res ? used - filled : res;
    uint64_t stamp = b->stamp;
    if (take == 0) { unmap_block(b, c); continue; }
    if (mremap(b, take, take, MREMAP_MAYMOVE | MREMAP_FIXED, dest + filled) == MAP_FAILED) {
      unmap_block(b, c);   // (the kernel's map count, say): the rest of dest faults in
      break;
    }
    filled += take;
    if (take < bn) recache((char *)b + take, bn - take, res - take, stamp);
  }
}
#endif

void *trl_alloc (size_t nbytes) {
  size_t n = (nbytes + 63) & ~(size_t)63;
  if (n == 0) n = 64;
  if (is_main && soft_limit && atomic_load(&held) + n > soft_limit) {  // main thread only
    run_hook();  // then let the heap grow to twice what survived, as Lua's own GC pause does
    size_t h = atomic_load(&held) * 2;
    soft_limit = h > base_limit ? h : base_limit;
  }
  if (gc_step && is_main && !in_hook && (n >= CACHE_MIN || gc_stress())) {
    in_hook = 1;  // tell the GC about memory it cannot see, so garbage tensors go promptly
    gc_step(gc_ud, n >> 10);
    in_hook = 0;
  }
  void *p = NULL;
  int c = -1;
  size_t want = n;
  if (n >= CACHE_MIN) {
    c = size_class(n + HDR, &n);
    if (c >= 0) {
      // this class's newest block, else (see trl_mem_exact) the smallest cached block of up
      // to UPSIZE classes more if holding it does not raise the peak: its pages are resident
      // already, while a new block would fault every page in
      pthread_mutex_lock(&cache_lock);
      size_t live = atomic_load(&held);
      for (int k = c; k <= (exact_only ? c : c + UPSIZE) && k < NCLASS && !p; k++) {
        block *b = cache[k];
        if (b && (k == c || live + class_size(k) <= peak_held))
          cache[k] = b->next, cached -= class_size(k), n = class_size(k), c = k, p = b;
      }
      pthread_mutex_unlock(&cache_lock);
    }
  }
  // the pages the tensor will write, taken as resident; a cached block's may be more
  size_t used = c >= 0 ? page_up(want + HDR) : 0, res = p ? ((block *)p)->res : 0;
  if (used > n) used = n;   // (pages larger than a class's 16 KiB steps)
  if (p == NULL && c >= 0) {   // a miss: a new block, with room made for it
    p = map_block(c);
    if (p && cached) {
      pthread_mutex_lock(&cache_lock);
#ifdef RECYCLE
      recycle(p, used);
#endif
      evict_lru(atomic_load(&held), n);
      pthread_mutex_unlock(&cache_lock);
    }
  } else if (p == NULL) {
    p = raw_alloc(n);
  }
  if (p == NULL) return NULL;
  size_t now = atomic_fetch_add(&held, n) + n;
  if (now > peak_held) peak_held = now;  // a statistic: a lost race only blurs it
  if (c < 0) return p;
  *(int *)p = c;
  ((block *)p)->res = res > used ? res : used;
  return (char *)p + HDR;
}

size_t trl_mem_peak (void) { return peak_held; }

int trl_mem_exact (int on) {
  int prev = exact_only;
  exact_only = on != 0 || !is_main;   // other threads stay exact
  return prev;
}

size_t trl_mem_cached (void) {
  pthread_mutex_lock(&cache_lock);
  size_t n = cached;
  pthread_mutex_unlock(&cache_lock);
  return n;
}

void trl_free (void *p, size_t nbytes) {
  if (p == NULL) return;
  size_t n = (nbytes + 63) & ~(size_t)63;
  if (n == 0) n = 64;
  int c = n >= CACHE_MIN ? size_class(n + HDR, &n) : -1;
  if (c >= 0) {   // the block's own class, which may be larger than the request's
    p = (char *)p - HDR;
    c = *(int *)p;
    n = class_size(c);
  }
  atomic_fetch_sub(&held, n);
  if (c >= 0) {   // the block joins the cache as its newest; older ones go past the bound
    pthread_mutex_lock(&cache_lock);
    block *b = p;
    b->next = cache[c];
    b->stamp = ticks++;
    cache[c] = b;
    cached += n;
    evict_lru(atomic_load(&held), 0);
    pthread_mutex_unlock(&cache_lock);
    return;
  }
  free(p);
}

// Whole pages, as map_once takes them (and recache hands them on).
static size_t direct_size (size_t nbytes) { return page_up(nbytes ? nbytes : 1); }

void *trl_alloc_direct (size_t nbytes) {
  size_t n = direct_size(nbytes);
  void *p = map_once(n);
#ifdef RECYCLE
  if (p && cached) {   // cached blocks' pages, as a miss takes them
    pthread_mutex_lock(&cache_lock);
    recycle(p, n);
    pthread_mutex_unlock(&cache_lock);
  }
#endif
  return p;
}

void trl_free_direct (void *p, size_t nbytes) {
  if (p == NULL) return;
  size_t n = direct_size(nbytes);
#ifdef RECYCLE
  pthread_mutex_lock(&cache_lock);   // its pages, written, become cached blocks
  recache(p, n, n, ticks++);
  evict_lru(atomic_load(&held), 0);
  pthread_mutex_unlock(&cache_lock);
#else
  unmap_once(p, n);
#endif
}

size_t trl_mem_bytes (void) {
  return atomic_load(&held);
}
