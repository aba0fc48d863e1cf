/*
** archive.h: safe zip extraction (libzip). The whole archive is checked before anything is
** written: absolute paths, '..' components, links and special files are refused. Entries go
** to a temporary sibling directory and move into place only when all of them were read with
** good CRCs, so a failure leaves the destination as it was.
*/
#ifndef TRL_ARCHIVE_H
#define TRL_ARCHIVE_H

#include <stdint.h>

#include "err.h"

// Called as bytes are extracted (uncompressed sizes); a non-zero return aborts (TRL_EINTR).
typedef int (*trl_zip_progress) (void *ud, int64_t done, int64_t total);

// Extract every entry of 'zip_path' under 'dest_dir' (created if missing). Existing
// directories are merged and existing files replaced, each by a rename. 'cb' may be NULL.
// Messages name the zip and the entry: "extract: /x/a.zip: entry 'a/b.jpg': CRC error".
trl_status trl_zip_extract (const char *zip_path, const char *dest_dir, trl_zip_progress cb,
                            void *ud);

// mkdir -p with mode 0777 (less umask); TRL_EIO names 'path' and the part that failed.
trl_status trl_mkdirs (const char *path);

#endif
