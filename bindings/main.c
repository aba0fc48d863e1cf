/*
** main.c: the 'trl' executable, Lua 5.4's stand-alone interpreter (lua.c) plus trl's modules:
** runs scripts with 'arg' and '...', -e/-l/-i/- options, and a REPL with GNU readline (history
** in ~/.trl_history, tab completion of fields and methods, auto-print, Ctrl-C through a hook).
** It is not a library: everything here is static except 'main'.
*/

#define _GNU_SOURCE   // sched_setaffinity, CPU_SET (set_wait_policy)
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <sched.h>
#include <sys/select.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>


#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "l_util.h"
#include "ops.h"    // trl_openlibs: the C modules in package.preload

#ifndef TRL_VERSION
#define TRL_VERSION "0.0.0"
#endif
#ifndef TRL_LUA_INSTALL_DIR
#define TRL_LUA_INSTALL_DIR "/usr/local/share/trl/lua"
#endif

#define PROMPT1 "trl> "
#define PROMPT2 ">> "
#define HISTORY_MAX 1000
#define EOFMARK "<eof>"
#define NOINPUT (-2)    // 'loadline': the line was dropped (Ctrl-C at the prompt)

static const char *progname = "trl";    // NULL in the REPL: no prefix on its messages
static lua_State *globalL = NULL;        // the state a SIGINT interrupts
static int interactive = 0;              // the REPL reads a terminal through readline
static char histfile[PATH_MAX];          // "" when there is no history file


/*
** {==================================================================
** Messages, the message handler and protected calls (lua.c)
** ===================================================================
*/

static void print_usage (FILE *f) {
  fprintf(f,
    "usage: trl [options] [script [args]]\n"
    "Available options are:\n"
    "  -e stat    execute string 'stat'\n"
    "  -i         enter interactive mode after executing 'script'\n"
    "  -l mod     require library 'mod' into global 'mod'\n"
    "  -l g=mod   require library 'mod' into global 'g'\n"
    "  -v         show version information\n"
    "  -W         turn warnings on\n"
    "  --         stop handling options\n"
    "  -          stop handling options and execute stdin\n"
    "  --help     show this help\n"
    "  --version  show version information\n"
    "With no script and no -e, trl starts the REPL (without prompts when stdin is not a\n"
    "terminal). Environment: TRL_LUA_PATH, the directory of trl's Lua modules.\n");
  fflush(f);
}

static void l_message (const char *pname, const char *msg) {
  fflush(stdout);    // keep stdout and stderr in order when both go to one pipe
  if (pname) fprintf(stderr, "%s: ", pname);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
}

// The value at 'idx' as a message, whatever its type (pushes a string when it is not one).
static const char *msgtext (lua_State *L, int idx) {
  const char *msg = lua_tostring(L, idx);
  if (msg == NULL)
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
  return msg;
}

static int report (lua_State *L, int status) {
  if (status != LUA_OK) {
    int top = lua_gettop(L);
    l_message(progname, msgtext(L, -1));
    lua_settop(L, top - 1);    // the message, and what 'msgtext' may have pushed
  }
  return status;
}

/*
** Unlike lua.c, a '__tostring' that raises cannot turn into "error in error handling": it runs
** under its own pcall, and a traceback is appended to every message.
*/
static int msghandler (lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
      lua_pushvalue(L, 1);
      if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
        msg = lua_tostring(L, -1);
    }
    if (msg == NULL)
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static void setsignal (int sig, void (*handler)(int), struct sigaction *old) {
  struct sigaction sa;
  sa.sa_handler = handler;
  sa.sa_flags = 0;    // no SA_RESTART: a blocked read must see EINTR
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, old);
}

// Hook set by 'laction': raises at the next call, return, line or instruction count.
static void lstop (lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

// SIGINT while Lua runs: setting a hook is the one thing a signal handler may do to a state.
static void laction (int sig) {
  int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  setsignal(sig, SIG_DFL, NULL);    // a second Ctrl-C kills (a C kernel may never return)
  lua_sethook(globalL, lstop, flag, 1);
}

// Calls the function below 'narg' arguments with the traceback handler, interruptible by SIGINT.
static int docall (lua_State *L, int narg, int nres) {
  struct sigaction old;
  int status;
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  globalL = L;
  setsignal(SIGINT, laction, &old);
  status = lua_pcall(L, narg, nres, base);
  sigaction(SIGINT, &old, NULL);
  if (lua_gethook(L) == lstop)    // a SIGINT that came as the call returned
    lua_sethook(L, NULL, 0, 0);
  lua_remove(L, base);
  return status;
}

static void print_version (void) {
  const char *blas = trl_blas_config();
  size_t n = blas ? strlen(blas) : 0;
  while (n > 0 && blas[n - 1] == ' ') n--;    // the config string ends with a blank
  printf("trl %s (%s, %.*s)\n", TRL_VERSION, LUA_RELEASE, (int)n, blas ? blas : "");
  fflush(stdout);
}

/* }================================================================== */


/*
** {==================================================================
** Scripts, -e and -l (lua.c)
** ===================================================================
*/

// 'arg': the script at 0, what precedes it at negative indices, its arguments from 1.
static void createargtable (lua_State *L, char **argv, int argc, int script) {
  int i;
  lua_createtable(L, argc - script - 1 > 0 ? argc - script - 1 : 0, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int dochunk (lua_State *L, int status) {
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

static int dostring (lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

// -l mod or -l g=mod: global 'g' (or 'mod') = require('mod').
static int dolibrary (lua_State *L, char *spec) {
  int status;
  char *eq = strchr(spec, '=');
  const char *modname = eq ? eq + 1 : spec;
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  status = docall(L, 1, 1);
  if (status == LUA_OK) {
    if (eq) *eq = '\0';    // 'spec' is now the global's name
    lua_setglobal(L, spec);
    if (eq) *eq = '=';
  }
  return report(L, status);
}

static int pushargs (lua_State *L) {
  int i, n;
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    luaL_error(L, "'arg' is not a table");
  n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  for (i = 1; i <= n; i++)
    lua_rawgeti(L, -i, i);
  lua_remove(L, -i);    // remove table from the stack
  return n;
}

static int handle_script (lua_State *L, char **argv) {
  int status;
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0)
    fname = NULL;    // stdin
  status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = pushargs(L);
    status = docall(L, n, LUA_MULTRET);
  }
  return report(L, status);
}

// Bits of what 'collectargs' saw.
#define has_error 1    // bad option
#define has_i 2        // -i
#define has_v 4        // -v or --version
#define has_e 8        // -e
#define has_h 16       // --help

/*
** Checks the options and sets '*first' to the script's index (0 when there is none). Returns
** the option bits; 'argv[*bad]' is the offending option on 'has_error'.
*/
static int collectargs (char **argv, int *first, int *bad) {
  int args = 0;
  int i;
  *first = 0;
  for (i = 1; argv[i] != NULL; i++) {
    *bad = i;
    if (argv[i][0] != '-') {    // not an option: the script
      *first = i;
      return args;
    }
    if (strcmp(argv[i], "--help") == 0) { args |= has_h; continue; }
    if (strcmp(argv[i], "--version") == 0) { args |= has_v; continue; }
    switch (argv[i][1]) {
      case '-':    // '--'
        if (argv[i][2] != '\0') return args | has_error;
        *first = argv[i + 1] != NULL ? i + 1 : 0;
        return args;
      case '\0':    // '-': the script is stdin
        *first = i;
        return args;
      case 'h':
        if (argv[i][2] != '\0') return args | has_error;
        args |= has_h;
        break;
      case 'W':
        if (argv[i][2] != '\0') return args | has_error;
        break;
      case 'i':
        args |= has_i;
        if (argv[i][2] != '\0') return args | has_error;
        break;
      case 'v':
        if (argv[i][2] != '\0') return args | has_error;
        args |= has_v;
        break;
      case 'e':
        args |= has_e;
        /* FALLTHROUGH */
      case 'l':    // both need an argument
        if (argv[i][2] == '\0') {
          i++;
          if (argv[i] == NULL || argv[i][0] == '-') return args | has_error;
        }
        break;
      default:
        return args | has_error;
    }
  }
  return args;
}

// Runs -e, -l and -W in order, up to the script (or the end); 0 on the first error.
static int runargs (lua_State *L, char **argv, int n) {
  int i;
  for (i = 1; i < n; i++) {
    int option = argv[i][1];
    switch (option) {
      case 'e': case 'l': {
        int status;
        char *extra = argv[i] + 2;
        if (*extra == '\0') extra = argv[++i];
        status = (option == 'e') ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
        if (status != LUA_OK) return 0;
        break;
      }
      case 'W':
        lua_warning(L, "@on", 0);
        break;
    }
  }
  return 1;
}

/* }================================================================== */


/*
** {==================================================================
** Finding trl's Lua modules
** ===================================================================
*/

// 'dir' of the running executable (with no trailing slash), or 0.
static int exedir (char *dir, size_t size) {
  ssize_t n = readlink("/proc/self/exe", dir, size - 1);
  char *slash;
  if (n <= 0 || (size_t)n >= size - 1) return 0;
  dir[n] = '\0';
  slash = strrchr(dir, '/');
  if (slash == NULL) return 0;
  *slash = '\0';
  return 1;
}

/*
** The module directory: $TRL_LUA_PATH, else '<exe dir>/../lua' when it holds trl/init.lua
** (a build tree next to the sources), else the install directory.
*/
static void moduledir (char *dir, size_t size) {
  const char *env = getenv("TRL_LUA_PATH");
  char exe[PATH_MAX], probe[PATH_MAX + 32];
  if (env != NULL && *env != '\0') {
    snprintf(dir, size, "%s", env);
    return;
  }
  if (exedir(exe, sizeof exe)) {
    snprintf(probe, sizeof probe, "%s/../lua/trl/init.lua", exe);
    if (access(probe, R_OK) == 0) {
      char real[PATH_MAX];
      snprintf(probe, sizeof probe, "%s/../lua", exe);
      if (realpath(probe, real) != NULL && strlen(real) < size) {
        memcpy(dir, real, strlen(real) + 1);
        return;
      }
    }
  }
  snprintf(dir, size, "%s", TRL_LUA_INSTALL_DIR);
}

// package.path = '<dir>/?.lua;<dir>/?/init.lua;' .. package.path
static void setpath (lua_State *L) {
  char dir[PATH_MAX];
  moduledir(dir, sizeof dir);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

/* }================================================================== */


/*
** {==================================================================
** Field names, for tab completion and 'help(x)'
** ===================================================================
*/

static const char *const keywords[] = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
  "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
  NULL
};

static int isident (const char *s) {
  const char *p;
  int i;
  if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) return 0;
  for (p = s + 1; *p; p++)
    if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (*p >= '0' && *p <= '9')))
      return 0;
  for (i = 0; keywords[i]; i++)
    if (strcmp(s, keywords[i]) == 0) return 0;
  return 1;
}

/*
** Pushes obj[key] for one name typed before the cursor, as Lua would index it (a lazy loader
** in '__index' may run, as Python's completer evaluates attributes); nil for a value that
** cannot be indexed.
*/
static void lookup (lua_State *L, int obj, const char *key) {
  int t = lua_type(L, obj);
  if (t == LUA_TTABLE || t == LUA_TUSERDATA || t == LUA_TSTRING)
    lua_getfield(L, obj, key);
  else
    lua_pushnil(L);
}

// Adds the string keys of the table at 'tab' to the set at 'set' (see 'collectkeys').
static void addkeys (lua_State *L, int tab, int set, const char *prefix, int methods,
                     int hidemeta) {
  size_t plen = strlen(prefix);
  int hidden = strncmp(prefix, "__", 2) != 0;    // '__index' and co. only when asked for
  lua_pushnil(L);
  while (lua_next(L, tab)) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -2);
      if (strncmp(k, prefix, plen) == 0 && isident(k) &&
          !((hidden || hidemeta) && strncmp(k, "__", 2) == 0) &&
          (!methods || lua_isfunction(L, -1))) {
        lua_pushvalue(L, -2);
        lua_pushboolean(L, 1);
        lua_rawset(L, set);
      }
    }
    lua_pop(L, 1);
  }
}

/*
** Adds to the set at 'set' the identifier keys of the value at 'obj' that start with 'prefix'
** (functions only, when 'methods'): its own fields, then those of its '__index' tables. A
** function '__index' is never called: its metatable's own entries and the tables among its
** upvalues (a C class's method table, a lazy loader's name list) stand for what it serves.
*/
static void collectkeys (lua_State *L, int obj, int set, const char *prefix, int methods,
                         int depth) {
  if (lua_istable(L, obj))
    addkeys(L, obj, set, prefix, methods, 0);
  if (depth < 8 && lua_getmetatable(L, obj)) {
    int mt = lua_gettop(L);
    lua_pushliteral(L, "__index");
    lua_rawget(L, mt);
    if (lua_istable(L, -1))
      collectkeys(L, lua_gettop(L), set, prefix, methods, depth + 1);
    else if (lua_isfunction(L, -1)) {
      int f = lua_gettop(L), i;
      addkeys(L, mt, set, prefix, methods, 1);
      for (i = 1; i <= 4 && lua_getupvalue(L, f, i) != NULL; i++) {
        if (lua_istable(L, -1)) addkeys(L, lua_gettop(L), set, prefix, methods, 1);
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 2);
  }
}

// The keys of the set at 'set' as a sorted sequence, each prefixed by 'head'; pushed.
static void sortedkeys (lua_State *L, int set, const char *head) {
  int n = 0;
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, set)) {
    lua_pop(L, 1);
    lua_pushfstring(L, "%s%s", head, lua_tostring(L, -1));
    lua_rawseti(L, -3, ++n);
  }
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_pushvalue(L, -3);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
}

/*
** m_complete(text): the completions of 'text', a word such as 'str', 'trl.nd.ar' or 'x:sh',
** as a sorted sequence. The path before the last '.' or ':' is walked from _G.
*/
static int m_complete (lua_State *L) {
  const char *text = luaL_checkstring(L, 1);
  const char *sep = NULL, *p;
  int set, i;
  for (p = text; *p; p++)
    if (*p == '.' || *p == ':') sep = p;
  lua_newtable(L);
  set = lua_gettop(L);
  if (sep == NULL) {
    size_t n = strlen(text);
    for (i = 0; keywords[i]; i++)
      if (strncmp(keywords[i], text, n) == 0) {
        lua_pushboolean(L, 1);
        lua_setfield(L, set, keywords[i]);
      }
    lua_pushglobaltable(L);
    collectkeys(L, lua_gettop(L), set, text, 0, 0);
    lua_pop(L, 1);
    sortedkeys(L, set, "");
    return 1;
  }
  lua_pushglobaltable(L);
  for (p = text; p < sep; ) {
    const char *q = p;
    while (q < sep && *q != '.' && *q != ':') q++;
    if (q == p || (q < sep && *q == ':')) {    // an empty name, or an early ':'
      lua_pushnil(L);
      lua_replace(L, -2);
      break;
    }
    lua_pushlstring(L, p, q - p);
    lookup(L, set + 1, lua_tostring(L, -1));
    lua_replace(L, set + 1);
    lua_pop(L, 1);
    p = q + 1;
  }
  if (!lua_isnil(L, set + 1))
    collectkeys(L, set + 1, set, sep + 1, *sep == ':', 0);
  lua_pushlstring(L, text, sep + 1 - text);
  sortedkeys(L, set, lua_tostring(L, -1));
  return 1;
}

static void printcolumns (lua_State *L, int seq) {
  lua_Integer i, n = luaL_len(L, seq);
  size_t width = 0, w;
  int cols, col = 0;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, seq, i);
    w = lua_rawlen(L, -1);
    if (w > width) width = w;
    lua_pop(L, 1);
  }
  cols = (int)(78 / (width + 2));
  if (cols < 1) cols = 1;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, seq, i);
    col = (int)((i - 1) % cols);
    printf("%s%-*s", col == 0 ? "  " : "  ", (int)width, lua_tostring(L, -1));
    if (col == cols - 1 || i == n) printf("\n");
    lua_pop(L, 1);
  }
}

// help() says how the REPL works; help(x) shows x and lists its fields or methods.
static int m_help (lua_State *L) {
  if (lua_isnone(L, 1)) {
    printf(
      "trl REPL: type Lua. An expression prints its values; a trailing ';' keeps it quiet.\n"
      "  Unfinished input continues on a '>>' line. Tab completes names, fields and methods\n"
      "  (string.for<Tab>, x:<Tab>). Ctrl-C stops a running statement or clears the line;\n"
      "  Ctrl-D exits. help(t) lists the fields of a table or the methods of an object.\n"
      "  Globals: 'trl' (the library) and 'nd' (trl.nd) when they load.\n");
    fflush(stdout);
    return 0;
  }
  lua_settop(L, 1);
  luaL_tolstring(L, 1, NULL);
  printf("%s\n", lua_tostring(L, -1));
  lua_newtable(L);
  collectkeys(L, 1, lua_gettop(L), "", 0, 0);
  sortedkeys(L, lua_gettop(L), "");
  printcolumns(L, lua_gettop(L));
  fflush(stdout);
  return 0;
}

/* }================================================================== */


/*
** {==================================================================
** Reading lines: readline on a terminal, plain reads otherwise
** ===================================================================
*/

static volatile sig_atomic_t gotint = 0, gotwinch = 0;
static char **cands = NULL;    // completions waiting for 'nextcand'
static int ncands = 0, icand = 0;
static char *rlline;           // what 'rlhandler' got
static int rldone;

static void onsignal (int sig) {
  if (sig == SIGINT) gotint = 1;
  else gotwinch = 1;
}

static void freecands (void) {
  while (icand < ncands) free(cands[icand++]);
  free(cands);
  cands = NULL;
  ncands = icand = 0;
}

static char *nextcand (const char *text, int state) {
  (void)text; (void)state;
  if (icand < ncands) return cands[icand++];    // readline frees it
  return NULL;
}

// readline's completer: the candidates come from 'm_complete' under a pcall.
static char **complete (const char *text, int start, int end) {
  lua_State *L = globalL;
  int top = lua_gettop(L);
  (void)start; (void)end;
  rl_attempted_completion_over = 1;    // never fall back to file names
  rl_completion_append_character = '\0';
  freecands();
  lua_pushcfunction(L, m_complete);
  lua_pushstring(L, text);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    int i, n = (int)lua_rawlen(L, -1);
    cands = malloc((n + 1) * sizeof *cands);
    for (i = 0; cands != NULL && i < n; i++) {
      lua_rawgeti(L, -1, i + 1);
      cands[ncands] = strdup(lua_tostring(L, -1));
      if (cands[ncands] != NULL) ncands++;
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
  return ncands > 0 ? rl_completion_matches(text, nextcand) : NULL;
}

// Lists completions by their last name only ('gsub', not 'string.gsub'); all share one head.
static void showmatches (char **matches, int n, int maxlen) {
  size_t skip = 0;
  const char *p;
  char **shown = malloc((n + 2) * sizeof *shown);
  int i;
  if (shown == NULL) {
    rl_display_match_list(matches, n, maxlen);
    return;
  }
  for (p = matches[1]; *p; p++)
    if (*p == '.' || *p == ':') skip = p - matches[1] + 1;
  shown[0] = matches[0];
  for (i = 1; i <= n; i++) shown[i] = matches[i] + skip;
  shown[n + 1] = NULL;
  rl_display_match_list(shown, n, maxlen - (int)skip);
  rl_forced_update_display();
  free(shown);
}

static void rlhandler (char *line) {
  rlline = line;
  rldone = 1;
  rl_callback_handler_remove();
}

/*
** One line from the terminal, malloc'ed, or NULL at end of input. Readline's callback
** interface runs under our own pselect loop (as Python's REPL does), so that a Ctrl-C at the
** prompt drops the line and sets '*interrupted' instead of killing the process.
*/
static char *ttyline (const char *prompt, int *interrupted) {
  struct sigaction oldint, oldwinch;
  sigset_t block, orig;
  int fd = fileno(rl_instream ? rl_instream : stdin);
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGWINCH);
  sigprocmask(SIG_BLOCK, &block, &orig);    // signals arrive only inside 'pselect'
  setsignal(SIGINT, onsignal, &oldint);
  setsignal(SIGWINCH, onsignal, &oldwinch);
  gotint = gotwinch = 0;
  rldone = 0;
  rlline = NULL;
  *interrupted = 0;
  rl_callback_handler_install(prompt, rlhandler);
  while (!rldone) {
    fd_set fds;
    int r;
    FD_ZERO(&fds);
    FD_SET(fd, &fds);
    r = pselect(fd + 1, &fds, NULL, NULL, NULL, &orig);
    if (gotwinch) {
      gotwinch = 0;
      rl_resize_terminal();
    }
    if (gotint) {
      rl_free_line_state();
      rl_callback_sigcleanup();
      rl_cleanup_after_signal();
      rl_callback_handler_remove();
      fputs("^C\n", stdout);
      *interrupted = 1;
      break;
    }
    if (r > 0)
      rl_callback_read_char();
    else if (r < 0 && errno != EINTR) {    // the terminal went away: end of input
      rl_callback_handler_remove();
      break;
    }
  }
  sigaction(SIGINT, &oldint, NULL);
  sigaction(SIGWINCH, &oldwinch, NULL);
  sigprocmask(SIG_SETMASK, &orig, NULL);
  return rlline;
}

static const char *get_prompt (lua_State *L, int firstline) {
  const char *p;
  lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2");
  p = lua_tostring(L, -1);
  if (p == NULL) p = firstline ? PROMPT1 : PROMPT2;
  lua_pop(L, 1);    // a string global stays alive in _G
  return p;
}

/*
** Pushes the next line (without its newline). Returns 1, 0 at end of input, or -1 when a
** Ctrl-C at the prompt dropped it.
*/
static int pushline (lua_State *L, int firstline) {
  fflush(stdout);
  if (interactive) {
    int intr;
    char *line = ttyline(get_prompt(L, firstline), &intr);
    if (line == NULL) return intr ? -1 : 0;
    if (firstline && line[0] == '=')    // '=x' means 'return x' (Lua 5.2)
      lua_pushfstring(L, "return %s", line + 1);
    else
      lua_pushstring(L, line);
    free(line);
    return 1;
  }
  else {
    luaL_Buffer b;
    int c;
    luaL_buffinit(L, &b);
    while ((c = getchar()) != EOF && c != '\n')
      luaL_addchar(&b, (char)c);
    if (c == EOF && luaL_bufflen(&b) == 0) {
      luaL_pushresult(&b);
      lua_pop(L, 1);
      return 0;
    }
    if (firstline && luaL_bufflen(&b) > 0 && luaL_buffaddr(&b)[0] == '=') {
      luaL_pushresult(&b);
      lua_pushfstring(L, "return %s", lua_tostring(L, -1) + 1);
      lua_remove(L, -2);
    }
    else
      luaL_pushresult(&b);
    return 1;
  }
}

static void initreadline (lua_State *L) {
  const char *home = getenv("HOME");
  (void)L;
  histfile[0] = '\0';
  if (!interactive) return;
  setlocale(LC_CTYPE, "");    // readline edits multibyte text; numbers keep the C locale
  rl_readline_name = "trl";   // for '$if trl' in ~/.inputrc
  rl_catch_signals = 0;       // 'ttyline' handles SIGINT and SIGWINCH itself
  rl_catch_sigwinch = 0;
  rl_attempted_completion_function = complete;
  rl_completion_display_matches_hook = showmatches;
  rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[])}";
  rl_completer_word_break_characters = rl_basic_word_break_characters;
  stifle_history(HISTORY_MAX);
  if (home != NULL && *home != '\0' &&
      snprintf(histfile, sizeof histfile, "%s/.trl_history", home) < (int)sizeof histfile) {
    history_truncate_file(histfile, HISTORY_MAX);
    read_history(histfile);    // a missing file is fine
  }
  else
    histfile[0] = '\0';
}

static void saveline (const char *line) {
  if (!interactive || line[0] == '\0') return;
  add_history(line);
  if (histfile[0] != '\0' && append_history(1, histfile) != 0)
    write_history(histfile);    // 'append_history' does not create the file
}

static void closereadline (void) {
  freecands();
  if (interactive && histfile[0] != '\0')
    history_truncate_file(histfile, HISTORY_MAX);
}

/* }================================================================== */


/*
** {==================================================================
** The REPL (lua.c's doREPL, with ';' to keep a statement quiet)
** ===================================================================
*/

static int incomplete (lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t lmsg, marklen = sizeof(EOFMARK) - 1;
    const char *msg = lua_tolstring(L, -1, &lmsg);
    if (msg != NULL && lmsg >= marklen && strcmp(msg + lmsg - marklen, EOFMARK) == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

// Length of 'chunk' without the blanks and ';'s that end it; '*quiet' says if one was a ';'.
static size_t trimsemi (const char *chunk, size_t len, int *quiet) {
  *quiet = 0;
  while (len > 0 && strchr(" \t\r\n;", chunk[len - 1]) != NULL) {
    if (chunk[len - 1] == ';') *quiet = 1;
    len--;
  }
  return len;
}

// Tries 'return <chunk>;' (its values print). Pushes the function on success only.
static int loadexpr (lua_State *L, const char *chunk, size_t len) {
  int status;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "return ");
  luaL_addlstring(&b, chunk, len);
  luaL_addchar(&b, ';');
  luaL_pushresult(&b);
  status = luaL_loadbuffer(L, lua_tostring(L, -1), lua_rawlen(L, -1), "=stdin");
  lua_remove(L, -2);
  if (status != LUA_OK) lua_pop(L, 1);
  return status;
}

/*
** Reads and compiles one chunk, asking for more lines while it is incomplete; each version of
** the chunk is tried as an expression first. Leaves the function (or a message) on the stack.
** Returns its status, -1 at end of input, or NOINPUT when Ctrl-C dropped the chunk.
*/
static int loadline (lua_State *L, int *quiet) {
  int status, r;
  lua_settop(L, 0);
  if ((r = pushline(L, 1)) != 1)
    return r == 0 ? -1 : NOINPUT;
  for (;;) {
    size_t len;
    const char *chunk = lua_tolstring(L, 1, &len);
    size_t n = trimsemi(chunk, len, quiet);
    if (loadexpr(L, chunk, *quiet ? n : len) == LUA_OK) {
      status = LUA_OK;
      break;
    }
    status = luaL_loadbuffer(L, chunk, len, "=stdin");
    if (!incomplete(L, status))
      break;
    if ((r = pushline(L, 0)) != 1) {
      if (r < 0) return NOINPUT;
      status = luaL_loadbuffer(L, chunk, len, "=stdin");    // end of input: report it
      break;
    }
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
  saveline(lua_tostring(L, 1));
  lua_remove(L, 1);
  return status;
}

// Prints the values on the stack tab-separated, through 'tostring' ('__tostring', '__name').
static int showvalues (lua_State *L) {
  int i, n = lua_gettop(L);
  luaL_Buffer b;
  luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
  for (i = 1; i <= n; i++)
    luaL_tolstring(L, i, NULL);    // may raise: nothing is printed then
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    lua_pushvalue(L, n + i);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  fwrite(lua_tostring(L, -1), 1, lua_rawlen(L, -1), stdout);
  fflush(stdout);
  return 0;
}

static void l_print (lua_State *L) {
  int n = lua_gettop(L);
  if (n > 0) {
    luaL_checkstack(L, 2, "too many results to print");
    lua_pushcfunction(L, showvalues);
    lua_insert(L, 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK)
      l_message(progname, lua_pushfstring(L, "error calling 'print' (%s)", msgtext(L, -1)));
  }
  lua_settop(L, 0);
}

// Pre-loads globals 'trl' = require 'trl' and 'nd' = trl.nd, and 'help' when it is free.
static int preload (lua_State *L) {
  if (lua_getglobal(L, "help") == LUA_TNIL) {
    lua_pushcfunction(L, m_help);
    lua_setglobal(L, "help");
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "trl");
  lua_call(L, 1, 1);
  lua_pushvalue(L, -1);
  lua_setglobal(L, "trl");
  if (lua_type(L, -1) == LUA_TTABLE && lua_getfield(L, -1, "nd") != LUA_TNIL)
    lua_setglobal(L, "nd");
  return 0;
}

static void loadglobals (lua_State *L) {
  lua_pushcfunction(L, preload);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    const char *msg = msgtext(L, -1);
    if (strstr(msg, "module 'trl' not found") == NULL)    // a broken trl is worth a word
      l_message("trl: warning: require 'trl' failed", msg);
  }
  lua_settop(L, 0);
}

static void doREPL (lua_State *L) {
  int status, quiet = 0;
  const char *oldprogname = progname;
  progname = NULL;    // no program name on errors in interactive mode
  globalL = L;
  interactive = isatty(STDIN_FILENO);
  if (interactive) {
    printf("trl %s — Lua 5.4 deep learning runtime; type help() for help, Ctrl-D to exit\n",
           TRL_VERSION);
    fflush(stdout);
  }
  initreadline(L);
  loadglobals(L);
  while ((status = loadline(L, &quiet)) != -1) {
    if (status == NOINPUT) continue;
    if (status == LUA_OK) status = docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK) {
      if (quiet) lua_settop(L, 0);
      else l_print(L);
    }
    else report(L, status);
  }
  lua_settop(L, 0);
  if (interactive) {
    fputs("\n", stdout);
    fflush(stdout);
  }
  closereadline();
  progname = oldprogname;
}

/* }================================================================== */


static int pmain (lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script, bad = 0;
  int args = collectargs(argv, &script, &bad);
  int optlim = (script > 0) ? script : argc;
  luaL_checkversion(L);
  if (args & has_error) {
    fprintf(stderr, "trl: unrecognized option or missing argument '%s'\n", argv[bad]);
    print_usage(stderr);
    return 0;
  }
  if (args & has_h) {
    print_usage(stdout);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (args & has_v)
    print_version();
  luaL_openlibs(L);
  trl_openlibs(L);
  setpath(L);
  createargtable(L, argv, argc, script);
  lua_gc(L, LUA_GCRESTART);    // incremental, not lua.c's generational: tensors hold memory
                               // the GC cannot see, and mem.c forces full cycles for it
  if (!runargs(L, argv, optlim)) return 0;
  if (script > 0 && handle_script(L, argv + script) != LUA_OK) return 0;
  if ((args & has_i) || (script == 0 && !(args & (has_e | has_v))))
    doREPL(L);
  lua_pushboolean(L, 1);
  return 1;
}

/*
** libgomp reads OMP_WAIT_POLICY once, when it is loaded, before 'main'. Its default lets idle
** OpenMP workers spin after each parallel region, stealing the core from OpenBLAS threads and
** serial work (bench/NOTES.md: +27% training, +40% inference with 'passive'). So unless the
** user chose a policy, trl runs itself again once with 'passive'; if exec fails, it goes on.
** With OMP_PROC_BIND or OMP_PLACES set, libgomp has also bound this first thread to the first
** place before 'main', and exec keeps that mask: the new process would see one CPU and run one
** thread. So the mask goes back to the CPUs of all the places first (libgomp made them from
** the mask the process started with, so a taskset still holds).
*/
static void unbind_places (void) {
#ifdef CPU_SET
  int np = omp_get_num_places();
  if (np <= 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int i = 0; i < np; i++) {
    int n = omp_get_place_num_procs(i), ids[CPU_SETSIZE];
    if (n <= 0 || n > CPU_SETSIZE) continue;
    omp_get_place_proc_ids(i, ids);
    for (int j = 0; j < n; j++)
      if (ids[j] >= 0 && ids[j] < CPU_SETSIZE) CPU_SET(ids[j], &set);
  }
  if (CPU_COUNT(&set) > 0) sched_setaffinity(0, sizeof set, &set);   // best effort
#endif
}

static void set_wait_policy (char **argv) {
  if (getenv("OMP_WAIT_POLICY") != NULL) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  unbind_places();
  execv("/proc/self/exe", argv);
}

int main (int argc, char **argv) {
  int status, result;
  set_wait_policy(argv);
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    l_message("trl", "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  lua_gc(L, LUA_GCSTOP);    // no GC while building the state
  lua_pushcfunction(L, &pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  status = lua_pcall(L, 2, 1, 0);
  result = lua_toboolean(L, -1);
  report(L, status);
  lua_close(L);
  return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
