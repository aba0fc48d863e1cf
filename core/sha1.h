/*
** sha1.h: SHA-1 (FIPS 180-4) over buffers, streams and files, for checking downloads
** against published hashes. It is an integrity check, not a security primitive.
*/
#ifndef TRL_SHA1_H
#define TRL_SHA1_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct trl_sha1 {
  uint32_t h[5];
  uint64_t nbytes;             // message length so far
  unsigned char block[64];     // partial block
  size_t nblock;
} trl_sha1;

void trl_sha1_init (trl_sha1 *s);
void trl_sha1_update (trl_sha1 *s, const void *data, size_t n);
// Finish and write 40 lowercase hex digits and a NUL into 'hex'.
void trl_sha1_final (trl_sha1 *s, char hex[41]);

// One-shot hash of a buffer.
void trl_sha1_buffer (const void *data, size_t n, char hex[41]);
// Hash of a file's bytes; TRL_EIO "sha1: <path>: ..." when it cannot be read.
trl_status trl_sha1_file (const char *path, char hex[41]);
// 1 if 's' is 40 hex digits (either case).
int trl_sha1_valid (const char *s);

#endif
