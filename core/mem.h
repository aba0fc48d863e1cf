/*
** mem.h: the one allocator of the core. It counts bytes, aligns to 64 for SIMD, and,
** when malloc fails or the soft limit is passed, asks a hook (set by the Lua binding to
** run a full GC) to free memory, then retries once.
*/
#ifndef TRL_MEM_H
#define TRL_MEM_H

#include <stddef.h>

void *trl_alloc (size_t nbytes);          // NULL on failure; 64-byte aligned
void trl_free (void *p, size_t nbytes);
size_t trl_mem_bytes (void);              // bytes held now (not counting the cache)
void trl_mem_trim (void);                 // give cached free blocks back to the system
void trl_mem_set_hook (void (*hook)(void *ud), void *ud, size_t soft_limit);

#endif
