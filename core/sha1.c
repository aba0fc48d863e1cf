/*
** sha1.c: SHA-1 as FIPS 180-4 section 6.1 gives it: 512-bit blocks, an 80-word schedule,
** big-endian length padding. Used to verify downloads (core/fetch.c) and by trl._io.
*/
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sha1.h"

static uint32_t rol (uint32_t x, int n) {
  return (x << n) | (x >> (32 - n));
}

// Process one 64-byte block 'p' into the state 'h'.
static void compress (uint32_t h[5], const unsigned char *p) {
  uint32_t w[80];
  for (int t = 0; t < 16; t++)
    w[t] = (uint32_t)p[4*t] << 24 | (uint32_t)p[4*t+1] << 16 | (uint32_t)p[4*t+2] << 8 | p[4*t+3];
  for (int t = 16; t < 80; t++)
    w[t] = rol(w[t-3] ^ w[t-8] ^ w[t-14] ^ w[t-16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int t = 0; t < 80; t++) {
    uint32_t f, k;
    if (t < 20) { f = (b & c) | (~b & d); k = 0x5a827999; }        // Ch
    else if (t < 40) { f = b ^ c ^ d; k = 0x6ed9eba1; }            // Parity
    else if (t < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8f1bbcdc; }  // Maj
    else { f = b ^ c ^ d; k = 0xca62c1d6; }
    uint32_t tmp = rol(a, 5) + f + e + k + w[t];
    e = d; d = c; c = rol(b, 30); b = a; a = tmp;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

void trl_sha1_init (trl_sha1 *s) {
  static const uint32_t h0[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
  memcpy(s->h, h0, sizeof h0);
  s->nbytes = 0;
  s->nblock = 0;
}

void trl_sha1_update (trl_sha1 *s, const void *data, size_t n) {
  const unsigned char *p = data;
  s->nbytes += n;
  if (s->nblock > 0) {                      // fill the pending block first
    size_t k = 64 - s->nblock < n ? 64 - s->nblock : n;
    memcpy(s->block + s->nblock, p, k);
    s->nblock += k; p += k; n -= k;
    if (s->nblock < 64) return;
    compress(s->h, s->block);
    s->nblock = 0;
  }
  for (; n >= 64; p += 64, n -= 64)
    compress(s->h, p);
  memcpy(s->block, p, n);
  s->nblock = n;
}

void trl_sha1_final (trl_sha1 *s, char hex[41]) {
  uint64_t bits = s->nbytes * 8;
  unsigned char pad[72] = {0x80};
  size_t npad = (s->nblock < 56 ? 56 : 120) - s->nblock;   // 0x80, zeros, to 56 mod 64
  for (int i = 0; i < 8; i++)
    pad[npad + i] = (unsigned char)(bits >> (56 - 8*i));
  trl_sha1_update(s, pad, npad + 8);
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 20; i++) {
    unsigned byte = (s->h[i/4] >> (24 - 8*(i%4))) & 0xff;
    hex[2*i] = digits[byte >> 4];
    hex[2*i+1] = digits[byte & 15];
  }
  hex[40] = '\0';
}

void trl_sha1_buffer (const void *data, size_t n, char hex[41]) {
  trl_sha1 s;
  trl_sha1_init(&s);
  trl_sha1_update(&s, data, n);
  trl_sha1_final(&s, hex);
}

trl_status trl_sha1_file (const char *path, char hex[41]) {
  FILE *f = fopen(path, "rb");
  if (!f) return trl_fail(TRL_EIO, "sha1: %s: %s", path, strerror(errno));
  trl_sha1 s;
  trl_sha1_init(&s);
  unsigned char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    trl_sha1_update(&s, buf, n);
  int bad = ferror(f);
  int err = errno;
  fclose(f);
  if (bad) return trl_fail(TRL_EIO, "sha1: %s: read error (%s)", path, strerror(err));
  trl_sha1_final(&s, hex);
  return TRL_OK;
}

int trl_sha1_valid (const char *s) {
  for (int i = 0; i < 40; i++)
    if (!isxdigit((unsigned char)s[i])) return 0;
  return s[40] == '\0';
}
