/*
** test_pth.c: PyTorch zip checkpoints. tests/data/pth/ holds a torch-written state_dict
** (conv/bn/linear plus int64, transposed, offset, half, double, uint8, bool, int32 and
** Parameter entries) in pickle protocols 2 and 4, a legacy file, a nested checkpoint and two
** hostile pickles; hand-built pickles test strides and bounds; mutated pickles never crash.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zip.h>

#include "check.h"
#include "pth.h"

static const char *datadir;

static void path_of (char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", datadir, name);
}

/* {==================================================================
** Zip building (in memory, stored entries)
** =================================================================== */

typedef struct { const char *name; const void *data; size_t len; } Entry;

static unsigned char *make_zip (const Entry *e, int n, size_t *len) {
  zip_error_t ze;
  zip_error_init(&ze);
  zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
  zip_source_keep(src);
  zip_t *z = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
  for (int i = 0; i < n; i++) {
    zip_source_t *s = zip_source_buffer(z, e[i].data, e[i].len, 0);
    zip_int64_t idx = zip_file_add(z, e[i].name, s, ZIP_FL_OVERWRITE);
    zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0);
  }
  zip_close(z);
  zip_source_open(src);
  zip_source_seek(src, 0, SEEK_END);
  *len = (size_t)zip_source_tell(src);
  zip_source_seek(src, 0, SEEK_SET);
  unsigned char *p = malloc(*len);
  zip_source_read(src, p, *len);
  zip_source_close(src);
  zip_source_free(src);
  zip_error_fini(&ze);
  return p;
}

static trl_status load_entries (trl_ndlist *l, const Entry *e, int n) {
  size_t len;
  unsigned char *p = make_zip(e, n, &len);
  trl_status st = trl_pth_load_mem(l, "mem.pth", p, len);
  free(p);
  return st;
}

/* }================================================================== */

/* {==================================================================
** The torch-written fixtures
** =================================================================== */

static void check_tiny (const char *file) {
  static const char *const names[] = {"0.weight", "0.bias", "1.weight", "1.bias",
    "1.running_mean", "1.running_var", "1.num_batches_tracked", "2.weight", "2.bias",
    "extra.transposed", "extra.full", "extra.offset", "extra.half", "extra.double",
    "extra.bytes", "extra.mask", "extra.int32", "extra.param"};
  char path[1100];
  path_of(path, sizeof path, file);
  trl_ndlist l;
  CHECK_OK(trl_pth_load(&l, path));
  CHECK_EQ(l.n, 18);
  if (l.n != 18) { trl_ndlist_free(&l); return; }
  for (int i = 0; i < 18; i++) CHECK(strcmp(l.names[i], names[i]) == 0);
  trl_tensor **a = l.arrays;
  CHECK(a[0]->ndim == 4 && a[0]->shape[0] == 2 && a[0]->shape[1] == 1 && a[0]->shape[3] == 3);
  for (int i = 0; i < 9; i++) {                    // module floats: arange(n) * 0.5 - 1
    if (i == 6) continue;
    CHECK(a[i]->dtype == TRL_F32 && trl_is_contiguous(a[i]));
    for (int64_t k = 0; k < trl_numel(a[i]); k++) CHECK(trl_f32(a[i])[k] == (float)k * 0.5f - 1);
  }
  CHECK(a[6]->dtype == TRL_I64 && a[6]->ndim == 0 && trl_geti(a[6], 0) == 7);
  CHECK(a[7]->ndim == 2 && a[7]->shape[0] == 3 && a[7]->shape[1] == 4);
  CHECK(a[9]->ndim == 2 && a[9]->shape[0] == 4 && a[9]->shape[1] == 3);
  for (int i = 0; i < 4; i++)                      // transposed: t[i][j] = 4j + i
    for (int j = 0; j < 3; j++) CHECK(trl_f32(a[9])[i * 3 + j] == (float)(4 * j + i));
  CHECK(a[10]->shape[0] == 10 && trl_f32(a[10])[9] == 9);
  CHECK(a[11]->shape[0] == 4 && trl_f32(a[11])[0] == 3 && trl_f32(a[11])[3] == 6);
  CHECK(trl_f32(a[12])[0] == 1.5f && trl_f32(a[12])[1] == -2 && trl_f32(a[12])[2] == 65504);
  CHECK(a[13]->ndim == 2 && trl_f32(a[13])[0] == 0.25f && trl_f32(a[13])[1] == (float)-1e-3);
  CHECK(a[14]->dtype == TRL_U8 && ((uint8_t *)trl_data(a[14]))[2] == 255);
  CHECK(a[15]->dtype == TRL_I64 && trl_geti(a[15], 0) == 1 && trl_geti(a[15], 1) == 0);
  CHECK(trl_geti(a[16], 0) == -5 && trl_geti(a[16], 1) == 1 << 30);
  CHECK(a[17]->shape[0] == 2 && trl_f32(a[17])[1] == 1);
  trl_ndlist_free(&l);
}

static void test_refusals (void) {
  char path[1100];
  trl_ndlist l;
  unlink("/tmp/trl_pth_pwned");
  path_of(path, sizeof path, "evil_global.pth");
  CHECK_FAILS(trl_pth_load(&l, path), "evil_global.pth: refusing to call os.system (only plain "
              "tensor state_dicts are loaded)");
  path_of(path, sizeof path, "evil_stack.pth");
  CHECK_FAILS(trl_pth_load(&l, path), "refusing to call builtins.eval");
  CHECK(access("/tmp/trl_pth_pwned", F_OK) != 0);      // nothing ran
  path_of(path, sizeof path, "legacy.pth");
  CHECK_FAILS(trl_pth_load(&l, path), "legacy .pth format not supported, re-save with torch>=1.6");
  path_of(path, sizeof path, "nested.pth");
  CHECK_FAILS(trl_pth_load(&l, path), "'epoch' is not a tensor (only plain tensor state_dicts");
  path_of(path, sizeof path, "make_fixtures.py");
  CHECK_FAILS(trl_pth_load(&l, path), "not a PyTorch checkpoint (no zip header)");
  CHECK_FAILS(trl_pth_load(&l, "/nonexistent.pth"), "pth: /nonexistent.pth: No such file");
  CHECK(l.n == 0 && l.arrays == NULL);
}

/* }================================================================== */

/* {==================================================================
** Hand-built pickles: strides, offsets and bounds
** =================================================================== */

typedef struct { unsigned char p[512]; size_t n; } Pkl;

static void op (Pkl *k, const void *s, size_t n) { memcpy(k->p + k->n, s, n); k->n += n; }
static void ops (Pkl *k, const char *s) { op(k, s, strlen(s)); }
#define LIT(k, s) op((k), (s), sizeof(s) - 1)             // a literal that may hold NULs
static void str (Pkl *k, const char *s) {
  unsigned char h[2] = {0x8c, (unsigned char)strlen(s)};        // SHORT_BINUNICODE
  op(k, h, 2);
  ops(k, s);
}
static void i8 (Pkl *k, int v) { unsigned char h[2] = {'K', (unsigned char)v}; op(k, h, 2); }
static void ints (Pkl *k, int n, const int *v) {
  ops(k, "(");
  for (int i = 0; i < n; i++) i8(k, v[i]);
  ops(k, "t");
}

// {'w': tensor over FloatStorage '0' of 'numel' floats (0, 1, 2, ...)}
static trl_status one_tensor (trl_ndlist *l, int numel, int off, int nd, const int *size,
                              const int *stride, const char *glob) {
  Pkl k = {.n = 0};
  ops(&k, "\x80\x02}(");
  str(&k, "w");
  ops(&k, "ctorch._utils\n_rebuild_tensor_v2\n((");
  str(&k, "storage");
  ops(&k, glob);
  str(&k, "0");
  str(&k, "cpu");
  i8(&k, numel);
  ops(&k, "tQ");
  i8(&k, off);
  ints(&k, nd, size);
  ints(&k, nd, stride);
  ops(&k, "\x89" "ccollections\nOrderedDict\n)RtRu.");
  float data[64];
  for (int i = 0; i < 64; i++) data[i] = (float)i;
  Entry e[] = {{"arc/data.pkl", k.p, k.n}, {"arc/data/0", data, (size_t)numel * 4}};
  return load_entries(l, e, 2);
}

static void test_strides (void) {
  trl_ndlist l;
  const char *fs = "ctorch\nFloatStorage\n";
  CHECK_OK(one_tensor(&l, 12, 1, 2, (int[]){2, 3}, (int[]){1, 4}, fs));   // a strided view
  if (l.n == 1) {
    const float want[] = {1, 5, 9, 2, 6, 10};
    for (int i = 0; i < 6; i++) CHECK(trl_f32(l.arrays[0])[i] == want[i]);
  }
  trl_ndlist_free(&l);
  CHECK_OK(one_tensor(&l, 4, 0, 2, (int[]){2, 2}, (int[]){0, 1}, fs));    // stride 0 (expand)
  if (l.n == 1) CHECK(trl_f32(l.arrays[0])[2] == 0 && trl_f32(l.arrays[0])[3] == 1);
  trl_ndlist_free(&l);
  CHECK_OK(one_tensor(&l, 4, 4, 1, (int[]){0}, (int[]){1}, fs));         // empty at the end
  CHECK(l.n == 1 && trl_numel(l.arrays[0]) == 0);
  trl_ndlist_free(&l);
  CHECK_FAILS(one_tensor(&l, 4, 0, 1, (int[]){5}, (int[]){1}, fs),
              "more elements than its storage '0' (4)");
  CHECK_FAILS(one_tensor(&l, 4, 2, 1, (int[]){3}, (int[]){1}, fs),
              "reaches past the end of storage");
  CHECK_FAILS(one_tensor(&l, 8, 0, 2, (int[]){2, 2}, (int[]){100, 1}, fs), "reaches past the end");
  CHECK_FAILS(one_tensor(&l, 4, 4, 1, (int[]){1}, (int[]){1}, fs), "offset 4 is outside storage");
  CHECK_FAILS(one_tensor(&l, 4, 0, 1, (int[]){4}, (int[]){1}, "ctorch\nDoubleStorage\n"),
              "should hold 4 float64 elements (32 bytes), its entry has 16 bytes");
  CHECK_FAILS(one_tensor(&l, 4, 0, 1, (int[]){4}, (int[]){1}, "ctorch\nQUInt8Storage\n"),
              "refusing to call torch.QUInt8Storage");
  CHECK_FAILS(one_tensor(&l, 4, 0, 9, (int[]){1, 1, 1, 1, 1, 1, 1, 1, 4},
                         (int[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, fs), "9 dims, trl supports at most 8");

  Pkl k = {.n = 0};
  LIT(&k, "\x80\x02}q\x00.");
  Entry e[] = {{"arc/data.pkl", k.p, k.n}};
  CHECK_OK(load_entries(&l, e, 1));                       // an empty state_dict
  CHECK(l.n == 0);
  trl_ndlist_free(&l);
  Entry none[] = {{"arc/other", k.p, k.n}};
  CHECK_FAILS(load_entries(&l, none, 1), "without '<archive>/data.pkl'");
  static const struct { const char *pkl; size_t n; const char *err; } bad[] = {
#define BAD(p, err) {p, sizeof(p) - 1, err}
    BAD("\x80\x02}q\x05h\x06.", "data.pkl byte 7: memo index 6 was never stored"),
    BAD("\x80\x02}X\x01\x00\x00\x00" "wK\x01s.", "'w' is not a tensor"),
    BAD("\x80\x02(\x8c\x02" "osR.", "stack underflow"),
    BAD("\x80\x02}\x81.", "pickle opcode 0x81 is not supported"),
    BAD("\x80\x02}..", "1 bytes after the pickle's STOP"),
    BAD("\x80\x02]\x8c\x01" "a\x8c\x01" "bs.", "SETITEM on something that is not a dict"),
    BAD("\x80\x02}\x8c\x01" "a\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09" "s.",
        "LONG1 of 9 bytes does not fit int64"),
    BAD("\x80\x02}r\xff\xff\xff\x7f.", "memo index 2147483647 is implausible"),
    BAD("\x80\x02" "ctorch\nFloatStorage\n)R.", "a storage type cannot be called"),
    BAD("\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R.", "OrderedDict called with arguments"),
    BAD("\x80\x02(\x8c\x07" "storageK\x01tQ.", "persistent id is not ('storage', type"),
    BAD("\x80\x09}.", "pickle protocol 9 is not supported"),
    BAD("\x80\x02" "ctorch\n", "truncated GLOBAL name"),
#undef BAD
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    Entry b[] = {{"arc/data.pkl", bad[i].pkl, bad[i].n}};
    CHECK_FAILS(load_entries(&l, b, 1), bad[i].err);
  }
  const char bo[] = "big";
  Entry big[] = {{"arc/data.pkl", "\x80\x02}.", 4}, {"arc/byteorder", bo, 3}};
  CHECK_FAILS(load_entries(&l, big, 2), "big-endian checkpoints are not supported");
}

/* }================================================================== */

/* {==================================================================
** Fuzz: a torch pickle truncated and mutated inside a valid zip, and the raw file
** =================================================================== */

static void test_fuzz (void) {
  char path[1100];
  path_of(path, sizeof path, "tiny_p4.pth");
  int err;
  zip_t *z = zip_open(path, ZIP_RDONLY, &err);
  CHECK(z != NULL);
  if (z == NULL) return;
  int n = (int)zip_get_num_entries(z, 0);
  Entry *e = calloc((size_t)n, sizeof *e);
  unsigned char *pkl = NULL;
  size_t npkl = 0;
  for (int i = 0; i < n; i++) {
    zip_stat_t zs;
    zip_stat_index(z, (zip_uint64_t)i, 0, &zs);
    unsigned char *d = malloc(zs.size + 1);
    zip_file_t *f = zip_fopen_index(z, (zip_uint64_t)i, 0);
    zip_fread(f, d, zs.size);
    zip_fclose(f);
    e[i] = (Entry){strdup(zs.name), d, zs.size};
    if (strstr(zs.name, "data.pkl")) { pkl = d; npkl = zs.size; }
  }
  zip_discard(z);
  CHECK(pkl != NULL);
  unsigned char *orig = malloc(npkl);
  memcpy(orig, pkl, npkl);
  trl_ndlist l;
  for (size_t cut = 0; cut < npkl; cut++) {          // every truncation of the pickle
    for (int i = 0; i < n; i++) if (e[i].data == pkl) e[i].len = cut;
    CHECK(load_entries(&l, e, n) != TRL_OK);
  }
  for (int i = 0; i < n; i++) if (e[i].data == pkl) e[i].len = npkl;
  uint64_t rng = 0x2545F4914F6CDD1Dull;
  int ok = 0;
  for (int it = 0; it < 3000; it++) {                 // random byte flips in the pickle
    memcpy(pkl, orig, npkl);
    for (int j = 0; j < 1 + it % 3; j++) {
      rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
      pkl[(rng >> 16) % npkl] = (unsigned char)rng;
    }
    if (load_entries(&l, e, n) == TRL_OK) { ok++; trl_ndlist_free(&l); }
  }
  size_t len;
  memcpy(pkl, orig, npkl);
  unsigned char *file = make_zip(e, n, &len), *buf = malloc(len);
  CHECK_OK(trl_pth_load_mem(&l, "rebuilt.pth", file, len));
  CHECK(l.n == 18);
  trl_ndlist_free(&l);
  for (size_t cut = 0; cut < len; cut += 7) {         // truncations of the whole archive
    memcpy(buf, file, cut);
    CHECK(trl_pth_load_mem(&l, "cut.pth", buf, cut) != TRL_OK);
  }
  for (int it = 0; it < 1000; it++) {                 // flips anywhere in the archive
    memcpy(buf, file, len);
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    buf[(rng >> 16) % len] = (unsigned char)rng;
    if (trl_pth_load_mem(&l, "flip.pth", buf, len) == TRL_OK) trl_ndlist_free(&l);
  }
  free(buf);
  free(file);
  free(orig);
  for (int i = 0; i < n; i++) { free((void *)e[i].name); free((void *)e[i].data); }
  free(e);
  CHECK(trl_tensor_live() == 0);
}

/* }================================================================== */

int main (void) {
  // The fixtures sit next to this file's source: CMake compiles it by absolute path.
  static char dir[1024];
  const char *src = __FILE__, *cut = strstr(src, "tests/c/test_pth.c");
  snprintf(dir, sizeof dir, "%.*stests/data/pth", cut ? (int)(cut - src) : 0, src);
  datadir = dir;
  char probe[1100];
  path_of(probe, sizeof probe, "tiny_p2.pth");
  if (access(probe, R_OK) != 0) {
    printf("test_pth: cannot find %s (run from the repository root)\n", probe);
    return 1;
  }
  check_tiny("tiny_p2.pth");
  check_tiny("tiny_p4.pth");
  test_refusals();
  test_strides();
  test_fuzz();
  CHECK(trl_tensor_live() == 0);
  return check_summary();
}
