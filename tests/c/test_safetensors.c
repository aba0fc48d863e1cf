/*
** test_safetensors.c: safetensors round trip (bit-exact, metadata, header padding), every
** read dtype, header/offset validation, truncations and byte flips, and format sniffing
** through trl_weights_load. Needs only TRL_TEST_TMP (falls back to /tmp).
*/
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "safetensors.h"

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

static void write_file (const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (f) { fwrite(p, 1, n, f); fclose(f); }
}

// A safetensors file from a header text and raw data; caller frees.
static unsigned char *build (const char *json, const void *data, size_t ndata, size_t *len) {
  uint64_t hl = strlen(json);
  *len = 8 + hl + ndata;
  unsigned char *p = malloc(*len);
  memcpy(p, &hl, 8);
  memcpy(p + 8, json, hl);
  if (ndata) memcpy(p + 8 + hl, data, ndata);
  return p;
}

static trl_status load_json (trl_ndlist *l, const char *json, const void *data, size_t ndata) {
  size_t n;
  unsigned char *p = build(json, data, ndata, &n);
  trl_status st = trl_safetensors_load_mem(l, "mem.safetensors", p, n);
  free(p);
  return st;
}

static trl_tensor *make (trl_dtype dt, int ndim, const int64_t *shape) {
  trl_tensor *t = NULL;
  CHECK_OK(trl_tensor_empty(&t, dt, ndim, shape));
  return t;
}

static void test_roundtrip (const char *tmp, char *path) {
  trl_tensor *a[6], *base = make(TRL_F32, 2, (int64_t[]){2, 3});
  for (int i = 0; i < 6; i++) trl_f32(base)[i] = i == 5 ? NAN : (float)i / 3 - 1;
  a[0] = base;
  a[1] = make(TRL_I64, 1, (int64_t[]){3});
  for (int i = 0; i < 3; i++) ((int64_t *)trl_data(a[1]))[i] = INT64_MIN + i;
  a[2] = make(TRL_U8, 1, (int64_t[]){5});
  memcpy(trl_data(a[2]), "\x00\x01\x7f\x80\xff", 5);
  CHECK_OK(trl_view_transpose(&a[3], base, 0, 1));
  a[4] = make(TRL_F32, 0, (int64_t[]){1});
  trl_f32(a[4])[0] = -0.0f;
  a[5] = make(TRL_F32, 2, (int64_t[]){0, 2});
  const char *nm[] = {"w\"eird\\ name\n", "ids", "bytes", "base.T", "sc\xc3\xa4lar", "empty"};
  const char *mk[] = {"format", "note"}, *mv[] = {"pt", "tab\there \"quoted\""};
  CHECK_OK(trl_safetensors_save(path, 6, nm, a, 2, mk, mv));

  size_t n = 0;
  unsigned char *p = read_file(path, &n);
  CHECK(p != NULL && n > 8);
  if (p == NULL) return;
  uint64_t hl;
  memcpy(&hl, p, 8);
  CHECK((8 + hl) % 8 == 0 && 8 + hl <= n);
  CHECK(memcmp(p + 8, "{\"__metadata__\":{\"format\":\"pt\"", 30) == 0);
  CHECK(p[8 + hl - 1] == ' ' || p[8 + hl - 1] == '}');
  CHECK(n - 8 - hl == 24 + 24 + 5 + 24 + 4);            // data in the given order, no gaps

  trl_ndlist l;
  CHECK_OK(trl_safetensors_load(&l, path));
  CHECK(l.n == 6 && l.names != NULL);
  for (int i = 0; i < l.n && i < 6; i++) {
    CHECK(strcmp(l.names[i], nm[i]) == 0);
    CHECK(l.arrays[i]->dtype == a[i]->dtype && trl_same_shape(l.arrays[i], a[i]));
    trl_tensor *c;
    CHECK_OK(trl_tensor_contiguous(&c, a[i]));
    size_t nb = (size_t)trl_numel(c) * trl_dtype_size(c->dtype);
    CHECK(memcmp(trl_data(l.arrays[i]), trl_data(c), nb) == 0);   // bit-exact (NaN, -0)
    trl_tensor_release(c);
  }
  CHECK(l.n_meta == 2);
  if (l.n_meta == 2) {
    CHECK(strcmp(l.meta_keys[0], "format") == 0 && strcmp(l.meta_vals[0], "pt") == 0);
    CHECK(strcmp(l.meta_keys[1], "note") == 0 && strcmp(l.meta_vals[1], mv[1]) == 0);
  }
  trl_ndlist_free(&l);

  // Fuzz the file we just wrote: every prefix fails, flips never crash.
  trl_ndlist f;
  unsigned char *buf = malloc(n);
  for (size_t k = 0; k < n; k++) {
    memcpy(buf, p, k);
    CHECK(trl_safetensors_load_mem(&f, "prefix", buf, k) != TRL_OK);
  }
  uint64_t rng = 88172645463325252ull;
  for (int it = 0; it < 4000; it++) {
    memcpy(buf, p, n);
    for (int j = 0; j < 1 + it % 3; j++) {
      rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
      buf[(rng >> 8) % (it % 2 ? n : 8 + hl)] = (unsigned char)rng;   // half in the header
    }
    if (trl_safetensors_load_mem(&f, "flip", buf, n) == TRL_OK) trl_ndlist_free(&f);
  }
  free(buf);
  free(p);

  // A refused save leaves the file alone; no temporary files are left behind.
  CHECK_FAILS(trl_safetensors_save(path, 2, (const char *[]){"x", "x"}, a, 0, NULL, NULL),
              "the name 'x' appears twice");
  CHECK_FAILS(trl_safetensors_save(path, 1, (const char *[]){"__metadata__"}, a, 0, NULL, NULL),
              "is reserved");
  CHECK_FAILS(trl_safetensors_save(path, 1, NULL, a, 0, NULL, NULL), "needs a name");
  CHECK_FAILS(trl_safetensors_save(path, 1, (const char *[]){"\xff"}, a, 0, NULL, NULL),
              "not UTF-8");
  CHECK_FAILS(trl_safetensors_save("/nonexistent/d/x.safetensors", 1, nm, a, 0, NULL, NULL),
              "/nonexistent/d/x.safetensors");
  CHECK_OK(trl_safetensors_load(&l, path));
  CHECK(l.n == 6);
  trl_ndlist_free(&l);
  DIR *d = opendir(tmp);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) CHECK(strstr(e->d_name, ".tmp") == NULL);
  if (d) closedir(d);

  // No tensors at all is a valid file: "{}" padded.
  char empty[1100];
  snprintf(empty, sizeof empty, "%s/empty.safetensors", tmp);
  CHECK_OK(trl_safetensors_save(empty, 0, NULL, NULL, 0, NULL, NULL));
  CHECK_OK(trl_safetensors_load(&l, empty));
  CHECK(l.n == 0 && l.n_meta == 0);
  trl_ndlist_free(&l);
  for (int i = 0; i < 6; i++) trl_tensor_release(a[i]);
}

static void test_dtypes (void) {
  unsigned char data[64];
  size_t at = 0;
  double f64[] = {0.1, -3};
  uint16_t f16[] = {0x3800, 0xfbff}, bf16[] = {0x4049, 0x0000};
  int32_t i32[] = {-2147483647 - 1, 5};
  int16_t i16[] = {-300, 300};
  int8_t i8[] = {-128, 1};
  uint8_t bl[] = {1, 0}, u8[] = {9, 250};
  memcpy(data + at, f64, 16); at += 16;
  memcpy(data + at, f16, 4); at += 4;
  memcpy(data + at, bf16, 4); at += 4;
  memcpy(data + at, i32, 8); at += 8;
  memcpy(data + at, i16, 4); at += 4;
  memcpy(data + at, i8, 2); at += 2;
  memcpy(data + at, bl, 2); at += 2;
  memcpy(data + at, u8, 2); at += 2;
  const char *json = "{\"u8\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[40,42]},"
    "\"f64\":{\"dtype\":\"F64\",\"shape\":[2,1],\"data_offsets\":[0,16]},"
    "\"f16\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[16,20]},"
    "\"bf16\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[20,24]},"
    "\"i32\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[24,32]},"
    "\"i16\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[32,36]},"
    "\"i8\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[36,38]},"
    "\"b\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[38,40]},"
    "\"z\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[40,40]}}";
  trl_ndlist l;
  CHECK_OK(load_json(&l, json, data, at));
  CHECK(l.n == 9);
  if (l.n == 9) {
    static const char *const order[] = {"f64", "f16", "bf16", "i32", "i16", "i8", "b", "z", "u8"};
    for (int i = 0; i < 9; i++) CHECK(strcmp(l.names[i], order[i]) == 0);   // by offset
    trl_tensor **a = l.arrays;
    CHECK(a[0]->dtype == TRL_F32 && a[0]->ndim == 2 && trl_f32(a[0])[0] == 0.1f);
    CHECK(trl_f32(a[1])[0] == 0.5f && trl_f32(a[1])[1] == -65504.0f);
    CHECK(trl_f32(a[2])[0] == 3.140625f && trl_f32(a[2])[1] == 0);
    CHECK(a[3]->dtype == TRL_I64 && trl_geti(a[3], 0) == -2147483647LL - 1);
    CHECK(trl_geti(a[4], 0) == -300 && trl_geti(a[5], 0) == -128);
    CHECK(trl_geti(a[6], 0) == 1 && trl_geti(a[6], 1) == 0);
    CHECK(a[7]->ndim == 2 && trl_numel(a[7]) == 0);
    CHECK(a[8]->dtype == TRL_U8 && ((uint8_t *)trl_data(a[8]))[1] == 250);
  }
  trl_ndlist_free(&l);
}

static void test_errors (void) {
  trl_ndlist l;
  float d[4] = {1, 2, 3, 4};
  const char *one = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  CHECK_OK(load_json(&l, one, d, 8));
  trl_ndlist_free(&l);
  CHECK_FAILS(load_json(&l, one, d, 12), "tensors cover 8 data bytes but 12 follow the header");
  CHECK_FAILS(load_json(&l, one, d, 4), "tensors cover 8 data bytes but 4 follow");
  CHECK_FAILS(load_json(&l, "[1,2]", d, 0), "header is not a JSON object");
  CHECK_FAILS(load_json(&l, "{\"a\":", d, 0), "header is not a JSON object");
  CHECK_FAILS(load_json(&l, "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}",
                        d, 2), "tensor 'a': dtype 'F8_E4M3' is not supported");
  CHECK_FAILS(load_json(&l, "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8),
              "tensor 'a': expected string 'dtype'");
  CHECK_FAILS(load_json(&l, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
                        d, 8), "shape entry 0 is not a non-negative integer");
  CHECK_FAILS(load_json(&l, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}",
                        d, 8), "shape entry 0 is not a non-negative integer");
  CHECK_FAILS(load_json(&l, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
                        d, 8), "tensor 'a': F32 [3] needs 12 bytes, 'data_offsets' [0,8] give 8");
  CHECK_FAILS(load_json(&l, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}",
                        d, 8), "0 <= begin <= end");
  CHECK_FAILS(load_json(&l, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                        "\"data_offsets\":[0,4]}}", d, 4), "9 dims, trl supports at most 8");
  CHECK_FAILS(load_json(&l, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 12),
              "tensor 'b' starts at data byte 4, expected 8 (overlap)");
  CHECK_FAILS(load_json(&l, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", d, 12),
              "tensor 'b' starts at data byte 8, expected 4 (gap)");
  CHECK_FAILS(load_json(&l, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", d, 8),
              "the name 'a' appears twice");
  CHECK_FAILS(load_json(&l, "{\"__metadata__\":{\"k\":1}}", d, 0),
              "'__metadata__' value of 'k' is not a string");
  CHECK_FAILS(load_json(&l, "{\"__metadata__\":[]}", d, 0), "'__metadata__' must be an object");

  unsigned char small[12] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
  CHECK_FAILS(trl_safetensors_load_mem(&l, "s", small, 12),
              "truncated: header length 200 but only 4 bytes follow");
  CHECK_FAILS(trl_safetensors_load_mem(&l, "s", small, 5), "truncated: 5 bytes");
  small[4] = 1;                                           // 2^32 + 200
  CHECK_FAILS(trl_safetensors_load_mem(&l, "s", small, 12), "over the limit");
  CHECK_FAILS(trl_safetensors_load(&l, "/nonexistent.safetensors"), "/nonexistent.safetensors");
  CHECK(trl_tensor_live() == 0);
}

// trl_weights_load picks the reader from the first bytes.
static void test_sniff (const char *tmp, const char *st_path) {
  char path[1100];
  trl_ndlist l;
  CHECK_OK(trl_weights_load(&l, st_path));
  CHECK(l.n == 6 && l.n_meta == 2);
  trl_ndlist_free(&l);
  trl_tensor *t = make(TRL_F32, 1, (int64_t[]){2});
  trl_f32(t)[0] = 1; trl_f32(t)[1] = 2;
  snprintf(path, sizeof path, "%s/sniff.params", tmp);
  CHECK_OK(trl_ndlist_save(path, 1, (const char *[]){"w"}, &t));
  CHECK_OK(trl_weights_load(&l, path));
  CHECK(l.n == 1 && l.names && strcmp(l.names[0], "w") == 0 && trl_f32(l.arrays[0])[1] == 2);
  trl_ndlist_free(&l);
  trl_tensor_release(t);
  snprintf(path, sizeof path, "%s/sniff.txt", tmp);
  write_file(path, "hello world, not weights", 24);
  CHECK_FAILS(trl_weights_load(&l, path), "not a weight file this loader knows");
  write_file(path, "\x93NUMPY\x01\x00", 8);
  CHECK_FAILS(trl_weights_load(&l, path), "NumPy .npy file, not supported");
  CHECK_FAILS(trl_weights_load(&l, "/nonexistent/w.bin"), "/nonexistent/w.bin");
}

int main (void) {
  const char *tmp = getenv("TRL_TEST_TMP");
  static char own[512];                       // a directory of our own: no stray '.tmp' names
  if (tmp == NULL) tmp = "/tmp";
  mkdir(tmp, 0777);
  snprintf(own, sizeof own, "%s/test_safetensors", tmp);
  mkdir(own, 0777);
  tmp = own;
  char path[1100];
  snprintf(path, sizeof path, "%s/rt.safetensors", tmp);
  test_roundtrip(tmp, path);
  test_dtypes();
  test_errors();
  test_sniff(tmp, path);
  CHECK(trl_tensor_live() == 0);
  return check_summary();
}
