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
void trl_mem_trim (void);                 // give cached free blocks back to the system
size_t trl_mem_peak (void);               // the most bytes held at once so far
size_t trl_mem_cached (void);             // bytes of freed blocks kept for reuse
// 'full' runs a full collection; 'step' advances it as if 'kb' KiB had been allocated.
void trl_mem_set_hook (void (*full)(void *ud), void (*step)(void *ud, size_t kb), void *ud,
                       size_t soft_limit);

#endif
