/*
** test_archive.c: zip extraction: a good archive (and extracting it again over itself), the
** refused entries (zip-slip '..', absolute paths, symlinks), a CRC error, the genuine
** truncated d2l download, interruption, clashes; a failure must leave 'dest' unchanged.
** The bad archives are made here with libzip; the CRC one is patched after writing.
*/
#define _GNU_SOURCE                  // memmem
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zip.h>

#include "check.h"
#include "archive.h"

// 'e' fails with status 'code' and a message containing 'sub'.
#define CHECK_FAIL(e, code, sub) do { trl_status s_ = (e); \
  if (s_ == (code) && strstr(trl_errmsg(), (sub))) check_pass++; \
  else { check_fail++; fprintf(stderr, "%s:%d: %s: expected status %d with \"%s\", " \
                               "got %d \"%s\"\n", __FILE__, __LINE__, #e, (int)(code), (sub), \
                               (int)s_, s_ ? trl_errmsg() : ""); } } while (0)

static char tmpdir[1024];

typedef struct Entry {
  const char *name;
  const char *data;                  // NULL: a directory
  size_t len;
  int store;                         // no compression, so the bytes can be patched
  int symlink;
} Entry;

static void make_zip (const char *path, const Entry *es, int n) {
  int err;
  unlink(path);
  zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!za) { fprintf(stderr, "zip_open %s failed (%d)\n", path, err); exit(1); }
  for (int i = 0; i < n; i++) {
    zip_int64_t idx;
    if (!es[i].data) {
      idx = zip_dir_add(za, es[i].name, ZIP_FL_ENC_UTF_8);
    } else {
      zip_source_t *src = zip_source_buffer(za, es[i].data, es[i].len, 0);
      idx = src ? zip_file_add(za, es[i].name, src, ZIP_FL_ENC_UTF_8) : -1;
      if (idx >= 0 && es[i].store) zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_STORE, 0);
    }
    if (idx >= 0 && es[i].symlink)
      zip_file_set_external_attributes(za, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
                                       (zip_uint32_t)(S_IFLNK | 0777) << 16);
    if (idx < 0) { fprintf(stderr, "adding %s: %s\n", es[i].name, zip_strerror(za)); exit(1); }
  }
  if (zip_close(za) != 0) { fprintf(stderr, "zip_close: %s\n", zip_strerror(za)); exit(1); }
}

// Every path under 'dir' (recursively, sorted by readdir order) with sizes, into 'out'.
static void listing (const char *dir, char *out, size_t cap) {
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char p[2048];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    lstat(p, &sb);
    size_t k = strlen(out);
    snprintf(out + k, cap - k, "%s:%lld;", p, (long long)sb.st_size);
    if (S_ISDIR(sb.st_mode)) listing(p, out, cap);
  }
  if (d) closedir(d);
}

static void rm_rf (const char *path) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd) != 0) fprintf(stderr, "rm -rf %s failed\n", path);
}

static char *slurp (const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = malloc((size_t)len + 1);
  *n = fread(p, 1, (size_t)len, f);
  fclose(f);
  return p;
}

static int exists (const char *path) {
  struct stat sb;
  return lstat(path, &sb) == 0;
}

typedef struct Progress { int calls; int64_t done, total; int stop_after; } Progress;

static int on_progress (void *ud, int64_t done, int64_t total) {
  Progress *p = ud;
  CHECK(done >= p->done && done <= total);
  p->calls++;
  p->done = done;
  p->total = total;
  return p->stop_after && p->calls >= p->stop_after;
}

static char big[200000];

static void test_good (void) {
  char zip[1100], dest[1100], p[1200];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7 + i / 1000);
  Entry es[] = {
    {"top/a.txt", "hello\n", 6, 0, 0}, {"top/sub/", NULL, 0, 0, 0},
    {"top/sub/b.bin", big, sizeof big, 1, 0}, {"root.txt", "x", 1, 0, 0},
    {"deep/er/c.txt", "c", 1, 0, 0}};
  snprintf(zip, sizeof zip, "%s/good.zip", tmpdir);
  snprintf(dest, sizeof dest, "%s/good-out/x", tmpdir);   // created, with its parent
  make_zip(zip, es, 5);
  Progress pr = {0};
  CHECK_OK(trl_zip_extract(zip, dest, on_progress, &pr));
  CHECK(pr.calls >= 1);
  CHECK_EQ(pr.done, 6 + sizeof big + 1 + 1);
  CHECK_EQ(pr.total, pr.done);
  size_t n;
  snprintf(p, sizeof p, "%s/top/a.txt", dest);
  char *s = slurp(p, &n);
  CHECK(s && n == 6 && memcmp(s, "hello\n", 6) == 0);
  free(s);
  snprintf(p, sizeof p, "%s/top/sub/b.bin", dest);
  s = slurp(p, &n);
  CHECK(s && n == sizeof big && memcmp(s, big, n) == 0);
  free(s);
  snprintf(p, sizeof p, "%s/deep/er/c.txt", dest);
  CHECK(exists(p));
  // No temporary directory left behind.
  DIR *d = opendir(dest);
  struct dirent *e;
  int entries = 0;
  while (d && (e = readdir(d))) {
    CHECK(strncmp(e->d_name, ".trl-", 5) != 0);
    entries++;
  }
  if (d) closedir(d);
  CHECK_EQ(entries, 2 + 3);
  // Again over itself: directories merge, files are replaced; an extra file stays.
  snprintf(p, sizeof p, "%s/top/mine.txt", dest);
  FILE *f = fopen(p, "w");
  fputs("mine", f);
  fclose(f);
  CHECK_OK(trl_zip_extract(zip, dest, NULL, NULL));
  CHECK(exists(p));
  snprintf(p, sizeof p, "%s/top/sub/b.bin", dest);
  s = slurp(p, &n);
  CHECK(s && n == sizeof big);
  free(s);
  // A file where the archive has a directory: refused, nothing changes.
  char before[8192] = "", after[8192] = "";
  snprintf(p, sizeof p, "%s/deep", dest);
  rm_rf(p);
  f = fopen(p, "w");
  fclose(f);
  listing(dest, before, sizeof before);
  CHECK_FAIL(trl_zip_extract(zip, dest, NULL, NULL), TRL_EIO, "deep exists, and the archive has a "
             "directory of that name (nothing extracted)");
  listing(dest, after, sizeof after);
  CHECK(strcmp(before, after) == 0);
  // Interrupted by the progress callback: nothing new.
  Progress stop = {.stop_after = 1};
  snprintf(dest, sizeof dest, "%s/interrupted", tmpdir);
  CHECK_FAIL(trl_zip_extract(zip, dest, on_progress, &stop), TRL_EINTR, "interrupted");
  CHECK(!exists(dest));                // it was created for this call, so it is gone again
  snprintf(dest, sizeof dest, "%s/good-out", tmpdir);
  rm_rf(dest);
  unlink(zip);
}

// 'zip' must fail with 'sub' in the message and leave 'dest' exactly as it was.
static void check_refused (const char *zip, const char *sub, trl_status code) {
  char dest[1100], before[4096] = "", after[4096] = "";
  snprintf(dest, sizeof dest, "%s/bad-out/d", tmpdir);
  rm_rf(dest);
  char cmd[2400];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s' && echo keep > '%s/keep.txt'", dest, dest);
  if (system(cmd) != 0) exit(1);
  listing(dest, before, sizeof before);
  CHECK_FAIL(trl_zip_extract(zip, dest, NULL, NULL), code, sub);
  CHECK(strstr(trl_errmsg(), zip) != NULL);
  listing(dest, after, sizeof after);
  CHECK(strcmp(before, after) == 0);
  if (strcmp(before, after) != 0) fprintf(stderr, "  before %s\n  after %s\n", before, after);
  snprintf(cmd, sizeof cmd, "%s/bad-out/evil.txt", tmpdir);
  CHECK(!exists(cmd));
}

static void test_refused (void) {
  char zip[1100];
  snprintf(zip, sizeof zip, "%s/slip.zip", tmpdir);
  Entry slip[] = {{"ok.txt", "ok", 2, 0, 0}, {"../evil.txt", "evil", 4, 0, 0}};
  make_zip(zip, slip, 2);
  check_refused(zip, "refusing entry '../evil.txt': '..' path component (nothing extracted)",
                TRL_EFORMAT);
  Entry slip2[] = {{"ok.txt", "ok", 2, 0, 0}, {"a/../../evil.txt", "evil", 4, 0, 0}};
  make_zip(zip, slip2, 2);
  check_refused(zip, "refusing entry 'a/../../evil.txt'", TRL_EFORMAT);
  Entry slip3[] = {{"ok.txt", "ok", 2, 0, 0}, {"a\\..\\..\\evil.txt", "evil", 4, 0, 0}};
  make_zip(zip, slip3, 2);
  check_refused(zip, "'..' path component", TRL_EFORMAT);
  Entry abs[] = {{"ok.txt", "ok", 2, 0, 0}, {"/tmp/evil.txt", "evil", 4, 0, 0}};
  make_zip(zip, abs, 2);
  check_refused(zip, "refusing entry '/tmp/evil.txt': absolute path", TRL_EFORMAT);
  Entry link[] = {{"ok.txt", "ok", 2, 0, 0}, {"link", "/etc/passwd", 11, 0, 1}};
  make_zip(zip, link, 2);
  check_refused(zip, "refusing entry 'link': symbolic link", TRL_EFORMAT);

  // A stored entry with one data byte flipped: the CRC check must catch it.
  snprintf(zip, sizeof zip, "%s/crc.zip", tmpdir);
  static char payload[5000];
  for (size_t i = 0; i < sizeof payload; i++) payload[i] = (char)('a' + i % 26);
  Entry crc[] = {{"first.txt", "fine", 4, 1, 0}, {"dir/data.txt", payload, sizeof payload, 1, 0}};
  make_zip(zip, crc, 2);
  size_t n;
  char *bytes = slurp(zip, &n);
  char *at = memmem(bytes, n, payload, 100);
  CHECK(at != NULL);
  if (at) at[2500] ^= 1;
  FILE *f = fopen(zip, "wb");
  fwrite(bytes, 1, n, f);
  fclose(f);
  free(bytes);
  check_refused(zip, "entry 'dir/data.txt': CRC error", TRL_EFORMAT);

  snprintf(zip, sizeof zip, "%s/not-a-zip.zip", tmpdir);
  f = fopen(zip, "wb");
  fputs("this is not a zip file at all, just some text that is long enough", f);
  fclose(f);
  check_refused(zip, "not a valid zip archive (Not a zip archive)", TRL_EFORMAT);
  unlink(zip);
  snprintf(zip, sizeof zip, "%s/missing.zip", tmpdir);
  check_refused(zip, "cannot read (No such file", TRL_EIO);

  const char *shared = getenv("TRL_SHARED");
  if (!shared) { printf("skip hotdog-truncated.zip: TRL_SHARED is not set\n"); return; }
  snprintf(zip, sizeof zip, "%s/data/d2l-genuine/hotdog-truncated.zip", shared);
  if (!exists(zip)) { printf("skip: %s is missing\n", zip); return; }
  check_refused(zip, "hotdog-truncated.zip: not a valid zip archive (", TRL_EFORMAT);
}

// The stand-in hotdog.zip: 2070 JPEG/PNG files in hotdog/{train,test}/{hotdog,not-hotdog}.
static int count_files (const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int n = 0;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat sb;
    lstat(p, &sb);
    n += S_ISDIR(sb.st_mode) ? count_files(p) : 1;
  }
  if (d) closedir(d);
  return n;
}

static void test_hotdog (void) {
  const char *shared = getenv("TRL_SHARED");
  char zip[1100], dest[1100];
  if (!shared) { printf("skip hotdog.zip: TRL_SHARED is not set\n"); return; }
  snprintf(zip, sizeof zip, "%s/data/hotdog.zip", shared);
  if (!exists(zip)) { printf("skip: %s is missing\n", zip); return; }
  snprintf(dest, sizeof dest, "%s/hotdog-out", tmpdir);
  rm_rf(dest);
  clock_t t0 = clock();
  CHECK_OK(trl_zip_extract(zip, dest, NULL, NULL));
  printf("hotdog.zip extracted in %.2f s cpu\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
  CHECK_EQ(count_files(dest), 2 * (782 + 253));
  rm_rf(dest);
}

int main (void) {
  const char *tmp = getenv("TRL_TEST_TMP");
  snprintf(tmpdir, sizeof tmpdir, "%s/archive", tmp ? tmp : "/tmp/trl-test");
  rm_rf(tmpdir);
  char cmd[1100];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tmpdir);
  if (system(cmd) != 0) { fprintf(stderr, "cannot create %s\n", tmpdir); return 1; }
  test_good();
  test_refused();
  test_hotdog();
  if (check_fail == 0) rm_rf(tmpdir);
  return check_summary();
}
