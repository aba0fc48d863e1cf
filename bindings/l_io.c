/*
** l_io.c: module 'trl._io': downloads (core/fetch.c), zip extraction (core/archive.c) and
** SHA-1 (core/sha1.c) for Lua. Outside-world failures return nil, msg; an interrupt (Ctrl-C)
** raises. The download progress bar goes to stderr, and only when stderr is a terminal.
*/
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "fetch.h"
#include "l_util.h"
#include "sha1.h"

/* {==================================================================
** Progress and interrupts. trl's SIGINT handler (bindings/main.c, as lua.c) only sets a
** Lua hook; the transfer runs in C, so the callbacks stop it when the hook has changed.
** The callbacks never call into Lua and so never raise.
** =================================================================== */

typedef struct Progress {
  lua_State *L;
  lua_Hook hook0;                    // the hook when the call began
  const char *what;                  // shown on the bar
  int bar;                           // draw a bar on stderr
  int drawn;
  double last;                       // when the bar was last drawn
} Progress;

static void progress_init (Progress *p, lua_State *L, const char *what, int bar) {
  p->L = L;
  p->hook0 = lua_gethook(L);
  p->what = what;
  p->bar = bar && isatty(STDERR_FILENO);
  p->drawn = 0;
  p->last = 0;
}

static double now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int on_progress (void *ud, int64_t done, int64_t total) {
  Progress *p = ud;
  if (lua_gethook(p->L) != p->hook0) return 1;              // SIGINT arrived
  if (!p->bar || (now() - p->last < 0.1 && !(total > 0 && done == total))) return 0;
  p->last = now();
  p->drawn = 1;
  if (total > 0) {
    int width = 30, fill = (int)(width * (double)done / (double)total);
    fprintf(stderr, "\r%s [%.*s%*s] %3d%% %.1f/%.1f MB", p->what, fill,
            "==============================", width - fill, "", (int)(100.0 * done / total),
            done / 1e6, total / 1e6);
  } else {
    fprintf(stderr, "\r%s %.1f MB", p->what, done / 1e6);
  }
  fflush(stderr);
  return 0;
}

static void progress_end (Progress *p) {
  if (p->drawn) fputc('\n', stderr);
}

/* }================================================================== */

// download(url, path [, sha1 [, quiet]]) -> path | nil, msg
static int m_download (lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  const char *path = luaL_checkstring(L, 2);
  const char *sha1 = luaL_optstring(L, 3, NULL);
  int quiet = lua_toboolean(L, 4);
  luaL_argcheck(L, !sha1 || trl_sha1_valid(sha1), 3, "sha1 must be 40 hex digits");
  const char *base = strrchr(path, '/');
  Progress p;
  progress_init(&p, L, base ? base + 1 : path, !quiet);
  trl_status st = trl_download(url, path, sha1, on_progress, &p);
  progress_end(&p);
  if (st == TRL_EIO || st == TRL_EFORMAT) return trl_pushfail(L);
  trl_check(L, st);                  // interrupted, or out of memory
  lua_pushvalue(L, 2);
  return 1;
}

// extract(zip, dest) -> true | nil, msg
static int m_extract (lua_State *L) {
  const char *zip = luaL_checkstring(L, 1);
  const char *dest = luaL_checkstring(L, 2);
  Progress p;
  progress_init(&p, L, zip, 0);
  trl_status st = trl_zip_extract(zip, dest, on_progress, &p);
  if (st == TRL_EIO || st == TRL_EFORMAT) return trl_pushfail(L);
  trl_check(L, st);
  lua_pushboolean(L, 1);
  return 1;
}

// sha1_file(path) -> 40 hex digits | nil, msg
static int m_sha1_file (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char hex[41];
  trl_status st = trl_sha1_file(path, hex);
  if (st != TRL_OK) return trl_pushfail(L);
  lua_pushstring(L, hex);
  return 1;
}

// sha1(string) -> 40 hex digits
static int m_sha1 (lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char hex[41];
  trl_sha1_buffer(s, n, hex);
  lua_pushstring(L, hex);
  return 1;
}

// makedirs(path) -> true | nil, msg (mkdir -p)
static int m_makedirs (lua_State *L) {
  trl_status st = trl_mkdirs(luaL_checkstring(L, 1));
  if (st == TRL_EIO) return trl_pushfail(L);
  trl_check(L, st);
  lua_pushboolean(L, 1);
  return 1;
}

// filetype(path) -> 'file' | 'directory' | 'other' | nil (absent), following links
static int m_filetype (lua_State *L) {
  struct stat sb;
  if (stat(luaL_checkstring(L, 1), &sb) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  lua_pushstring(L, S_ISREG(sb.st_mode) ? "file" : S_ISDIR(sb.st_mode) ? "directory" : "other");
  return 1;
}

static const luaL_Reg funcs[] = {
  {"download", m_download},
  {"extract", m_extract},
  {"sha1_file", m_sha1_file},
  {"sha1", m_sha1},
  {"makedirs", m_makedirs},
  {"filetype", m_filetype},
  {NULL, NULL}
};

int luaopen_trl_io (lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
