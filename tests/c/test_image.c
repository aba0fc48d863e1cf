/*
** test_image.c: JPEG/PNG decoding against the fixtures of tests/data (expected pixels from
** make_fixtures.py), the genuine d2l PNGs, DCT scaling, EXIF orientation, damaged files,
** and encode/write round trips.
*/
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "image.h"

// 'e' fails with status 'code' and a message containing 'sub'.
#define CHECK_FAIL(e, code, sub) do { trl_status s_ = (e); \
  if (s_ == (code) && strstr(trl_errmsg(), (sub))) check_pass++; \
  else { check_fail++; fprintf(stderr, "%s:%d: %s: expected status %d with \"%s\", " \
                               "got %d \"%s\"\n", __FILE__, __LINE__, #e, (int)(code), (sub), \
                               (int)s_, s_ ? trl_errmsg() : ""); } } while (0)

static char datadir[1024], tmpdir[1024];

static unsigned char *slurp (const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno)); exit(1); }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *p = malloc(len ? (size_t)len : 1);
  if (!p || fread(p, 1, (size_t)len, f) != (size_t)len) {
    fprintf(stderr, "cannot read %s\n", path);
    exit(1);
  }
  fclose(f);
  *n = (size_t)len;
  return p;
}

static unsigned char *slurp_data (const char *name, size_t *n) {
  char path[1200];
  snprintf(path, sizeof path, "%s/%s", datadir, name);
  return slurp(path, n);
}

static void check_shape (const trl_tensor *t, int64_t h, int64_t w, int64_t c) {
  CHECK_EQ(t->dtype, TRL_U8);
  CHECK_EQ(t->ndim, 3);
  CHECK_EQ(t->shape[0], h);
  CHECK_EQ(t->shape[1], w);
  CHECK_EQ(t->shape[2], c);
  CHECK(trl_is_contiguous(t));
}

// Every fixture of fixtures.txt decodes to its expected pixels within tolerance.
static void test_fixtures (void) {
  char path[1200], line[512];
  snprintf(path, sizeof path, "%s/fixtures.txt", datadir);
  FILE *f = fopen(path, "r");
  CHECK(f != NULL);
  if (!f) return;
  int rows = 0;
  while (fgets(line, sizeof line, f)) {
    char file[128], raw[128];
    int flag, mw, mh, w, h, c, tol;
    if (line[0] == '#') continue;
    if (sscanf(line, "%127s %d %d %d %d %d %d %127s %d", file, &flag, &mw, &mh, &w, &h, &c, raw,
               &tol) != 9) {
      check_fail++;
      fprintf(stderr, "bad fixture line: %s", line);
      continue;
    }
    size_t n, nraw;
    unsigned char *buf = slurp_data(file, &n), *want = slurp_data(raw, &nraw);
    trl_tensor *t = NULL;
    trl_status st = mw || mh ? trl_image_decode_scaled(&t, buf, n, flag, mw, mh, file)
                             : trl_image_decode(&t, buf, n, flag, file);
    CHECK_OK(st);
    if (st == TRL_OK) {
      check_shape(t, h, w, c);
      CHECK_EQ(nraw, (size_t)(h * w * c));
      int maxd = 0;
      const uint8_t *got = trl_data(t);
      for (size_t i = 0; i < nraw && (int64_t)i < trl_numel(t); i++) {
        int d = abs((int)got[i] - (int)want[i]);
        if (d > maxd) maxd = d;
      }
      if (maxd > tol) {
        check_fail++;
        fprintf(stderr, "%s flag %d: max pixel difference %d > %d\n", file, flag, maxd, tol);
      } else {
        check_pass++;
      }
    }
    trl_tensor_release(t);
    free(buf);
    free(want);
    rows++;
  }
  fclose(f);
  CHECK(rows >= 20);
}

// The 15 genuine d2l PNGs: RGB, 80-372 px.
static void test_genuine (void) {
  const char *shared = getenv("TRL_SHARED");
  char dir[1200];
  if (!shared) { printf("skip genuine d2l PNGs: TRL_SHARED is not set\n"); return; }
  snprintf(dir, sizeof dir, "%s/data/d2l-genuine/hotdog/train/not-hotdog", shared);
  DIR *d = opendir(dir);
  if (!d) { printf("skip genuine d2l PNGs: %s: %s\n", dir, strerror(errno)); return; }
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strstr(e->d_name, ".png")) continue;
    char path[1500];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    trl_tensor *t = NULL, *g = NULL;
    CHECK_OK(trl_image_read(&t, path, 1));
    CHECK_OK(trl_image_read(&g, path, 0));
    if (t && g) {
      CHECK(t->shape[0] >= 50 && t->shape[0] <= 400 && t->shape[1] >= 50 && t->shape[1] <= 400);
      CHECK_EQ(t->shape[2], 3);
      CHECK_EQ(g->shape[2], 1);
      CHECK_EQ(g->shape[0], t->shape[0]);
      int64_t sum = 0, n = trl_numel(t);
      const uint8_t *p = trl_data(t);
      for (int64_t i = 0; i < n; i++) sum += p[i];
      CHECK(sum > 0 && sum < 255 * n);       // neither black nor white
    }
    trl_tensor_release(t);
    trl_tensor_release(g);
    count++;
  }
  closedir(d);
  CHECK_EQ(count, 15);
}

static void test_scaled (void) {
  size_t n;
  unsigned char *jpg = slurp_data("photo.jpg", &n);           // 64 x 48
  static const int cases[][4] = {                              // min_w min_h -> W H
    {0, 0, 64, 48}, {1, 1, 8, 6}, {16, 12, 16, 12}, {17, 12, 24, 18}, {9, 0, 16, 12},
    {0, 7, 16, 12}, {64, 48, 64, 48}, {65, 10, 64, 48}, {500, 500, 64, 48}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    trl_tensor *t = NULL;
    CHECK_OK(trl_image_decode_scaled(&t, jpg, n, 1, cases[i][0], cases[i][1], "photo.jpg"));
    if (t) check_shape(t, cases[i][3], cases[i][2], 3);
    trl_tensor_release(t);
  }
  free(jpg);
  // Orientation 6 shows the stored 16 x 8 as 8 x 16: the bound applies to what is shown.
  trl_tensor *t = NULL;
  jpg = slurp_data("orient6.jpg", &n);
  CHECK_OK(trl_image_decode_scaled(&t, jpg, n, 1, 0, 4, "orient6.jpg"));
  if (t) check_shape(t, 4, 2, 3);
  trl_tensor_release(t);
  free(jpg);
  // PNG ignores the bound.
  char path[1200];
  snprintf(path, sizeof path, "%s/interlaced.png", datadir);
  t = NULL;
  CHECK_OK(trl_image_read_scaled(&t, path, 1, 2, 2));
  if (t) check_shape(t, 9, 11, 3);
  trl_tensor_release(t);
}

// Decoding every prefix and many corrupted copies must fail cleanly or succeed; never crash.
static void abuse (const char *name, int must_fail_truncated) {
  size_t n;
  unsigned char *buf = slurp_data(name, &n), *copy = malloc(n);
  for (size_t len = 0; len < n; len += (n < 200 ? 1 : n / 150)) {
    trl_tensor *t = NULL;
    trl_status st = trl_image_decode(&t, buf, len, 1, name);
    if (must_fail_truncated) {
      CHECK(st != TRL_OK && strstr(trl_errmsg(), name));
      if (st == TRL_OK) fprintf(stderr, "%s truncated to %zu bytes decoded\n", name, len);
    }
    trl_tensor_release(t);
  }
  unsigned seed = 12345;
  for (int k = 0; k < 300; k++) {
    memcpy(copy, buf, n);
    for (int j = 0; j < 1 + k % 4; j++) {
      seed = seed * 1103515245u + 12345u;
      size_t at = 4 + (seed >> 8) % (n - 4);                 // keep the magic bytes
      copy[at] ^= (unsigned char)(1 + (seed >> 3) % 255);
    }
    trl_tensor *t = NULL;
    trl_status st = trl_image_decode(&t, copy, n, k & 1, name);
    if (st != TRL_OK) CHECK(strstr(trl_errmsg(), name) != NULL);
    trl_tensor_release(t);
  }
  free(copy);
  free(buf);
}

static void test_errors (void) {
  trl_tensor *t = NULL;
  CHECK_FAIL(trl_image_decode(&t, "GIF89a....", 10, 1, "x.gif"), TRL_EFORMAT,
             "imdecode: x.gif: not a JPEG or PNG image (starts with 47 49 46 38)");
  CHECK_FAIL(trl_image_decode(&t, "\xff\xd8", 2, 1, NULL), TRL_EFORMAT,
             "imdecode: <buffer>: not a JPEG or PNG image (starts with ff d8)");
  CHECK_FAIL(trl_image_decode(&t, "", 0, 1, "e.jpg"), TRL_EFORMAT, "e.jpg: empty");
  CHECK_FAIL(trl_image_decode(&t, "\x89PNG\r\n\x1a\n", 8, 2, "f.png"), TRL_EARG, "flag");
  CHECK_FAIL(trl_image_read(&t, "/nonexistent/dir/a.jpg", 1), TRL_EIO,
             "imread: /nonexistent/dir/a.jpg: No such file or directory");
  CHECK_FAIL(trl_image_read(&t, datadir, 1), TRL_EIO, "is a directory");
  CHECK(t == NULL);

  size_t n;
  unsigned char *jpg = slurp_data("photo.jpg", &n);
  CHECK_FAIL(trl_image_decode(&t, jpg, n / 2, 1, "half.jpg"), TRL_EFORMAT,
             "imdecode: half.jpg: corrupt or truncated JPEG (Premature end of JPEG file)");
  CHECK_FAIL(trl_image_decode(&t, jpg, n - 2, 1, "noeoi.jpg"), TRL_EFORMAT, "noeoi.jpg");
  free(jpg);
  unsigned char *png = slurp_data("rgb.png", &n);
  CHECK_FAIL(trl_image_decode(&t, png, n - 20, 1, "cut.png"), TRL_EFORMAT,
             "imdecode: cut.png: corrupt or truncated PNG");
  png[n - 30] ^= 0x55;                                        // inside IDAT: CRC error
  CHECK_FAIL(trl_image_decode(&t, png, n, 1, "crc.png"), TRL_EFORMAT, "crc.png");
  free(png);
  // The file path names the failure when read from disk.
  char path[1200];
  snprintf(path, sizeof path, "%s/cut.jpg", tmpdir);
  jpg = slurp_data("photo.jpg", &n);
  FILE *f = fopen(path, "wb");
  fwrite(jpg, 1, n / 3, f);
  fclose(f);
  free(jpg);
  CHECK_FAIL(trl_image_read(&t, path, 1), TRL_EFORMAT, path);
  CHECK(t == NULL);
  unlink(path);

  abuse("photo.jpg", 1);
  abuse("cmyk.jpg", 1);
  abuse("orient6.jpg", 1);
  abuse("rgb.png", 1);
  abuse("interlaced.png", 1);
  abuse("palette.png", 1);
}

static trl_tensor *pattern (int64_t h, int64_t w, int64_t c) {
  trl_tensor *t = NULL;
  if (trl_tensor_empty(&t, TRL_U8, 3, (int64_t[]){h, w, c}) != TRL_OK) exit(1);
  uint8_t *p = trl_data(t);
  for (int64_t y = 0; y < h; y++)
    for (int64_t x = 0; x < w; x++)
      for (int64_t k = 0; k < c; k++)
        p[(y * w + x) * c + k] = (uint8_t)(x * 4 + y * 3 + k * 50);
  return t;
}

static int64_t max_diff (const trl_tensor *a, const trl_tensor *b) {
  if (!trl_same_shape(a, b)) return 1000;
  int64_t m = 0;
  for (int64_t i = 0; i < trl_numel(a); i++) {
    int64_t d = llabs(trl_geti(a, i) - trl_geti(b, i));
    if (d > m) m = d;
  }
  return m;
}

static void test_encode (void) {
  for (int c = 1; c <= 3; c += 2) {
    trl_tensor *img = pattern(13, 17, c), *back = NULL;
    unsigned char *buf = NULL;
    size_t n = 0;
    CHECK_OK(trl_image_encode_png(img, &buf, &n));
    CHECK_OK(trl_image_decode(&back, buf, n, c == 3, "roundtrip.png"));
    if (back) CHECK_EQ(max_diff(img, back), 0);
    free(buf);
    trl_tensor_release(back);
    back = NULL;
    CHECK_OK(trl_image_encode_jpeg(img, 95, &buf, &n));
    CHECK(n > 100 && buf[0] == 0xff && buf[1] == 0xd8);
    CHECK_OK(trl_image_decode(&back, buf, n, c == 3, "roundtrip.jpg"));
    if (back) CHECK(max_diff(img, back) <= 12);
    free(buf);
    trl_tensor_release(back);
    trl_tensor_release(img);
  }
  // A non-contiguous view (W and H swapped) and a 2-D gray image encode by their strides.
  trl_tensor *img = pattern(6, 9, 3), *tr = NULL, *back = NULL, *g = NULL, *g2 = NULL;
  CHECK_OK(trl_view_transpose(&tr, img, 0, 1));
  unsigned char *buf = NULL;
  size_t n = 0;
  CHECK_OK(trl_image_encode_png(tr, &buf, &n));
  CHECK_OK(trl_image_decode(&back, buf, n, 1, "t.png"));
  if (back) CHECK_EQ(max_diff(tr, back), 0);
  free(buf);
  trl_tensor_release(back);
  back = NULL;
  CHECK_OK(trl_view_select(&g, img, 2, 1));                  // [6,9] green plane, stride 3
  CHECK_OK(trl_image_encode_png(g, &buf, &n));
  CHECK_OK(trl_image_decode(&back, buf, n, 0, "g.png"));
  if (back) CHECK_OK(trl_view_select(&g2, back, 2, 0));
  if (g2) CHECK_EQ(max_diff(g, g2), 0);
  free(buf);
  buf = NULL;
  trl_tensor_release(back);
  trl_tensor_release(g2);
  trl_tensor_release(g);
  // Bad inputs.
  trl_tensor *f = NULL, *two = NULL, *empty = NULL;
  CHECK_OK(trl_tensor_zeros(&f, TRL_F32, 3, (int64_t[]){2, 2, 3}));
  CHECK_OK(trl_tensor_zeros(&two, TRL_U8, 3, (int64_t[]){2, 2, 2}));
  CHECK_OK(trl_tensor_zeros(&empty, TRL_U8, 3, (int64_t[]){0, 2, 3}));
  CHECK_FAIL(trl_image_encode_png(f, &buf, &n), TRL_ETYPE, "expected a uint8 image, got f");
  CHECK_FAIL(trl_image_encode_jpeg(two, 90, &buf, &n), TRL_ESHAPE, "got [2,2,2]");
  CHECK_FAIL(trl_image_encode_png(empty, &buf, &n), TRL_ESHAPE, "[0,2,3]");
  CHECK_FAIL(trl_image_encode_jpeg(img, 0, &buf, &n), TRL_EARG, "quality must be 1..100, got 0");
  CHECK(buf == NULL);
  trl_tensor_release(f);
  trl_tensor_release(two);
  trl_tensor_release(empty);

  // Files: by extension, atomically.
  char path[1200];
  snprintf(path, sizeof path, "%s/w.PNG", tmpdir);
  CHECK_OK(trl_image_write(img, path, 0));
  back = NULL;
  CHECK_OK(trl_image_read(&back, path, 1));
  if (back) CHECK_EQ(max_diff(img, back), 0);
  trl_tensor_release(back);
  unlink(path);
  snprintf(path, sizeof path, "%s/w.jpeg", tmpdir);
  CHECK_OK(trl_image_write(img, path, 80));
  back = NULL;
  CHECK_OK(trl_image_read(&back, path, 1));
  if (back) check_shape(back, 6, 9, 3);
  trl_tensor_release(back);
  unlink(path);
  snprintf(path, sizeof path, "%s/w.gif", tmpdir);
  CHECK_FAIL(trl_image_write(img, path, 0), TRL_EARG, "unknown image extension");
  CHECK_FAIL(trl_image_write(img, "/nonexistent/dir/w.png", 0), TRL_EIO,
             "imwrite: /nonexistent/dir/w.png: cannot create a temporary file");
  // Nothing left behind in tmpdir.
  DIR *d = opendir(tmpdir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strstr(e->d_name, "w.") == e->d_name) {
      check_fail++;
      fprintf(stderr, "leftover %s\n", e->d_name);
    }
  if (d) closedir(d);
  trl_tensor_release(tr);
  trl_tensor_release(img);
}

int main (void) {
  // The fixtures sit next to this source: tests/c/../data.
  snprintf(datadir, sizeof datadir, "%s", __FILE__);
  char *slash = strrchr(datadir, '/');
  if (slash) strcpy(slash, "/../data");
  else snprintf(datadir, sizeof datadir, "tests/data");
  const char *tmp = getenv("TRL_TEST_TMP");
  snprintf(tmpdir, sizeof tmpdir, "%s/image", tmp ? tmp : "/tmp/trl-test");
  char cmd[1300];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tmpdir);
  if (system(cmd) != 0) { fprintf(stderr, "cannot create %s\n", tmpdir); return 1; }

  test_fixtures();
  test_genuine();
  test_scaled();
  test_errors();
  test_encode();
  CHECK_EQ(trl_tensor_live(), 0);
  return check_summary();
}
