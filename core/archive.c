/*
** archive.c: zip extraction with libzip into '<dest>/.trl-extract-XXXXXX', then renames into
** '<dest>'. libzip checks each entry's CRC when it is read to the end (ZIP_ER_CRC); we also
** compare the byte count with the central directory. Everything partial is removed on failure.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zip.h>

#include "archive.h"

/* {==================================================================
** File system helpers
** =================================================================== */

// "a" + "/" + "b" in a new malloc'd string (NULL when out of memory).
static char *join (const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  char *p = malloc(na + nb + 2);
  if (p) {
    memcpy(p, a, na);
    p[na] = '/';
    memcpy(p + na + 1, b, nb + 1);
  }
  return p;
}

trl_status trl_mkdirs (const char *path) {
  struct stat sb;
  if (stat(path, &sb) == 0) {
    if (S_ISDIR(sb.st_mode)) return TRL_OK;
    return trl_fail(TRL_EIO, "mkdirs: %s: exists and is not a directory", path);
  }
  char *p = strdup(path);
  if (!p) return trl_fail(TRL_ENOMEM, "mkdirs: %s: out of memory", path);
  for (char *s = p + 1; ; s++) {       // create each prefix that ends before a '/'
    if (*s != '/' && *s != '\0') continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      trl_status st = trl_fail(TRL_EIO, "mkdirs: %s: cannot create %s (%s)", path, p,
                               strerror(errno));
      free(p);
      return st;
    }
    if (c == '\0') break;
    *s = c;
  }
  free(p);
  if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return trl_fail(TRL_EIO, "mkdirs: %s: exists and is not a directory", path);
  return TRL_OK;
}

// rm -rf 'path' without following links; best effort (this is cleanup after a failure).
static void rmtree (const char *path) {
  struct stat sb;
  if (lstat(path, &sb) != 0) return;
  if (S_ISDIR(sb.st_mode)) {
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      char *child = join(path, e->d_name);
      if (child) rmtree(child);
      free(child);
    }
    if (d) closedir(d);
    rmdir(path);
  } else {
    unlink(path);
  }
}

static int is_dir (const char *path) {
  struct stat sb;
  return lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

// Can tree 'src' be moved onto 'dst'? Only a directory onto a directory, or a file onto a file.
// On a clash returns the clashing destination path (malloc'd), else NULL; '*oom' on no memory.
static char *find_clash (const char *src, const char *dst, int *oom) {
  struct stat ss, ds;
  if (lstat(dst, &ds) != 0 || lstat(src, &ss) != 0) return NULL;
  if (S_ISDIR(ss.st_mode) != S_ISDIR(ds.st_mode)) {
    char *c = strdup(dst);
    if (!c) *oom = 1;
    return c;
  }
  if (!S_ISDIR(ss.st_mode)) return NULL;
  DIR *d = opendir(src);
  struct dirent *e;
  char *clash = NULL;
  while (d && !clash && !*oom && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char *s = join(src, e->d_name), *t = join(dst, e->d_name);
    if (s && t) clash = find_clash(s, t, oom);
    else *oom = 1;
    free(s);
    free(t);
  }
  if (d) closedir(d);
  return clash;
}

// Move tree 'src' onto 'dst': rename when 'dst' is absent or a file, else merge children.
static int move_tree (const char *src, const char *dst) {
  struct stat ds;
  if (lstat(dst, &ds) != 0 || !S_ISDIR(ds.st_mode)) return rename(src, dst);
  DIR *d = opendir(src);
  if (!d) return -1;
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char *s = join(src, e->d_name), *t = join(dst, e->d_name);
    rc = s && t ? move_tree(s, t) : (errno = ENOMEM, -1);
    free(s);
    free(t);
  }
  closedir(d);
  return rc == 0 ? rmdir(src) : rc;
}

/* }================================================================== */

/* {==================================================================
** Extraction
** =================================================================== */

// Why entry 'name' must not be extracted, or NULL if it is safe.
static const char *unsafe_name (const char *name) {
  if (name[0] == '\0') return "empty name";
  if (name[0] == '/' || name[0] == '\\' ||
      (((name[0] | 32) >= 'a' && (name[0] | 32) <= 'z') && name[1] == ':'))
    return "absolute path";
  for (const char *p = name; *p; ) {   // each component between separators
    size_t len = strcspn(p, "/\\");
    if (len == 2 && p[0] == '.' && p[1] == '.') return "'..' path component";
    p += len;
    if (*p) p++;
  }
  return NULL;
}

typedef struct Job {
  const char *zip_path;
  zip_t *za;
  char *tmp;                         // the temporary directory
  char *path;                        // scratch: the output path of the current entry
  unsigned char *buf;
  int fd;
  zip_file_t *zf;
} Job;

// Write entry 'i' named 'name' of 'size' bytes into the temporary directory.
static trl_status extract_entry (Job *j, zip_uint64_t i, const char *name, zip_uint64_t size,
                                 int64_t *done, int64_t total, trl_zip_progress cb, void *ud) {
  free(j->path);
  if (!(j->path = join(j->tmp, name)))
    return trl_fail(TRL_ENOMEM, "extract: %s: out of memory", j->zip_path);
  size_t len = strlen(j->path);
  while (len > 0 && j->path[len - 1] == '/') j->path[--len] = '\0';
  int isdir = name[strlen(name) - 1] == '/';
  char *slash = strrchr(j->path, '/');
  trl_status st;
  *slash = '\0';                     // the parent first
  st = trl_mkdirs(j->path);
  *slash = '/';
  if (st == TRL_OK && isdir) st = trl_mkdirs(j->path);
  if (st != TRL_OK) {
    char why[TRL_MSGLEN];
    snprintf(why, sizeof why, "%s", trl_errmsg());   // trl_fail rewrites the message buffer
    return trl_fail(TRL_EIO, "extract: %s: entry '%s': %s", j->zip_path, name, why);
  }
  if (isdir) return TRL_OK;
  if ((j->fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL, 0666)) < 0)
    return trl_fail(TRL_EIO, "extract: %s: entry '%s': cannot create %s (%s)", j->zip_path,
                    name, j->path, errno == EEXIST ? "duplicate entry name" : strerror(errno));
  if (!(j->zf = zip_fopen_index(j->za, i, 0)))
    return trl_fail(TRL_EFORMAT, "extract: %s: entry '%s': %s", j->zip_path, name,
                    zip_strerror(j->za));
  zip_uint64_t got = 0;
  for (;;) {
    zip_int64_t n = zip_fread(j->zf, j->buf, 1 << 16);   // fails with ZIP_ER_CRC at the end
    if (n < 0)
      return trl_fail(TRL_EFORMAT, "extract: %s: entry '%s': %s", j->zip_path, name,
                      zip_file_strerror(j->zf));
    if (n == 0) break;
    for (zip_int64_t off = 0; off < n; ) {
      ssize_t w = write(j->fd, j->buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0)
        return trl_fail(TRL_EIO, "extract: %s: entry '%s': writing %s failed (%s)", j->zip_path,
                        name, j->path, strerror(errno));
      off += w;
    }
    got += (zip_uint64_t)n;
    *done += n;
    if (cb && cb(ud, *done, total))
      return trl_fail(TRL_EINTR, "extract: %s: interrupted", j->zip_path);
  }
  if (got != size)
    return trl_fail(TRL_EFORMAT, "extract: %s: entry '%s': %llu bytes, the directory says %llu",
                    j->zip_path, name, (unsigned long long)got, (unsigned long long)size);
  int zerr = zip_fclose(j->zf);
  j->zf = NULL;
  if (zerr != 0) {
    zip_error_t e;
    zip_error_init_with_code(&e, zerr);
    trl_status st2 = trl_fail(TRL_EFORMAT, "extract: %s: entry '%s': %s", j->zip_path, name,
                              zip_error_strerror(&e));
    zip_error_fini(&e);
    return st2;
  }
  int rc = close(j->fd);
  j->fd = -1;
  if (rc != 0)
    return trl_fail(TRL_EIO, "extract: %s: entry '%s': writing %s failed (%s)", j->zip_path,
                    name, j->path, strerror(errno));
  return TRL_OK;
}

// Check every entry before writing anything; '*total' gets the uncompressed size.
static trl_status check_entries (Job *j, zip_int64_t n, int64_t *total) {
  *total = 0;
  for (zip_int64_t i = 0; i < n; i++) {
    zip_stat_t st;
    if (zip_stat_index(j->za, (zip_uint64_t)i, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME))
      return trl_fail(TRL_EFORMAT, "extract: %s: entry %lld: %s", j->zip_path, (long long)i,
                      zip_strerror(j->za));
    const char *why = unsafe_name(st.name);
    zip_uint8_t opsys;
    zip_uint32_t attr;
    if (!why && zip_file_get_external_attributes(j->za, (zip_uint64_t)i, 0, &opsys, &attr) == 0 &&
        opsys == ZIP_OPSYS_UNIX) {
      mode_t mode = (mode_t)(attr >> 16);
      if (S_ISLNK(mode)) why = "symbolic link";
      else if ((mode & S_IFMT) && !S_ISREG(mode) && !S_ISDIR(mode)) why = "special file";
    }
    if (!why && (st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
      why = "encrypted";
    if (!why && (st.valid & ZIP_STAT_COMP_METHOD) &&
        !zip_compression_method_supported(st.comp_method, 0))
      why = "unsupported compression method";
    if (why)
      return trl_fail(TRL_EFORMAT, "extract: %s: refusing entry '%s': %s (nothing extracted)",
                      j->zip_path, st.name, why);
    *total += (int64_t)st.size;
  }
  return TRL_OK;
}

// Move the top-level entries of the temporary directory into 'dest'.
static trl_status install (Job *j, const char *dest) {
  DIR *d = opendir(j->tmp);
  if (!d) return trl_fail(TRL_EIO, "extract: %s: %s: %s", j->zip_path, j->tmp, strerror(errno));
  struct dirent *e;
  trl_status st = TRL_OK;
  for (int pass = 0; pass < 2 && st == TRL_OK; pass++) {   // 0: look for clashes, 1: move
    rewinddir(d);
    while (st == TRL_OK && (e = readdir(d))) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      char *s = join(j->tmp, e->d_name), *t = join(dest, e->d_name), *clash = NULL;
      int oom = !s || !t;
      if (!oom && pass == 0 && (clash = find_clash(s, t, &oom)))
        st = trl_fail(TRL_EIO, "extract: %s: %s exists, and the archive has a %s of that name "
                      "(nothing extracted)", j->zip_path, clash,
                      is_dir(clash) ? "file" : "directory");
      else if (!oom && pass == 1 && move_tree(s, t) != 0)
        st = trl_fail(TRL_EIO, "extract: %s: moving %s to %s failed (%s)", j->zip_path, s, t,
                      strerror(errno));
      if (oom && st == TRL_OK) st = trl_fail(TRL_ENOMEM, "extract: %s: out of memory", j->zip_path);
      free(clash);
      free(s);
      free(t);
    }
  }
  closedir(d);
  return st;
}

trl_status trl_zip_extract (const char *zip_path, const char *dest_dir, trl_zip_progress cb,
                            void *ud) {
  int zerr = 0;
  Job j = {.zip_path = zip_path, .fd = -1};
  j.za = zip_open(zip_path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
  if (!j.za) {
    zip_error_t e;
    zip_error_init_with_code(&e, zerr);
    int io = zerr == ZIP_ER_NOENT || zerr == ZIP_ER_OPEN || zerr == ZIP_ER_READ;
    trl_status st = trl_fail(io ? TRL_EIO : TRL_EFORMAT, "extract: %s: %s (%s)", zip_path,
                             io ? "cannot read" : "not a valid zip archive",
                             zip_error_strerror(&e));
    zip_error_fini(&e);
    return st;
  }
  int64_t total, done = 0;
  zip_int64_t n = zip_get_num_entries(j.za, 0);
  trl_status st = check_entries(&j, n, &total);
  struct stat sb;
  int made_dest = 0;
  if (st == TRL_OK && stat(dest_dir, &sb) != 0) {
    made_dest = 1;
    if ((st = trl_mkdirs(dest_dir)) != TRL_OK) {
      char why[TRL_MSGLEN];
      snprintf(why, sizeof why, "%s", trl_errmsg());
      st = trl_fail(TRL_EIO, "extract: %s: %s", zip_path, why);
    }
  } else if (st == TRL_OK && !S_ISDIR(sb.st_mode)) {
    st = trl_fail(TRL_EIO, "extract: %s: %s is not a directory", zip_path, dest_dir);
  }
  if (st == TRL_OK && (!(j.tmp = join(dest_dir, ".trl-extract-XXXXXX")) ||
                       !(j.buf = malloc(1 << 16))))
    st = trl_fail(TRL_ENOMEM, "extract: %s: out of memory", zip_path);
  if (st == TRL_OK && !mkdtemp(j.tmp)) {
    st = trl_fail(TRL_EIO, "extract: %s: cannot create %s (%s)", zip_path, j.tmp, strerror(errno));
    free(j.tmp);
    j.tmp = NULL;
  }
  for (zip_int64_t i = 0; st == TRL_OK && i < n; i++) {
    zip_stat_t zs;
    if (zip_stat_index(j.za, (zip_uint64_t)i, 0, &zs) != 0)
      st = trl_fail(TRL_EFORMAT, "extract: %s: entry %lld: %s", zip_path, (long long)i,
                    zip_strerror(j.za));
    else
      st = extract_entry(&j, (zip_uint64_t)i, zs.name, zs.size, &done, total, cb, ud);
  }
  if (j.zf) zip_fclose(j.zf);
  if (j.fd >= 0) close(j.fd);
  if (st == TRL_OK) st = install(&j, dest_dir);
  if (j.tmp) rmtree(j.tmp);          // empty after a good install
  if (st != TRL_OK && made_dest) rmdir(dest_dir);
  zip_discard(j.za);
  free(j.tmp);
  free(j.path);
  free(j.buf);
  return st;
}

/* }================================================================== */
