/*
** test_ndlist.c: the MXNet NDArray-list reader and writer. Synthetic records cover every
** version, dtype and error path; the genuine fixtures are checked against EXPECTED.json
** (TRL_SHARED), sha1 of the data included; F10-F12 must be re-written byte for byte;
** truncations and byte flips must fail cleanly (run under ASan in CI).
*/
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "ndlist.h"
#include "sha1.h"

/* {==================================================================
** Byte builder and file helpers
** =================================================================== */

typedef struct { unsigned char *p; size_t n, cap; } Bytes;

static void put (Bytes *b, const void *s, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
}
static void u32 (Bytes *b, uint32_t v) { put(b, &v, 4); }
static void u64 (Bytes *b, uint64_t v) { put(b, &v, 8); }
static void i64s (Bytes *b, int n, const int64_t *d) {
  for (int i = 0; i < n; i++) u64(b, (uint64_t)d[i]);
}

// A V2/V3 dense record header up to its data.
static void rec23 (Bytes *b, uint32_t magic, int ndim, const int64_t *shape, int tf) {
  u32(b, magic); u32(b, 0); u32(b, (uint32_t)ndim); i64s(b, ndim, shape);
  u32(b, 1); u32(b, 0); u32(b, (uint32_t)tf);
}

static void names (Bytes *b, int n, const char *const *nm) {
  u64(b, (uint64_t)n);
  for (int i = 0; i < n; i++) { u64(b, strlen(nm[i])); put(b, nm[i], strlen(nm[i])); }
}

static unsigned char *read_file (const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *p = malloc(n > 0 ? (size_t)n : 1);
  *len = fread(p, 1, (size_t)n, f);
  fclose(f);
  return p;
}

static uint32_t f32bits (float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static trl_tensor *make (trl_dtype dt, int ndim, const int64_t *shape) {
  trl_tensor *t = NULL;
  CHECK_OK(trl_tensor_empty(&t, dt, ndim, shape));
  return t;
}

static int64_t shape_is (const trl_tensor *t, int ndim, const int64_t *shape) {
  if (t == NULL || t->ndim != ndim) return 0;
  for (int i = 0; i < ndim; i++) if (t->shape[i] != shape[i]) return 0;
  return 1;
}

/* }================================================================== */

/* {==================================================================
** Synthetic records
** =================================================================== */

static Bytes all_versions (void) {
  Bytes b = {0};
  u64(&b, 0x112); u64(&b, 0); u64(&b, 13);
  int64_t s2[] = {2}, s3[] = {3}, s21[] = {2, 1};
  double f64[] = {1.5, -2.25};
  rec23(&b, 0xF993FAC9, 1, s2, 1); put(&b, f64, 16);
  uint16_t f16[] = {0x3c00, 0xc000, 0x0001};     // 1, -2, 2^-24 (subnormal)
  rec23(&b, 0xF993FAC9, 1, s3, 2); put(&b, f16, 6);
  uint16_t bf16[] = {0x3f80, 0xc040};             // 1, -3
  rec23(&b, 0xF993FAC9, 1, s2, 12); put(&b, bf16, 4);
  int8_t i8[] = {-1, 127};
  rec23(&b, 0xF993FAC9, 1, s2, 5); put(&b, i8, 2);
  uint8_t u8[] = {0, 200, 255};
  rec23(&b, 0xF993FAC9, 1, s3, 3); put(&b, u8, 3);
  int32_t i32[] = {-7, 2147483647};
  rec23(&b, 0xF993FAC9, 1, s2, 4); put(&b, i32, 8);
  int64_t i64[] = {-(1LL << 40)};
  rec23(&b, 0xF993FAC9, 1, (int64_t[]){1}, 6); put(&b, i64, 8);
  uint8_t bl[] = {0, 1, 2};
  rec23(&b, 0xF993FAC9, 1, s3, 7); put(&b, bl, 3);
  float scalar = 42;
  rec23(&b, 0xF993FACA, 0, NULL, 0); put(&b, &scalar, 4);   // V3 0-d
  u32(&b, 0xF993FAC9); u32(&b, 0); u32(&b, 0);               // V2 none placeholder
  float v1[] = {5, 6};
  u32(&b, 0xF993FAC8); u32(&b, 2); i64s(&b, 2, s21); u32(&b, 1); u32(&b, 0); u32(&b, 0);
  put(&b, v1, 8);
  float v0[] = {7, 8};
  u32(&b, 2); u32(&b, 1); u32(&b, 2); u32(&b, 2); u32(&b, 1); u32(&b, 0); put(&b, v0, 8);
  float gpu[] = {9};
  u32(&b, 0xF993FAC9); u32(&b, 0); u32(&b, 1); u64(&b, 1); u32(&b, 2); u32(&b, 1); u32(&b, 0);
  put(&b, gpu, 4);
  const char *nm[] = {"f64", "f16", "bf16", "i8", "u8", "i32", "i64", "bool", "scalar", "none",
                      "v1", "v0", "gpu"};
  names(&b, 13, nm);
  return b;
}

static void test_versions_and_dtypes (void) {
  Bytes b = all_versions();
  trl_ndlist l;
  CHECK_OK(trl_ndlist_load_mem(&l, "synthetic", b.p, b.n));
  CHECK(l.n == 13 && l.names != NULL);
  if (l.n == 13) {
    trl_tensor **a = l.arrays;
    CHECK(strcmp(l.names[2], "bf16") == 0 && strcmp(l.names[12], "gpu") == 0);
    CHECK(a[0]->dtype == TRL_F32 && trl_f32(a[0])[0] == 1.5f && trl_f32(a[0])[1] == -2.25f);
    CHECK(trl_f32(a[1])[0] == 1 && trl_f32(a[1])[1] == -2 && trl_f32(a[1])[2] == ldexpf(1, -24));
    CHECK(trl_f32(a[2])[0] == 1 && trl_f32(a[2])[1] == -3);
    CHECK(a[3]->dtype == TRL_I64 && trl_geti(a[3], 0) == -1 && trl_geti(a[3], 1) == 127);
    CHECK(a[4]->dtype == TRL_U8 && ((uint8_t *)trl_data(a[4]))[1] == 200);
    CHECK(trl_geti(a[5], 0) == -7 && trl_geti(a[5], 1) == 2147483647);
    CHECK(trl_geti(a[6], 0) == -(1LL << 40));
    CHECK(a[7]->dtype == TRL_I64 && trl_geti(a[7], 0) == 0 && trl_geti(a[7], 2) == 1);
    CHECK(a[8]->ndim == 0 && trl_f32(a[8])[0] == 42);
    CHECK(shape_is(a[9], 1, (int64_t[]){0}));
    CHECK(shape_is(a[10], 2, (int64_t[]){2, 1}) && trl_f32(a[10])[1] == 6);
    CHECK(shape_is(a[11], 2, (int64_t[]){1, 2}) && trl_f32(a[11])[1] == 8);
    CHECK(trl_f32(a[12])[0] == 9);
  }
  trl_ndlist_free(&l);
  CHECK(l.n == 0 && l.arrays == NULL);

  // Special float16 values.
  uint16_t h[] = {0x7c00, 0xfc00, 0x7e00, 0x3555, 0x7bff, 0x8000};
  Bytes c = {0};
  u64(&c, 0x112); u64(&c, 0); u64(&c, 1);
  rec23(&c, 0xF993FAC9, 1, (int64_t[]){6}, 2); put(&c, h, 12); u64(&c, 0);
  CHECK_OK(trl_ndlist_load_mem(&l, "half", c.p, c.n));
  if (l.n == 1) {
    float *f = trl_f32(l.arrays[0]);
    CHECK(isinf(f[0]) && f[0] > 0 && isinf(f[1]) && f[1] < 0 && isnan(f[2]));
    CHECK(f[3] == 0.333251953125f && f[4] == 65504.0f && f32bits(f[5]) == 0x80000000u);
  }
  trl_ndlist_free(&l);
  free(c.p);
  free(b.p);
}

static void test_errors (void) {
  trl_ndlist l;
  Bytes b = {0};
  // Sparse (row_sparse) record, named 'emb': skipped to read the names, then reported.
  u64(&b, 0x112); u64(&b, 0); u64(&b, 1);
  u32(&b, 0xF993FAC9); u32(&b, 1);
  u32(&b, 2); i64s(&b, 2, (int64_t[]){1, 2});        // storage shape
  u32(&b, 2); i64s(&b, 2, (int64_t[]){5, 2});        // shape
  u32(&b, 1); u32(&b, 0); u32(&b, 0);                // ctx, float32
  u32(&b, 6); u32(&b, 1); u64(&b, 1);                // aux int64 [1]
  float row[] = {1, 2}; int64_t idx = 3;
  put(&b, row, 8); put(&b, &idx, 8);
  names(&b, 1, (const char *[]){"emb"});
  CHECK_FAILS(trl_ndlist_load_mem(&l, "sparse.params", b.p, b.n),
            "sparse.params: array 0 ('emb'): sparse arrays are not supported");
  CHECK(l.n == 0 && l.arrays == NULL && l.names == NULL);
  b.n = 0;

  Bytes ok = {0};
  u64(&ok, 0x112); u64(&ok, 0); u64(&ok, 1);
  rec23(&ok, 0xF993FAC9, 1, (int64_t[]){2}, 0); put(&ok, row, 8);
  size_t body = ok.n;
  u64(&ok, 0);
  CHECK_OK(trl_ndlist_load_mem(&l, "ok", ok.p, ok.n));
  CHECK(l.n == 1 && l.names == NULL);
  trl_ndlist_free(&l);

  put(&b, ok.p, ok.n); u32(&b, 0);
  CHECK_FAILS(trl_ndlist_load_mem(&l, "t", b.p, b.n), "4 trailing bytes after the names section");
  b.n = 0;
  put(&b, ok.p, body); u64(&b, 2);
  CHECK_FAILS(trl_ndlist_load_mem(&l, "t", b.p, b.n), "2 names for 1 arrays");
  CHECK_FAILS(trl_ndlist_load_mem(&l, "t", ok.p, ok.n - 3),
              "truncated at byte 64 reading name count (need 8 bytes, 5 left)");
  CHECK_FAILS(trl_ndlist_load_mem(&l, "t", ok.p, 30),
              "array 0: truncated at byte 28 reading storage type (need 4 bytes, 2 left)");
  CHECK_FAILS(trl_ndlist_load_mem(&l, "t", ok.p, 50),
              "array 0: truncated at byte 48 reading context (need 4 bytes, 2 left)");
  CHECK_FAILS(trl_ndlist_load_mem(&l, "t", ok.p, 62),
              "array 0: truncated at byte 56 reading data (need 8 bytes, 6 left)");
  ok.p[0] = 0x13;
  CHECK_FAILS(trl_ndlist_load_mem(&l, "t", ok.p, ok.n), "not an NDArray list (header 0x113");
  ok.p[0] = 0x12;
  ok.p[24] = 0x99;                                     // magic low byte
  CHECK_FAILS(trl_ndlist_load_mem(&l, "t", ok.p, ok.n), "unknown record magic 0xf993fa99");
  ok.p[24] = 0xc9;
  ok.p[52] = 13;                                       // type_flag
  CHECK_FAILS(trl_ndlist_load_mem(&l, "t", ok.p, ok.n), "unknown type_flag 13");
  ok.p[52] = 0;
  ok.p[44] = 4;                                        // dev_type
  CHECK_FAILS(trl_ndlist_load_mem(&l, "t", ok.p, ok.n), "bad device type 4");
  ok.p[44] = 1;
  ok.p[16] = 200;                                      // array count
  CHECK_FAILS(trl_ndlist_load_mem(&l, "t", ok.p, ok.n), "array count 200 cannot fit");
  ok.p[16] = 1;
  ok.p[43] = 0x40;                                     // dim = 2^62 + 2
  CHECK_FAILS(trl_ndlist_load_mem(&l, "t", ok.p, ok.n), "data too large");
  ok.p[43] = 0;

  b.n = 0;
  u64(&b, 0x112); u64(&b, 0); u64(&b, 1);
  int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  rec23(&b, 0xF993FAC9, 9, nine, 0); put(&b, row, 4); u64(&b, 0);
  CHECK_FAILS(trl_ndlist_load_mem(&l, "t", b.p, b.n), "shape has 9 dims, trl supports at most 8");

  b.n = 0;
  u64(&b, 0x112); u64(&b, 0); u64(&b, 2);
  for (int i = 0; i < 2; i++) { rec23(&b, 0xF993FAC9, 1, (int64_t[]){1}, 0); put(&b, row, 4); }
  names(&b, 2, (const char *[]){"w", "w"});
  CHECK_FAILS(trl_ndlist_load_mem(&l, "dup", b.p, b.n), "the name 'w' appears twice");

  CHECK_FAILS(trl_ndlist_load(&l, "/nonexistent/x.params"), "/nonexistent/x.params");
  CHECK(trl_tensor_live() == 0);
  free(ok.p);
  free(b.p);
}

/* }================================================================== */

/* {==================================================================
** Writer
** =================================================================== */

static int no_temp_files (const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int ok = 1;
  while (d && (e = readdir(d)) != NULL)
    if (strstr(e->d_name, ".tmp")) ok = 0;
  if (d) closedir(d);
  return ok;
}

static void test_writer (const char *tmp) {
  char path[1024];
  snprintf(path, sizeof path, "%s/ndlist_rt.params", tmp);
  trl_tensor *a[6], *base = make(TRL_F32, 2, (int64_t[]){2, 3});
  for (int i = 0; i < 6; i++) trl_f32(base)[i] = (float)i - 2.5f;
  a[0] = base;
  a[1] = make(TRL_I64, 1, (int64_t[]){3});
  for (int i = 0; i < 3; i++) ((int64_t *)trl_data(a[1]))[i] = (int64_t)i * -1000000000000LL;
  a[2] = make(TRL_U8, 1, (int64_t[]){4});
  memcpy(trl_data(a[2]), "\x00\x7f\x80\xff", 4);
  CHECK_OK(trl_view_transpose(&a[3], base, 0, 1));   // non-contiguous [3,2]
  a[4] = make(TRL_F32, 0, (int64_t[]){1});   // a non-NULL shape: tensor.c memcpys it
  trl_f32(a[4])[0] = 3.25f;
  a[5] = make(TRL_F32, 2, (int64_t[]){0, 2});
  const char *nm[] = {"base", "ids", "bytes", "base.T", "scalar", "empty"};
  CHECK_OK(trl_ndlist_save(path, 6, nm, a));
  trl_ndlist l;
  CHECK_OK(trl_ndlist_load(&l, path));
  CHECK(l.n == 6 && l.names != NULL);
  for (int i = 0; i < l.n && i < 6; i++) {
    CHECK(strcmp(l.names[i], nm[i]) == 0);
    CHECK(l.arrays[i]->dtype == a[i]->dtype && trl_same_shape(l.arrays[i], a[i]));
    for (int64_t k = 0; k < trl_numel(a[i]); k++)
      CHECK(trl_get(l.arrays[i], k) == trl_get(a[i], k));
  }
  trl_ndlist_free(&l);
  CHECK_OK(trl_ndlist_save(path, 2, NULL, a));
  CHECK_OK(trl_ndlist_load(&l, path));
  CHECK(l.n == 2 && l.names == NULL && trl_geti(l.arrays[1], 2) == -2000000000000LL);
  trl_ndlist_free(&l);
  CHECK(no_temp_files(tmp));

  // A refused save leaves the old file as it was.
  size_t n0, n1;
  unsigned char *before = read_file(path, &n0);
  CHECK_FAILS(trl_ndlist_save(path, 2, (const char *[]){"x", "x"}, a),
              "the name 'x' appears twice");
  unsigned char *after = read_file(path, &n1);
  CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
  free(before);
  free(after);
  CHECK_FAILS(trl_ndlist_save("/nonexistent/dir/x.params", 1, NULL, a),
            "/nonexistent/dir/x.params: cannot create a temporary file");
  for (int i = 0; i < 6; i++) trl_tensor_release(a[i]);
  CHECK(trl_tensor_live() == 0);
}

/* }================================================================== */

/* {==================================================================
** Genuine fixtures
** =================================================================== */

static void check_fixture (const char *dir, const cJSON *fx, const char *tmp) {
  const char *file = cJSON_GetObjectItem(fx, "file")->valuestring;
  char path[2200];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  trl_ndlist l;
  trl_status st = trl_ndlist_load(&l, path);
  if (st != TRL_OK) {
    fprintf(stderr, "%s: %s\n", file, trl_errmsg());
    check_fail++;
    return;
  }
  int count = cJSON_GetObjectItem(fx, "count")->valueint;
  int nnames = cJSON_GetObjectItem(fx, "names_count")->valueint;
  CHECK(l.n == count);
  CHECK((nnames == 0) == (l.names == NULL));
  const cJSON *arr;
  int i = 0;
  cJSON_ArrayForEach(arr, cJSON_GetObjectItem(fx, "arrays")) {
    if (i >= l.n) break;
    trl_tensor *t = l.arrays[i];
    const cJSON *nm = cJSON_GetObjectItem(arr, "name"), *d;
    if (cJSON_IsString(nm)) CHECK(l.names && strcmp(l.names[i], nm->valuestring) == 0);
    int64_t shape[TRL_MAXDIM];
    int nd = 0;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(arr, "shape")) shape[nd++] = (int64_t)d->valuedouble;
    CHECK(shape_is(t, nd, shape));
    CHECK(t->dtype == TRL_F32);
    const float *v = trl_f32(t);
    int64_t n = trl_numel(t);
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    for (int64_t k = 0; k < n; k++) {
      sum += (double)v[k];
      if (v[k] < mn) mn = v[k];
      if (v[k] > mx) mx = v[k];
    }
    if (sum != cJSON_GetObjectItem(arr, "sum_seq_f64")->valuedouble) {
      fprintf(stderr, "%s array %d: sum %.17g, expected %.17g\n", file, i, sum,
              cJSON_GetObjectItem(arr, "sum_seq_f64")->valuedouble);
      check_fail++;
    }
    CHECK(mn == cJSON_GetObjectItem(arr, "min")->valuedouble);
    CHECK(mx == cJSON_GetObjectItem(arr, "max")->valuedouble);
    CHECK(n == 0 || v[n - 1] == cJSON_GetObjectItem(arr, "last")->valuedouble);
    char hex[41];
    trl_sha1_buffer(v, (size_t)n * 4, hex);
    CHECK(strcmp(hex, cJSON_GetObjectItem(arr, "sha1_data")->valuestring) == 0);
    int k = 0;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(arr, "first_bits"))
      CHECK(k < n && f32bits(v[k++]) == (uint32_t)strtoul(d->valuestring, NULL, 16));
    i++;
  }
  CHECK(i == count);

  // F10, F11, F12 were written by MXNet 1.4 with V2 records: our writer must match them.
  const char *id = cJSON_GetObjectItem(fx, "id")->valuestring;
  if (strcmp(id, "F10") == 0 || strcmp(id, "F11") == 0 || strcmp(id, "F12") == 0) {
    char out[1024];
    snprintf(out, sizeof out, "%s/resave_%s.params", tmp, id);
    CHECK_OK(trl_ndlist_save(out, l.n, (const char *const *)l.names, l.arrays));
    size_t n0, n1;
    unsigned char *a = read_file(path, &n0), *b = read_file(out, &n1);
    if (!(a && b && n0 == n1 && memcmp(a, b, n0) == 0)) {
      fprintf(stderr, "%s: re-saved bytes differ from the MXNet file\n", file);
      check_fail++;
    }
    free(a);
    free(b);
  }
  trl_ndlist_free(&l);
}

static void test_fixtures (const char *shared, const char *tmp) {
  char dir[1024], path[1100];
  snprintf(dir, sizeof dir, "%s/models/params-fixtures", shared);
  snprintf(path, sizeof path, "%s/EXPECTED.json", dir);
  size_t len;
  char *text = (char *)read_file(path, &len);
  cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
  free(text);
  if (root == NULL) {
    fprintf(stderr, "cannot read %s\n", path);
    check_fail++;
    return;
  }
  const cJSON *fx;
  int n = 0;
  cJSON_ArrayForEach(fx, cJSON_GetObjectItem(root, "fixtures")) {
    check_fixture(dir, fx, tmp);
    n++;
  }
  CHECK(n == 10);
  cJSON_Delete(root);
}

// The three model files: counts, end names and shapes, and one checksum over every element.
static void test_models (const char *shared) {
  static const struct {
    const char *file, *first, *last;
    int n;
    int64_t first_shape[4], last_len;
    double total;
  } m[] = {
    {"squeezenet1.1.params", "conv0_weight", "conv25_bias", 52, {64, 3, 3, 3}, 1000,
     1561.414879867159},
    {"mobilenetv2_1.0-features.params", "features.0.weight", "features.21.running_var", 265,
     {32, 3, 3, 3}, 1280, 10360.270065419965},
    {"resnet50_v2-partial.params", "features.0.gamma", "output.bias", 249, {3}, 1000,
     -2959.314769278967},
  };
  for (int k = 0; k < 3; k++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/%s", shared, m[k].file);
    trl_ndlist l;
    trl_status st = trl_ndlist_load(&l, path);
    if (st != TRL_OK) { fprintf(stderr, "%s\n", trl_errmsg()); check_fail++; continue; }
    CHECK(l.n == m[k].n && l.names != NULL);
    CHECK(strcmp(l.names[0], m[k].first) == 0 && strcmp(l.names[l.n - 1], m[k].last) == 0);
    CHECK(shape_is(l.arrays[0], k == 2 ? 1 : 4, m[k].first_shape));
    CHECK(shape_is(l.arrays[l.n - 1], 1, &m[k].last_len));
    double total = 0;
    for (int i = 0; i < l.n; i++) {
      const float *v = trl_f32(l.arrays[i]);
      for (int64_t j = 0; j < trl_numel(l.arrays[i]); j++) total += (double)v[j];
    }
    if (total != m[k].total) {
      fprintf(stderr, "%s: checksum %.17g, expected %.17g\n", m[k].file, total, m[k].total);
      check_fail++;
    }
    trl_ndlist_free(&l);
  }
}

/* }================================================================== */

/* {==================================================================
** Fuzz: every prefix, and seeded random byte flips
** =================================================================== */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next (void) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return rng;
}

static void fuzz (const char *what, const unsigned char *p, size_t n, int flips) {
  trl_ndlist l;
  unsigned char *buf = malloc(n);
  for (size_t k = 0; k < n; k++) {               // every proper prefix must fail
    memcpy(buf, p, k);
    CHECK(trl_ndlist_load_mem(&l, what, buf, k) != TRL_OK);
  }
  int ok = 0;
  for (int it = 0; it < flips; it++) {
    memcpy(buf, p, n);
    int nflip = 1 + (int)(next() % 3);
    for (int j = 0; j < nflip; j++) buf[next() % n] = (unsigned char)next();
    if (trl_ndlist_load_mem(&l, what, buf, n) == TRL_OK) { ok++; trl_ndlist_free(&l); }
  }
  CHECK(trl_tensor_live() == 0);
  free(buf);
  (void)ok;
}

static void test_fuzz (const char *shared) {
  Bytes b = all_versions();
  fuzz("synthetic", b.p, b.n, 3000);
  free(b.p);
  if (shared == NULL) return;
  static const char *const files[] = {"mytest_gluon/mydict", "mytest_gluon/xy",
    "d2l_np_v3/x-file", "mxnet_legacy_ndarray_v0/legacy_ndarray.v0",
    "straightdope_2017/test2.ndarray", "insightface_mtcnn/det1-0001.params"};
  for (int i = 0; i < 6; i++) {
    char path[1024];
    size_t n;
    snprintf(path, sizeof path, "%s/models/params-fixtures/%s", shared, files[i]);
    unsigned char *p = read_file(path, &n);
    CHECK(p != NULL);
    if (p == NULL) continue;
    if (n > 30000) n = 30000;                      // test2.ndarray: its first record is enough
    fuzz(files[i], p, n, i < 4 ? 1000 : 200);
    free(p);
  }
}

/* }================================================================== */

int main (void) {
  const char *shared = getenv("TRL_SHARED"), *tmp = getenv("TRL_TEST_TMP");
  char probe[1024];
  struct stat sb;
  static char own[512];                       // a directory of our own: no stray '.tmp' names
  if (tmp == NULL) tmp = "/tmp";
  mkdir(tmp, 0777);
  snprintf(own, sizeof own, "%s/test_ndlist", tmp);
  mkdir(own, 0777);
  tmp = own;
  if (shared) snprintf(probe, sizeof probe, "%s/models/params-fixtures/EXPECTED.json", shared);
  if (shared == NULL || stat(probe, &sb) != 0) {
    printf("test_ndlist: TRL_SHARED unset or without models/params-fixtures: skipping the "
           "fixture tests\n");
    shared = NULL;
  }
  test_versions_and_dtypes();
  test_errors();
  test_writer(tmp);
  if (shared) {
    test_fixtures(shared, tmp);
    test_models(shared);
  }
  test_fuzz(shared);
  CHECK(trl_tensor_live() == 0);
  return check_summary();
}
