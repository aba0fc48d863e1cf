/*
** test_fetch.c: trl_download against a tiny HTTP server that this test forks on 127.0.0.1
** (a free port): a good file, a redirect, a 404, a body cut short with the connection
** dropped, and a body whose sha1 does not match. Failures must leave no file and no '.part'.
*/
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fetch.h"
#include "sha1.h"

// 'e' fails with status 'code' and a message containing 'sub'.
#define CHECK_FAIL(e, code, sub) do { trl_status s_ = (e); \
  if (s_ == (code) && strstr(trl_errmsg(), (sub))) check_pass++; \
  else { check_fail++; fprintf(stderr, "%s:%d: %s: expected status %d with \"%s\", " \
                               "got %d \"%s\"\n", __FILE__, __LINE__, #e, (int)(code), (sub), \
                               (int)s_, s_ ? trl_errmsg() : ""); } } while (0)

#define NBODY 300000
static char good[NBODY], other[NBODY];
static char tmpdir[1024];

/* {==================================================================
** The server (child process)
** =================================================================== */

static void send_all (int fd, const void *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return;              // the client went away
    p = (const char *)p + w;
    n -= (size_t)w;
  }
}

static void respond (int fd, const char *status, const char *extra, const char *body,
                     size_t len, size_t claimed) {
  char head[512];
  int k = snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Length: %zu\r\n%sConnection: close"
                   "\r\n\r\n", status, claimed, extra);
  send_all(fd, head, (size_t)k);
  send_all(fd, body, len);
}

static void serve (int ls) {
  signal(SIGPIPE, SIG_IGN);
  alarm(60);                         // never outlive a stuck test
  for (;;) {
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR) continue;
      _exit(0);
    }
    char req[4096];
    size_t n = 0;
    while (n < sizeof req - 1) {     // read the request head
      ssize_t r = read(fd, req + n, sizeof req - 1 - n);
      if (r <= 0) break;
      n += (size_t)r;
      req[n] = '\0';
      if (strstr(req, "\r\n\r\n")) break;
    }
    req[n] = '\0';
    char path[256] = "";
    sscanf(req, "GET %255s", path);
    if (strcmp(path, "/good.bin") == 0) respond(fd, "200 OK", "", good, NBODY, NBODY);
    else if (strcmp(path, "/other.bin") == 0) respond(fd, "200 OK", "", other, NBODY, NBODY);
    else if (strcmp(path, "/redirect") == 0)
      respond(fd, "302 Found", "Location: /good.bin\r\n", "", 0, 0);
    else if (strcmp(path, "/short.bin") == 0)    // claims NBODY, sends a third, hangs up
      respond(fd, "200 OK", "", good, NBODY / 3, NBODY);
    else respond(fd, "404 Not Found", "", "not found\n", 10, 10);
    shutdown(fd, SHUT_RDWR);
    close(fd);
  }
}

/* }================================================================== */

static int exists (const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

// No '.part-' file in tmpdir.
static int leftovers (void) {
  DIR *d = opendir(tmpdir);
  struct dirent *e;
  int n = 0;
  while (d && (e = readdir(d)))
    if (strstr(e->d_name, ".part-")) { n++; fprintf(stderr, "leftover %s\n", e->d_name); }
  if (d) closedir(d);
  return n;
}

typedef struct Progress { int calls; int64_t done, total; int stop; } Progress;

static int on_progress (void *ud, int64_t done, int64_t total) {
  Progress *p = ud;
  p->calls++;
  p->done = done;
  p->total = total;
  return p->stop && done > 0;
}

int main (void) {
  const char *tmp = getenv("TRL_TEST_TMP");
  snprintf(tmpdir, sizeof tmpdir, "%s/fetch", tmp ? tmp : "/tmp/trl-test");
  char cmd[2200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", tmpdir, tmpdir);
  if (system(cmd) != 0) { fprintf(stderr, "cannot create %s\n", tmpdir); return 1; }
  for (int i = 0; i < NBODY; i++) {
    good[i] = (char)(i * 31 + i / 777);
    other[i] = (char)(i * 17 + 3);
  }
  char good_sha[41], other_sha[41];
  trl_sha1_buffer(good, NBODY, good_sha);
  trl_sha1_buffer(other, NBODY, other_sha);

  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof addr;
  if (ls < 0 || bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, 16) != 0 ||
      getsockname(ls, (struct sockaddr *)&addr, &alen) != 0) {
    printf("skip test_fetch: cannot listen on 127.0.0.1 (%s)\n", strerror(errno));
    return 0;
  }
  int port = ntohs(addr.sin_port);
  pid_t child = fork();
  if (child < 0) { perror("fork"); return 1; }
  if (child == 0) serve(ls);
  close(ls);
  alarm(120);                        // bound the whole test

  char url[400], path[1200], base[300];
  snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
  snprintf(path, sizeof path, "%s/file.bin", tmpdir);

  // Good, with a progress callback and the sha1 in upper case.
  Progress pr = {0};
  char upper[41];
  for (int i = 0; i < 41; i++)
    upper[i] = (char)(good_sha[i] >= 'a' ? good_sha[i] - 32 : good_sha[i]);
  snprintf(url, sizeof url, "%s/good.bin", base);
  CHECK_OK(trl_download(url, path, upper, on_progress, &pr));
  char got[41] = "";
  CHECK_OK(trl_sha1_file(path, got));
  CHECK(strcmp(got, good_sha) == 0);
  CHECK(pr.calls > 0);
  CHECK_EQ(pr.done, NBODY);
  CHECK_EQ(pr.total, NBODY);
  unlink(path);
  // A redirect, no sha1 and no callback.
  snprintf(url, sizeof url, "%s/redirect", base);
  CHECK_OK(trl_download(url, path, NULL, NULL, NULL));
  CHECK_OK(trl_sha1_file(path, got));
  CHECK(strcmp(got, good_sha) == 0);
  unlink(path);

  // Failures: the message names the URL and the cause, and no file appears.
  char msg[2000];
  snprintf(url, sizeof url, "%s/missing.zip", base);
  snprintf(msg, sizeof msg, "download: %s: server answered HTTP 404; place the file by hand at %s",
           url, path);
  CHECK_FAIL(trl_download(url, path, NULL, NULL, NULL), TRL_EIO, msg);
  CHECK(!exists(path));
  snprintf(url, sizeof url, "%s/short.bin", base);
  CHECK_FAIL(trl_download(url, path, good_sha, NULL, NULL), TRL_EIO,
             "transfer ended early: got 100000 of 300000 bytes");
  CHECK(strstr(trl_errmsg(), url) && strstr(trl_errmsg(), "place the file by hand at"));
  CHECK(!exists(path));
  snprintf(url, sizeof url, "%s/other.bin", base);
  snprintf(msg, sizeof msg, "download: %s: sha1 mismatch: expected %s, got %s (300000 bytes); "
           "place the file by hand at %s", url, good_sha, other_sha, path);
  CHECK_FAIL(trl_download(url, path, good_sha, NULL, NULL), TRL_EFORMAT, msg);
  CHECK(!exists(path));
  Progress stop = {.stop = 1};
  snprintf(url, sizeof url, "%s/good.bin", base);
  CHECK_FAIL(trl_download(url, path, NULL, on_progress, &stop), TRL_EINTR, "interrupted");
  CHECK(!exists(path));
  CHECK_FAIL(trl_download(url, path, "abc", NULL, NULL), TRL_EARG, "sha1 must be 40 hex digits");
  char nodir[1300];
  snprintf(nodir, sizeof nodir, "%s/no/such/dir/file.bin", tmpdir);
  CHECK_FAIL(trl_download(url, nodir, NULL, NULL, NULL), TRL_EIO, "No such file or directory");

  // A failure leaves an existing file as it was.
  FILE *f = fopen(path, "w");
  fputs("old", f);
  fclose(f);
  snprintf(url, sizeof url, "%s/short.bin", base);
  CHECK(trl_download(url, path, NULL, NULL, NULL) == TRL_EIO);
  char old[8] = "";
  f = fopen(path, "r");
  CHECK(f && fgets(old, sizeof old, f) && strcmp(old, "old") == 0);
  if (f) fclose(f);
  // ... and a success replaces it.
  snprintf(url, sizeof url, "%s/good.bin", base);
  CHECK_OK(trl_download(url, path, good_sha, NULL, NULL));
  unlink(path);
  CHECK_EQ(leftovers(), 0);

  kill(child, SIGTERM);
  int status;
  CHECK(waitpid(child, &status, 0) == child);
  // Nothing listens on the port now.
  snprintf(url, sizeof url, "%s/good.bin", base);
  CHECK_FAIL(trl_download(url, path, NULL, NULL, NULL), TRL_EIO, "transfer failed after 0 bytes");
  CHECK(!exists(path));
  CHECK_EQ(leftovers(), 0);
  return check_summary();
}
