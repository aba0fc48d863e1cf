/*
** ndlist.c: the MXNet NDArray-list reader (record versions V0-V3) and V2 writer, plus the
** helpers every weight-file format shares: element conversion, atomic writes, sniffing.
** Every read is checked against the bytes left before anything is allocated, so a
** truncated or hostile file yields a message with the byte offset, never a crash.
** Sparse arrays, npz/npy (MXNet 2.x) and big-endian hosts are not supported.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ndlist.h"
#include "pth.h"
#include "safetensors.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "weight files are read on LE hosts");

#define V1_MAGIC 0xF993FAC8u
#define V2_MAGIC 0xF993FAC9u
#define V3_MAGIC 0xF993FACAu
#define MAX_NDIM 32          // larger V0 words are not dims but a bad magic (FORMAT.md 1.2)
#define CHUNK 65536

void trl_ndlist_free (trl_ndlist *l) {
  for (int i = 0; i < l->n; i++) {
    if (l->arrays) trl_tensor_release(l->arrays[i]);
    if (l->names) free(l->names[i]);
  }
  for (int i = 0; i < l->n_meta; i++) {
    free(l->meta_keys[i]);
    free(l->meta_vals[i]);
  }
  free(l->arrays);
  free(l->names);
  free(l->meta_keys);
  free(l->meta_vals);
  memset(l, 0, sizeof *l);
}

/* {==================================================================
** Element conversion
** =================================================================== */

static const struct { size_t size; trl_dtype dt; const char *name; } raws[] = {
  [TRL_RAW_F32] = {4, TRL_F32, "float32"},   [TRL_RAW_F64] = {8, TRL_F32, "float64"},
  [TRL_RAW_F16] = {2, TRL_F32, "float16"},   [TRL_RAW_BF16] = {2, TRL_F32, "bfloat16"},
  [TRL_RAW_I8] = {1, TRL_I64, "int8"},       [TRL_RAW_I16] = {2, TRL_I64, "int16"},
  [TRL_RAW_I32] = {4, TRL_I64, "int32"},     [TRL_RAW_I64] = {8, TRL_I64, "int64"},
  [TRL_RAW_U8] = {1, TRL_U8, "uint8"},       [TRL_RAW_U16] = {2, TRL_I64, "uint16"},
  [TRL_RAW_U32] = {4, TRL_I64, "uint32"},    [TRL_RAW_U64] = {8, TRL_I64, "uint64"},
  [TRL_RAW_BOOL] = {1, TRL_I64, "bool"},
};

size_t trl_raw_size (trl_raw r) { return raws[r].size; }
trl_dtype trl_raw_dtype (trl_raw r) { return raws[r].dt; }
const char *trl_raw_name (trl_raw r) { return raws[r].name; }

// IEEE binary16 to binary32, exact for every input (subnormals, inf, NaN payloads).
static float half_to_float (uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0x1f) bits = sign | 0x7f800000u | (man << 13);
  else if (exp != 0) bits = sign | ((exp + 112) << 23) | (man << 13);
  else if (man == 0) bits = sign;
  else {                                       // subnormal: normalise the mantissa
    int e = -1;
    do { e++; man <<= 1; } while ((man & 0x400) == 0);
    bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

void trl_raw_convert (void *dst, const void *src, trl_raw r, size_t n) {
  const unsigned char *s = src;
  float *f = dst;
  int64_t *q = dst;
  switch (r) {
  case TRL_RAW_F32: case TRL_RAW_I64: case TRL_RAW_U8: case TRL_RAW_U64:
    memcpy(dst, src, n * raws[r].size);        // uint64 above 2^63 wraps, as in torch
    break;
  case TRL_RAW_F64:
    for (size_t i = 0; i < n; i++) { double d; memcpy(&d, s + 8 * i, 8); f[i] = (float)d; }
    break;
  case TRL_RAW_F16:
    for (size_t i = 0; i < n; i++) f[i] = half_to_float((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
    break;
  case TRL_RAW_BF16:
    for (size_t i = 0; i < n; i++) {
      uint32_t b = (uint32_t)(s[2 * i] | s[2 * i + 1] << 8) << 16;
      memcpy(f + i, &b, 4);
    }
    break;
  case TRL_RAW_I8:
    for (size_t i = 0; i < n; i++) q[i] = (int8_t)s[i];
    break;
  case TRL_RAW_I16:
    for (size_t i = 0; i < n; i++) { int16_t v; memcpy(&v, s + 2 * i, 2); q[i] = v; }
    break;
  case TRL_RAW_I32:
    for (size_t i = 0; i < n; i++) { int32_t v; memcpy(&v, s + 4 * i, 4); q[i] = v; }
    break;
  case TRL_RAW_U16:
    for (size_t i = 0; i < n; i++) { uint16_t v; memcpy(&v, s + 2 * i, 2); q[i] = v; }
    break;
  case TRL_RAW_U32:
    for (size_t i = 0; i < n; i++) { uint32_t v; memcpy(&v, s + 4 * i, 4); q[i] = v; }
    break;
  case TRL_RAW_BOOL:
    for (size_t i = 0; i < n; i++) q[i] = s[i] != 0;
    break;
  }
}

/* }================================================================== */

/* {==================================================================
** Shared file helpers
** =================================================================== */

static atomic_uint tmp_counter;

trl_status trl_write_atomic (const char *path, trl_status (*fill)(FILE *f, void *ud), void *ud) {
  size_t len = strlen(path);
  char *tmp = malloc(len + 48);
  if (tmp == NULL) return trl_fail(TRL_ENOMEM, "%s: out of memory", path);
  int fd = -1;
  for (int tries = 0; fd < 0 && tries < 100; tries++) {
    snprintf(tmp, len + 48, "%s.tmp%ld.%u", path, (long)getpid(),
             atomic_fetch_add(&tmp_counter, 1));
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    trl_status st = trl_fail(TRL_EIO, "%s: cannot create a temporary file next to it: %s",
                             path, strerror(errno));
    free(tmp);
    return st;
  }
  FILE *f = fdopen(fd, "wb");
  if (f == NULL) {
    close(fd);
    unlink(tmp);
    free(tmp);
    return trl_fail(TRL_EIO, "%s: %s", path, strerror(errno));
  }
  trl_status st = fill(f, ud);
  if (st == TRL_OK && (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0))
    st = trl_fail(TRL_EIO, "%s: write failed: %s", path, strerror(errno ? errno : EIO));
  if (fclose(f) != 0 && st == TRL_OK)
    st = trl_fail(TRL_EIO, "%s: write failed: %s", path, strerror(errno));
  if (st == TRL_OK && rename(tmp, path) != 0)
    st = trl_fail(TRL_EIO, "%s: cannot rename the temporary file over it: %s", path,
                  strerror(errno));
  if (st != TRL_OK) unlink(tmp);
  free(tmp);
  if (st == TRL_OK) {                          // make the rename itself durable
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (slash == NULL) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) + (slash == path), path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
  }
  return st;
}

static int cmp_str (const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

trl_status trl_names_check_unique (trl_status code, const char *what, int n,
                                   char *const *names) {
  if (names == NULL || n < 2) return TRL_OK;
  char **s = malloc(sizeof *s * (size_t)n);
  if (s == NULL) return trl_fail(TRL_ENOMEM, "%s: out of memory", what);
  memcpy(s, names, sizeof *s * (size_t)n);
  qsort(s, (size_t)n, sizeof *s, cmp_str);
  for (int i = 1; i < n; i++)
    if (strcmp(s[i - 1], s[i]) == 0) {
      trl_status st = trl_fail(code, "%s: the name '%s' appears twice", what, s[i]);
      free(s);
      return st;
    }
  free(s);
  return TRL_OK;
}

static uint64_t le64 (const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

trl_fileformat trl_sniff_format (const unsigned char *head, size_t n, uint64_t filesize) {
  if (n >= 8 && le64(head) == TRL_NDLIST_MAGIC) return TRL_FMT_PARAMS;
  if (n >= 4 && head[0] == 'P' && head[1] == 'K' && ((head[2] == 3 && head[3] == 4) ||
                                                     (head[2] == 5 && head[3] == 6)))
    return TRL_FMT_ZIP;
  if (n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) return TRL_FMT_PICKLE;
  if (n >= 9 && head[8] == '{') {
    uint64_t hl = le64(head);
    if (hl >= 2 && filesize >= 8 && hl <= filesize - 8) return TRL_FMT_SAFETENSORS;
  }
  return TRL_FMT_UNKNOWN;
}

trl_status trl_weights_load (trl_ndlist *out, const char *path) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (f == NULL) return trl_fail(TRL_EIO, "%s: %s", path, strerror(errno));
  unsigned char head[16];
  size_t n = fread(head, 1, sizeof head, f);
  struct stat sb;
  int ok = fstat(fileno(f), &sb) == 0;
  fclose(f);
  if (!ok) return trl_fail(TRL_EIO, "%s: %s", path, strerror(errno));
  switch (trl_sniff_format(head, n, (uint64_t)sb.st_size)) {
  case TRL_FMT_PARAMS: return trl_ndlist_load(out, path);
  case TRL_FMT_SAFETENSORS: return trl_safetensors_load(out, path);
  case TRL_FMT_ZIP: case TRL_FMT_PICKLE: return trl_pth_load(out, path);
  default:
    if (n >= 6 && memcmp(head, "\x93NUMPY", 6) == 0)
      return trl_fail(TRL_EFORMAT, "%s: a NumPy .npy file, not supported (save it as "
                      "safetensors or .params)", path);
    return trl_fail(TRL_EFORMAT, "%s: not a weight file this loader knows (expected MXNet "
                    ".params, safetensors or a PyTorch .pth zip)", path);
  }
}

/* }================================================================== */

/* {==================================================================
** Reader: a bounds-checked cursor over a file or a memory buffer
** =================================================================== */

typedef struct {
  const char *what;             // file name for messages
  FILE *f;                      // NULL when reading 'buf'
  const unsigned char *buf;
  uint64_t pos, size;
  int rec;                      // record being read, -1 for the list header and names
} Reader;

static trl_status truncated (Reader *r, const char *field, uint64_t need) {
  char where[48] = "";
  if (r->rec >= 0) snprintf(where, sizeof where, "array %d: ", r->rec);
  return trl_fail(TRL_EFORMAT, "params: %s: %struncated at byte %llu reading %s "
                  "(need %llu bytes, %llu left)", r->what, where, (unsigned long long)r->pos,
                  field, (unsigned long long)need, (unsigned long long)(r->size - r->pos));
}

static trl_status bad (Reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static trl_status bad (Reader *r, const char *fmt, ...) {
  char where[48] = "", msg[256];
  va_list ap;
  if (r->rec >= 0) snprintf(where, sizeof where, "array %d: ", r->rec);
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return trl_fail(TRL_EFORMAT, "params: %s: %s%s (at byte %llu)", r->what, where, msg,
                  (unsigned long long)r->pos);
}

static trl_status rd (Reader *r, void *dst, uint64_t n, const char *field) {
  if (n > r->size - r->pos) return truncated(r, field, n);
  if (r->f == NULL) memcpy(dst, r->buf + r->pos, n);
  else if (n > 0 && fread(dst, 1, n, r->f) != n)
    return trl_fail(TRL_EIO, "params: %s: read error at byte %llu reading %s", r->what,
                    (unsigned long long)r->pos, field);
  r->pos += n;
  return TRL_OK;
}

static trl_status skip (Reader *r, uint64_t n, const char *field) {
  if (n > r->size - r->pos) return truncated(r, field, n);
  if (r->f && fseeko(r->f, (off_t)(r->pos + n), SEEK_SET) != 0)
    return trl_fail(TRL_EIO, "params: %s: seek failed at byte %llu", r->what,
                    (unsigned long long)r->pos);
  r->pos += n;
  return TRL_OK;
}

static trl_status rd_u32 (Reader *r, uint32_t *v, const char *field) {
  unsigned char b[4];
  TRL_TRY(rd(r, b, 4, field));
  *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  return TRL_OK;
}

static trl_status rd_i32 (Reader *r, int32_t *v, const char *field) {
  uint32_t u;
  TRL_TRY(rd_u32(r, &u, field));
  *v = (int32_t)u;
  return TRL_OK;
}

static trl_status rd_u64 (Reader *r, uint64_t *v, const char *field) {
  unsigned char b[8];
  TRL_TRY(rd(r, b, 8, field));
  *v = le64(b);
  return TRL_OK;
}

/* }================================================================== */

/* {==================================================================
** Records
** =================================================================== */

typedef struct {
  int ndim, none, sparse;
  int64_t shape[MAX_NDIM];
  trl_raw raw;
} Record;

// TShape of V1-V3: i32 ndim, i64 dims. 'np' (V3) maps ndim -1 / dim -1 to "none".
static trl_status rd_tshape (Reader *r, int *ndim, int64_t *shape, int np, int *none,
                             const char *field) {
  int32_t nd;
  TRL_TRY(rd_i32(r, &nd, field));
  if (np && nd == -1) { *none = 1; *ndim = 0; return TRL_OK; }
  if (nd < 0 || nd > MAX_NDIM) return bad(r, "bad %s ndim %d", field, (int)nd);
  for (int i = 0; i < nd; i++) {
    uint64_t d;
    TRL_TRY(rd_u64(r, &d, field));
    if (np && (int64_t)d == -1) *none = 1;
    else if ((int64_t)d < 0) return bad(r, "negative dim in %s: %lld", field, (long long)d);
    shape[i] = (int64_t)d;
  }
  *ndim = nd;
  return TRL_OK;
}

// Elements of a shape, or -1 if the count overflows (callers then report "too large").
static int64_t count (int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] != 0 && n > INT64_MAX / shape[i]) return -1;
    n *= shape[i];
  }
  return n;
}

static trl_status rd_dtype (Reader *r, trl_raw *raw) {
  static const trl_raw flags[] = {TRL_RAW_F32, TRL_RAW_F64, TRL_RAW_F16, TRL_RAW_U8,
    TRL_RAW_I32, TRL_RAW_I8, TRL_RAW_I64, TRL_RAW_BOOL, TRL_RAW_I16, TRL_RAW_U16,
    TRL_RAW_U32, TRL_RAW_U64, TRL_RAW_BF16};
  int32_t ctx[2], tf;
  TRL_TRY(rd_i32(r, &ctx[0], "context"));
  TRL_TRY(rd_i32(r, &ctx[1], "context"));
  if (ctx[0] != 1 && ctx[0] != 2 && ctx[0] != 3 && ctx[0] != 5)
    return bad(r, "bad device type %d in the context (expected 1, 2, 3 or 5)", (int)ctx[0]);
  TRL_TRY(rd_i32(r, &tf, "type_flag"));
  if (tf < 0 || tf > 12) return bad(r, "unknown type_flag %d (expected 0..12)", (int)tf);
  *raw = flags[tf];
  return TRL_OK;
}

// Byte count of 'n' elements of 'elsize', checked against what is left in the file.
static trl_status data_bytes (Reader *r, int64_t n, size_t elsize, const char *field,
                              uint64_t *nbytes) {
  if (n < 0 || (uint64_t)n > UINT64_MAX / elsize) return bad(r, "%s too large (%lld elements)",
                                                            field, (long long)n);
  *nbytes = (uint64_t)n * elsize;
  if (*nbytes > r->size - r->pos) return truncated(r, field, *nbytes);
  return TRL_OK;
}

// Header of one record up to its data: fills 'rec'; sparse records are skipped whole.
static trl_status rd_record (Reader *r, Record *rec) {
  uint32_t w;
  memset(rec, 0, sizeof *rec);
  TRL_TRY(rd_u32(r, &w, "record magic"));
  if (w == V2_MAGIC || w == V3_MAGIC) {
    int np = w == V3_MAGIC, nad, sndim = 0;
    int64_t sshape[MAX_NDIM];
    int32_t stype;
    TRL_TRY(rd_i32(r, &stype, "storage type"));
    if (stype < 0 || stype > 2) return bad(r, "bad storage type %d (expected 0, 1 or 2)",
                                           (int)stype);
    nad = stype;                               // row_sparse has 1 aux array, csr 2
    if (nad > 0) TRL_TRY(rd_tshape(r, &sndim, sshape, np, &rec->none, "storage shape"));
    TRL_TRY(rd_tshape(r, &rec->ndim, rec->shape, np, &rec->none, "shape"));
    if (rec->none || (!np && rec->ndim == 0)) { rec->none = 1; return TRL_OK; }
    TRL_TRY(rd_dtype(r, &rec->raw));
    if (nad == 0) return TRL_OK;
    rec->sparse = 1;                           // skip it all; the caller reports it by name
    int32_t aux_t[2];
    int aux_nd[2];
    int64_t aux_shape[2][MAX_NDIM];
    for (int i = 0; i < nad; i++) {
      int none = 0;
      TRL_TRY(rd_i32(r, &aux_t[i], "aux type"));
      if (aux_t[i] < 0 || aux_t[i] > 12) return bad(r, "unknown aux type %d", (int)aux_t[i]);
      TRL_TRY(rd_tshape(r, &aux_nd[i], aux_shape[i], np, &none, "aux shape"));
    }
    static const size_t tsz[] = {4, 8, 2, 1, 4, 1, 8, 1, 2, 2, 4, 8, 2};
    uint64_t nb = 0;
    TRL_TRY(data_bytes(r, count(sndim, sshape), raws[rec->raw].size, "sparse data", &nb));
    TRL_TRY(skip(r, nb, "sparse data"));
    for (int i = 0; i < nad; i++) {
      TRL_TRY(data_bytes(r, count(aux_nd[i], aux_shape[i]), tsz[aux_t[i]], "aux data", &nb));
      TRL_TRY(skip(r, nb, "aux data"));
    }
    return TRL_OK;
  }
  if (w == V1_MAGIC) {
    TRL_TRY(rd_tshape(r, &rec->ndim, rec->shape, 0, &rec->none, "shape"));
  } else if (w <= MAX_NDIM) {                  // V0: the word is ndim, dims are u32
    rec->ndim = (int)w;
    for (int i = 0; i < rec->ndim; i++) {
      uint32_t d;
      TRL_TRY(rd_u32(r, &d, "shape"));
      rec->shape[i] = d;
    }
  } else {
    r->pos -= 4;
    return bad(r, "unknown record magic 0x%08x (expected V1-V3 magic or a V0 ndim <= 32)",
               (unsigned)w);
  }
  if (rec->ndim == 0) { rec->none = 1; return TRL_OK; }
  return rd_dtype(r, &rec->raw);
}

// The data of a dense record into a new tensor, converted to its trl dtype.
static trl_status rd_data (Reader *r, const Record *rec, trl_tensor **out) {
  if (rec->none) {
    int64_t zero = 0;
    return trl_tensor_empty(out, TRL_F32, 1, &zero);
  }
  if (rec->ndim > TRL_MAXDIM)
    return bad(r, "shape has %d dims, trl supports at most %d", rec->ndim, TRL_MAXDIM);
  size_t es = raws[rec->raw].size;
  uint64_t nb = 0;
  int64_t n = count(rec->ndim, rec->shape);
  TRL_TRY(data_bytes(r, n, es, "data", &nb));
  TRL_TRY(trl_tensor_empty(out, raws[rec->raw].dt, rec->ndim, rec->shape));
  unsigned char *dst = trl_data(*out), tmp[CHUNK];
  size_t ds = trl_dtype_size((*out)->dtype);
  trl_status st = TRL_OK;
  if (rec->raw == TRL_RAW_F32 || rec->raw == TRL_RAW_I64 || rec->raw == TRL_RAW_U8)
    st = rd(r, dst, nb, "data");
  else
    for (uint64_t done = 0; done < (uint64_t)n && st == TRL_OK; ) {
      size_t k = (size_t)((uint64_t)n - done < CHUNK / es ? (uint64_t)n - done : CHUNK / es);
      st = rd(r, tmp, k * es, "data");
      if (st == TRL_OK) trl_raw_convert(dst + done * ds, tmp, rec->raw, k);
      done += k;
    }
  if (st != TRL_OK) { trl_tensor_release(*out); *out = NULL; }
  return st;
}

static trl_status parse (Reader *r, trl_ndlist *l) {
  uint64_t magic, reserved, n, m;
  r->rec = -1;
  TRL_TRY(rd_u64(r, &magic, "list header"));
  if (magic != TRL_NDLIST_MAGIC)
    return trl_fail(TRL_EFORMAT, "params: %s: not an NDArray list (header 0x%llx, expected "
                    "0x112)", r->what, (unsigned long long)magic);
  TRL_TRY(rd_u64(r, &reserved, "reserved word"));
  TRL_TRY(rd_u64(r, &n, "array count"));
  if (n > (r->size - r->pos) / 4 || n > INT_MAX / 2)   // every record takes >= 4 bytes
    return trl_fail(TRL_EFORMAT, "params: %s: array count %llu cannot fit in the %llu bytes "
                    "left", r->what, (unsigned long long)n,
                    (unsigned long long)(r->size - r->pos));
  l->arrays = calloc(n ? n : 1, sizeof *l->arrays);
  if (l->arrays == NULL) return trl_fail(TRL_ENOMEM, "params: %s: out of memory", r->what);
  l->n = (int)n;
  int sparse = -1;
  for (int i = 0; i < l->n; i++) {
    Record rec;
    r->rec = i;
    TRL_TRY(rd_record(r, &rec));
    if (rec.sparse) { if (sparse < 0) sparse = i; continue; }
    if (sparse >= 0) {                         // keep skipping to reach the names
      uint64_t nb = 0;
      if (rec.none) continue;
      TRL_TRY(data_bytes(r, count(rec.ndim, rec.shape), raws[rec.raw].size, "data", &nb));
      TRL_TRY(skip(r, nb, "data"));
      continue;
    }
    TRL_TRY(rd_data(r, &rec, &l->arrays[i]));
  }
  r->rec = -1;
  TRL_TRY(rd_u64(r, &m, "name count"));
  if (m != 0 && m != n)
    return bad(r, "%llu names for %llu arrays (expected 0 or one per array)",
               (unsigned long long)m, (unsigned long long)n);
  if (m > 0) {
    l->names = calloc(m, sizeof *l->names);
    if (l->names == NULL) return trl_fail(TRL_ENOMEM, "params: %s: out of memory", r->what);
  }
  for (uint64_t i = 0; i < m; i++) {
    uint64_t len;
    TRL_TRY(rd_u64(r, &len, "name length"));
    if (len > r->size - r->pos) return truncated(r, "a name", len);
    l->names[i] = malloc(len + 1);
    if (l->names[i] == NULL) return trl_fail(TRL_ENOMEM, "params: %s: out of memory", r->what);
    TRL_TRY(rd(r, l->names[i], len, "a name"));
    l->names[i][len] = '\0';
    if (strlen(l->names[i]) != len)
      return bad(r, "name %llu contains a NUL byte", (unsigned long long)i);
  }
  if (sparse >= 0)
    return trl_fail(TRL_EFORMAT, "params: %s: array %d%s%s%s: sparse arrays are not supported",
                    r->what, sparse, l->names ? " ('" : "", l->names ? l->names[sparse] : "",
                    l->names ? "')" : "");
  if (r->pos != r->size)
    return trl_fail(TRL_EFORMAT, "params: %s: %llu trailing bytes after the names section "
                    "(which ends at byte %llu)", r->what,
                    (unsigned long long)(r->size - r->pos), (unsigned long long)r->pos);
  char what[300];
  snprintf(what, sizeof what, "params: %s", r->what);
  return trl_names_check_unique(TRL_EFORMAT, what, l->n, l->names);
}

trl_status trl_ndlist_load_mem (trl_ndlist *out, const char *what, const void *buf, size_t len) {
  Reader r = {what, NULL, buf, 0, len, -1};
  memset(out, 0, sizeof *out);
  trl_status st = parse(&r, out);
  if (st != TRL_OK) trl_ndlist_free(out);
  return st;
}

trl_status trl_ndlist_load (trl_ndlist *out, const char *path) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (f == NULL) return trl_fail(TRL_EIO, "params: %s: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    return trl_fail(TRL_EIO, "params: %s: not a regular file", path);
  }
  Reader r = {path, f, NULL, 0, (uint64_t)sb.st_size, -1};
  trl_status st = parse(&r, out);
  fclose(f);
  if (st != TRL_OK) trl_ndlist_free(out);
  return st;
}

/* }================================================================== */

/* {==================================================================
** Writer
** =================================================================== */

typedef struct {
  const char *path;
  int n;
  const char *const *names;
  trl_tensor *const *arrays;
} SaveArgs;

static void put32 (FILE *f, uint32_t v) {
  unsigned char b[4] = {v, v >> 8, v >> 16, v >> 24};
  fwrite(b, 1, 4, f);
}

static void put64 (FILE *f, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> 8 * i);
  fwrite(b, 1, 8, f);
}

static trl_status fill_params (FILE *f, void *ud) {
  static const int32_t flag[TRL_NDTYPE] = {[TRL_F32] = 0, [TRL_I64] = 6, [TRL_U8] = 3};
  SaveArgs *a = ud;
  put64(f, TRL_NDLIST_MAGIC);
  put64(f, 0);
  put64(f, (uint64_t)a->n);
  for (int i = 0; i < a->n; i++) {
    trl_tensor *t;
    TRL_TRY(trl_tensor_contiguous(&t, a->arrays[i]));
    put32(f, t->ndim == 0 ? V3_MAGIC : V2_MAGIC);
    put32(f, 0);                               // dense
    put32(f, (uint32_t)t->ndim);
    for (int d = 0; d < t->ndim; d++) put64(f, (uint64_t)t->shape[d]);
    put32(f, 1);                               // cpu(0)
    put32(f, 0);
    put32(f, (uint32_t)flag[t->dtype]);
    size_t nb = (size_t)trl_numel(t) * trl_dtype_size(t->dtype);
    if (nb > 0) fwrite(trl_data(t), 1, nb, f);
    trl_tensor_release(t);
    if (ferror(f))
      return trl_fail(TRL_EIO, "save_params: %s: write failed at array %d: %s", a->path, i,
                      strerror(errno));
  }
  put64(f, a->names ? (uint64_t)a->n : 0);
  for (int i = 0; a->names && i < a->n; i++) {
    size_t len = strlen(a->names[i]);
    put64(f, len);
    fwrite(a->names[i], 1, len, f);
  }
  return TRL_OK;
}

trl_status trl_ndlist_save (const char *path, int n, const char *const *names,
                            trl_tensor *const *arrays) {
  if (n < 0 || (n > 0 && arrays == NULL))
    return trl_fail(TRL_EARG, "save_params: %s: %d arrays given without an array list", path, n);
  for (int i = 0; i < n; i++) {
    if (arrays[i] == NULL)
      return trl_fail(TRL_EARG, "save_params: %s: array %d is missing", path, i);
    if (names && names[i] == NULL)
      return trl_fail(TRL_EARG, "save_params: %s: name %d is missing", path, i);
    if ((unsigned)arrays[i]->dtype >= TRL_NDTYPE)
      return trl_fail(TRL_ETYPE, "save_params: %s: array %d has an unknown dtype", path, i);
  }
  if (names) {
    char what[300];
    snprintf(what, sizeof what, "save_params: %s", path);
    TRL_TRY(trl_names_check_unique(TRL_EARG, what, n, (char *const *)names));
  }
  SaveArgs a = {path, n, names, arrays};
  return trl_write_atomic(path, fill_params, &a);
}

/* }================================================================== */
