/*
** err.c: the per-thread failure message behind 'trl_fail' and the one shape formatter.
*/
#include <stdarg.h>
#include <stdio.h>

#include "err.h"

static _Thread_local char msg[TRL_MSGLEN];

trl_status trl_fail (trl_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return code;
}

const char *trl_errmsg (void) {
  return msg;
}

char *trl_shape_str (char *buf, const int64_t *shape, int ndim) {
  size_t n = 0, cap = TRL_SHAPELEN;
  n += (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < ndim && n < cap; i++)
    n += (size_t)snprintf(buf + n, cap - n, i ? ",%lld" : "%lld", (long long)shape[i]);
  if (n < cap) snprintf(buf + n, cap - n, "]");
  return buf;
}
