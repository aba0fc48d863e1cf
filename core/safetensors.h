/*
** safetensors.h: the safetensors weight format (an 8-byte little-endian header length, a JSON
** header of dtype/shape/data_offsets per tensor plus optional '__metadata__', then raw
** little-endian data). Loads F32/F64/F16/BF16 as TRL_F32, I8..I64/U16..U64/BOOL as TRL_I64,
** U8 as TRL_U8 (see ndlist.h); writes TRL_F32/TRL_I64/TRL_U8 as F32/I64/U8.
*/
#ifndef TRL_SAFETENSORS_H
#define TRL_SAFETENSORS_H

#include "ndlist.h"

#define TRL_SAFETENSORS_MAX_HEADER 100000000u   // as the reference implementation

// Names come in data-offset order (the order the writer used); '__metadata__' goes to
// out->meta_keys/meta_vals. Offsets must be in bounds, non-overlapping and cover the data.
trl_status trl_safetensors_load (trl_ndlist *out, const char *path);
trl_status trl_safetensors_load_mem (trl_ndlist *out, const char *what, const void *buf,
                                     size_t len);

// 'names' are required and unique; metadata is 'n_meta' string pairs (0 for none). The data
// is laid out in the given order; the header is padded with spaces to a multiple of 8 bytes.
// The file is replaced atomically.
trl_status trl_safetensors_save (const char *path, int n, const char *const *names,
                                 trl_tensor *const *arrays, int n_meta,
                                 const char *const *meta_keys, const char *const *meta_vals);

#endif
