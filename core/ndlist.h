/*
** ndlist.h: a list of (optionally named) tensors read from or written to a weight file,
** and the MXNet NDArray-list format ('.params', 'mx.nd.save'; byte layout in
** shared/models/FORMAT.md). Loaders for safetensors and .pth share 'trl_ndlist'.
** Dtypes on load: float32/float64/float16/bfloat16 -> TRL_F32; int8/int16/int32/int64/
** uint16/uint32/uint64/bool -> TRL_I64; uint8 -> TRL_U8. Only dense CPU-copy data exists
** on disk, so the saved context is ignored.
*/
#ifndef TRL_NDLIST_H
#define TRL_NDLIST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "tensor.h"

typedef struct trl_ndlist {
  int n;
  char **names;             // n NUL-terminated names, or NULL for an unnamed list
  trl_tensor **arrays;      // n owned refs (an entry may be NULL after a caller took it)
  int n_meta;               // safetensors '__metadata__' (string pairs); 0 for other formats
  char **meta_keys;
  char **meta_vals;
} trl_ndlist;

// Free everything 'l' owns (tensor refs included) and zero it; a zeroed list is fine.
void trl_ndlist_free (trl_ndlist *l);

/* {==================================================================
** MXNet NDArray-list (.params)
** =================================================================== */

#define TRL_NDLIST_MAGIC 0x112u

// Read every record version (V0 legacy, V1, V2, V3). Dense arrays only; trailing bytes fail.
// A V0-V2 "none" placeholder (ndim 0) loads as a float32 tensor of shape [0]; a V3 0-d
// array loads as a 0-d tensor. On failure 'out' is zeroed and nothing leaks.
trl_status trl_ndlist_load (trl_ndlist *out, const char *path);
// The same from memory; 'what' names the buffer in messages.
trl_status trl_ndlist_load_mem (trl_ndlist *out, const char *what, const void *buf, size_t len);

// Write V2 records (float32/int64/uint8, ctx cpu(0)); a 0-d tensor is written as a V3 record
// (V2 would read it back as "none"). 'names' may be NULL for an unnamed list. The file is
// replaced atomically: nothing half-written is ever at 'path'.
trl_status trl_ndlist_save (const char *path, int n, const char *const *names,
                            trl_tensor *const *arrays);

/* }================================================================== */

/* {==================================================================
** Helpers shared by the weight-file readers and writers
** =================================================================== */

// Write 'path' through 'fill' into a temporary file in the same directory, then fsync and
// rename it over 'path'. On any failure the temporary file is removed and 'path' is untouched.
trl_status trl_write_atomic (const char *path, trl_status (*fill)(FILE *f, void *ud), void *ud);

// Fail with 'code' if two names are equal (a name->tensor table could not hold both).
trl_status trl_names_check_unique (trl_status code, const char *what, int n,
                                   char *const *names);

// Element conversion from a file's representation into a trl dtype (see the header comment).
typedef enum {
  TRL_RAW_F32, TRL_RAW_F64, TRL_RAW_F16, TRL_RAW_BF16, TRL_RAW_I8, TRL_RAW_I16, TRL_RAW_I32,
  TRL_RAW_I64, TRL_RAW_U8, TRL_RAW_U16, TRL_RAW_U32, TRL_RAW_U64, TRL_RAW_BOOL
} trl_raw;

size_t trl_raw_size (trl_raw r);
trl_dtype trl_raw_dtype (trl_raw r);
const char *trl_raw_name (trl_raw r);
// Convert 'n' little-endian elements at 'src' into 'dst' (of trl_raw_dtype(r)).
void trl_raw_convert (void *dst, const void *src, trl_raw r, size_t n);

// How a file is recognised by its first bytes (at least 16 of them, fewer if the file is shorter).
typedef enum { TRL_FMT_UNKNOWN, TRL_FMT_PARAMS, TRL_FMT_SAFETENSORS, TRL_FMT_ZIP,
               TRL_FMT_PICKLE } trl_fileformat;
trl_fileformat trl_sniff_format (const unsigned char *head, size_t n, uint64_t filesize);

// Load any supported weight file, choosing the format by its content.
trl_status trl_weights_load (trl_ndlist *out, const char *path);

/* }================================================================== */

#endif
