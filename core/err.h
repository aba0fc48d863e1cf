/*
** err.h: status codes and the per-thread error message of the trl core.
** Core functions never raise, print or exit: they return a 'trl_status' and leave
** a message for the caller ("matmul: size mismatch, a is [2,3], b is [4,5]").
*/
#ifndef TRL_ERR_H
#define TRL_ERR_H

#include <stdint.h>

typedef enum {
  TRL_OK = 0,
  TRL_ESHAPE,      // shapes do not fit the op
  TRL_ETYPE,       // unsupported dtype for the op
  TRL_EARG,        // bad argument value (axis out of range, negative size, ...)
  TRL_ENOMEM,      // allocation failed
  TRL_EIO,         // the outside world failed: missing file, short read
  TRL_EFORMAT,     // a file's bytes are not what its format says
  TRL_EINTR,       // interrupted by the user
} trl_status;

#define TRL_MSGLEN 512
#define TRL_SHAPELEN 128

// Record a formatted message for this thread and return 'code' (so: return trl_fail(...)).
trl_status trl_fail (trl_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
// The message of this thread's last failure ("" if none).
const char *trl_errmsg (void);
// Write "[2,3]" into 'buf' (TRL_SHAPELEN bytes) and return 'buf'.
char *trl_shape_str (char *buf, const int64_t *shape, int ndim);

// Propagate a failure: TRY(trl_add(&c, a, b));
#define TRL_TRY(e) do { trl_status st_ = (e); if (st_ != TRL_OK) return st_; } while (0)

#endif
