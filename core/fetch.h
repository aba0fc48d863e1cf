/*
** fetch.h: downloading a URL to a file with libcurl, all or nothing: the body goes to
** '<path>.part-XXXXXX' next to 'path', is checked (HTTP status, length, SHA-1) and only
** then renamed to 'path'. Core never prints: progress goes to a callback.
*/
#ifndef TRL_FETCH_H
#define TRL_FETCH_H

#include <stdint.h>

#include "err.h"

// Called during the transfer with the bytes received and the total (0 while unknown).
// A non-zero return aborts the download with TRL_EINTR.
typedef int (*trl_fetch_progress) (void *ud, int64_t done, int64_t total);

// Download 'url' (redirects followed) to 'path', whose directory must exist. With 'sha1_hex'
// (40 hex digits, or NULL) the bytes must have that SHA-1. On failure 'path' is untouched,
// no temporary file remains, and the message names the URL, what went wrong, and ends with
// "place the file by hand at <path>". TRL_EIO for transfer failures, TRL_EFORMAT for a wrong
// SHA-1, TRL_EINTR when 'cb' stopped it, TRL_EARG for a malformed 'sha1_hex'.
trl_status trl_download (const char *url, const char *path, const char *sha1_hex,
                         trl_fetch_progress cb, void *ud);

#endif
