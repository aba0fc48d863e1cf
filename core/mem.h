/*
** mem.h: the one allocator of the core. It counts bytes, aligns to 64 for SIMD, and,
** reports large allocations to a GC hook (set by the Lua binding), which runs the GC so that
** unreachable tensors are freed; when malloc fails it runs a full GC and retries once.
*/
#ifndef TRL_MEM_H
#define TRL_MEM_H

#include <stddef.h>

void *trl_alloc (size_t nbytes);          // NULL on failure; 64-byte aligned
void trl_free (void *p, size_t nbytes);
size_t trl_mem_bytes (void);              // bytes held now (not counting the cache)
// A long-lived buffer that is not a tensor's (a conv pack's): page-aligned, mapped on its own,
// not counted by trl_mem_bytes. Where misses recycle (Linux), its pages come from cached
// blocks as a miss's do, and trl_free_direct hands them to the cache as blocks; elsewhere it
// gives them back to the system. NULL on failure.
void *trl_alloc_direct (size_t nbytes);
void trl_free_direct (void *p, size_t nbytes);
// Ask for transparent huge pages for the 2 MiB-aligned part of [p, p + n) (advice only): for
// long-lived buffers that are faulted in once and then swept again and again (a conv's
// scratch), where 4 KiB pages cost TLB misses on every sweep.
void trl_mem_advise_huge (void *p, size_t n);
void trl_mem_trim (void);                 // give cached free blocks back to the system
size_t trl_mem_peak (void);               // the most bytes held at once so far
size_t trl_mem_cached (void);             // bytes of freed blocks kept for reuse
// Whether this thread's requests take only blocks of their own size class (returns the
// previous setting). Off, a request that finds none may take a cached block up to 4x larger
// whose pages are resident already, as long as the bytes held stay within their peak: a net's
// inference frees large blocks early and asks for smaller ones as it goes deeper, and no
// block of that exact class would be cached. On for every thread but the one that installed
// the GC hook (the Lua state's: data-loading workers would take the blocks a training step
// is about to ask for), and there the tape turns it on while it records and while backward
// runs: every tensor then lives to the step's peak and a larger block would raise it.
int trl_mem_exact (int on);
// 'full' runs a full collection; 'step' advances it as if 'kb' KiB had been allocated.
void trl_mem_set_hook (void (*full)(void *ud), void (*step)(void *ud, size_t kb), void *ud,
                       size_t soft_limit);

#endif
