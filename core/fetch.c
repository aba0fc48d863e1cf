/*
** fetch.c: trl_download over libcurl's easy interface. The body streams into a temporary
** file and through SHA-1 at once; the file is fsync'ed and renamed into place only when the
** transfer, the HTTP status and the hash are all good. Everything else unlinks it.
*/
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fetch.h"
#include "sha1.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_rc = CURLE_FAILED_INIT;

static void global_init (void) {
  init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);   // not thread-safe before curl 7.84
}

typedef struct Xfer {
  int fd;
  int werr;                          // errno of a failed write
  int stopped;                       // the progress callback asked to stop
  int64_t got;
  trl_sha1 sha;
  trl_fetch_progress cb;
  void *ud;
} Xfer;

static size_t on_data (char *p, size_t size, size_t nmemb, void *ud) {
  Xfer *x = ud;
  size_t n = size * nmemb;
  for (size_t off = 0; off < n; ) {
    ssize_t w = write(x->fd, p + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      x->werr = errno;
      return 0;                      // curl fails with CURLE_WRITE_ERROR
    }
    off += (size_t)w;
  }
  trl_sha1_update(&x->sha, p, n);
  x->got += (int64_t)n;
  return n;
}

static int on_progress (void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                        curl_off_t ulnow) {
  (void)ultotal; (void)ulnow;
  Xfer *x = ud;
  if (x->cb && x->cb(x->ud, (int64_t)dlnow, (int64_t)dltotal)) {
    x->stopped = 1;
    return 1;                        // CURLE_ABORTED_BY_CALLBACK
  }
  return 0;
}

// Run the transfer into 'x->fd'; on failure set the message (without the "by hand" tail).
static trl_status transfer (const char *url, Xfer *x) {
  CURL *c = curl_easy_init();
  if (!c) return trl_fail(TRL_ENOMEM, "cannot start libcurl");
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);        // HTTP >= 400 is an error, body unread
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);    // a stalled transfer fails after 60 s
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "trl");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  CURLcode rc = curl_easy_perform(c);
  long code = 0;
  curl_off_t length = -1;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
  curl_easy_cleanup(c);
  const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  if (rc == CURLE_OK) return TRL_OK;
  if (rc == CURLE_ABORTED_BY_CALLBACK && x->stopped) return trl_fail(TRL_EINTR, "interrupted");
  if (rc == CURLE_HTTP_RETURNED_ERROR) return trl_fail(TRL_EIO, "server answered HTTP %ld", code);
  if (rc == CURLE_WRITE_ERROR && x->werr)
    return trl_fail(TRL_EIO, "cannot write the file (%s)", strerror(x->werr));
  if (rc == CURLE_PARTIAL_FILE && length >= 0)
    return trl_fail(TRL_EIO, "transfer ended early: got %lld of %lld bytes (%s)",
                    (long long)x->got, (long long)length, why);
  return trl_fail(TRL_EIO, "transfer failed after %lld bytes: %s", (long long)x->got, why);
}

trl_status trl_download (const char *url, const char *path, const char *sha1_hex,
                         trl_fetch_progress cb, void *ud) {
  if (sha1_hex && !trl_sha1_valid(sha1_hex))
    return trl_fail(TRL_EARG, "download: %s: sha1 must be 40 hex digits, got '%s'", url,
                    sha1_hex);
  pthread_once(&init_once, global_init);
  if (init_rc != CURLE_OK)
    return trl_fail(TRL_EIO, "download: %s: libcurl failed to start (%s); place the file by "
                    "hand at %s", url, curl_easy_strerror(init_rc), path);
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  if (!tmp) return trl_fail(TRL_ENOMEM, "download: %s: out of memory", url);
  snprintf(tmp, plen + 16, "%s.part-XXXXXX", path);
  Xfer x = {.cb = cb, .ud = ud};
  trl_sha1_init(&x.sha);
  trl_status st = TRL_OK;
  char got[41];
  if ((x.fd = mkstemp(tmp)) < 0) {
    st = trl_fail(TRL_EIO, "download: %s: cannot create %s (%s); place the file by hand at %s",
                  url, tmp, strerror(errno), path);
    free(tmp);
    return st;
  }
  if ((st = transfer(url, &x)) != TRL_OK) {
    char why[TRL_MSGLEN];
    snprintf(why, sizeof why, "%s", trl_errmsg());   // trl_fail rewrites the message buffer
    if (st == TRL_EINTR)
      st = trl_fail(st, "download: %s: interrupted after %lld bytes", url, (long long)x.got);
    else
      st = trl_fail(st, "download: %s: %s; place the file by hand at %s", url, why, path);
  } else if (fchmod(x.fd, 0644) != 0 || fsync(x.fd) != 0) {
    st = trl_fail(TRL_EIO, "download: %s: cannot write %s (%s); place the file by hand at %s",
                  url, tmp, strerror(errno), path);
  } else if (trl_sha1_final(&x.sha, got), sha1_hex && strcasecmp(got, sha1_hex) != 0) {
    st = trl_fail(TRL_EFORMAT, "download: %s: sha1 mismatch: expected %s, got %s (%lld bytes); "
                  "place the file by hand at %s", url, sha1_hex, got, (long long)x.got, path);
  }
  if (close(x.fd) != 0 && st == TRL_OK)
    st = trl_fail(TRL_EIO, "download: %s: cannot write %s (%s); place the file by hand at %s",
                  url, tmp, strerror(errno), path);
  if (st == TRL_OK && rename(tmp, path) != 0)
    st = trl_fail(TRL_EIO, "download: %s: cannot rename %s to %s (%s); place the file by hand "
                  "at %s", url, tmp, path, strerror(errno), path);
  if (st != TRL_OK) unlink(tmp);
  free(tmp);
  return st;
}
