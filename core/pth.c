/*
** pth.c: PyTorch zip checkpoints ('<archive>/data.pkl' + '<archive>/data/<key>' storages).
** A restricted unpickler runs only the opcodes a plain state_dict uses and knows only four
** kinds of callables (OrderedDict, _rebuild_tensor_v2, _rebuild_parameter, storage types);
** every other global is refused before anything could be called. Values live in an arena
** freed in one go; tensors are built as soon as _rebuild_tensor_v2 is reduced.
** Not supported: legacy (pre-1.6) files, TorchScript archives, quantized/sparse tensors.
*/
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <zip.h>

#include "pth.h"

#define MAX_PKL (1u << 30)          // data.pkl of a state_dict is small; refuse absurd ones

/* {==================================================================
** Values
** =================================================================== */

typedef enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL,
               V_MARK, V_STORAGE, V_TENSOR } VKind;
typedef enum { G_ORDEREDDICT, G_REBUILD_TENSOR, G_REBUILD_PARAM, G_STORAGE } GKind;

typedef struct Val Val;
struct Val {
  VKind kind;
  union {
    int64_t i;                                      // V_BOOL, V_INT
    double f;
    struct { char *s; size_t len; } str;
    struct { Val **items; int n, cap; } seq;        // tuple, list; dict as k0,v0,k1,v1...
    struct { GKind g; trl_raw raw; } glob;
    struct { trl_raw raw; const char *key; int64_t numel; } storage;
    int tensor;                                     // index into U.tensors
  } u;
};

typedef struct {
  char *key;
  unsigned char *bytes;
  size_t nbytes;
} Storage;

typedef struct {
  const char *what;
  zip_t *zip;
  uint64_t archive_len;
  char *prefix;                 // "archive/"
  const unsigned char *p;       // data.pkl
  size_t len, pos;
  void **allocs;                // arena
  size_t nallocs, capallocs;
  Val **stack;
  int sp, capstack;
  Val **memo;
  size_t capmemo, memo_count;
  trl_tensor **tensors;
  int ntensors, captensors;
  Storage *storages;
  int nstorages, capstorages;
} U;

static trl_status fail (U *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static trl_status fail (U *u, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return trl_fail(TRL_EFORMAT, "pth: %s: data.pkl byte %zu: %s", u->what, u->pos, msg);
}

static trl_status oom (U *u) {
  return trl_fail(TRL_ENOMEM, "pth: %s: out of memory", u->what);
}

// Grow '*p' (of '*cap' elements of 'size') to hold 'need'; 0 on failure.
static int grow (void *p, int64_t *cap, int64_t need, size_t size) {
  if (need <= *cap) return 1;
  int64_t c = *cap ? *cap : 8;
  while (c < need) c *= 2;
  void *q = realloc(*(void **)p, (size_t)c * size);
  if (q == NULL) return 0;
  *(void **)p = q;
  *cap = c;
  return 1;
}

#define GROW(u, arr, cap, need) do { \
    int64_t c_ = (int64_t)(cap); \
    if (!grow(&(arr), &c_, (int64_t)(need), sizeof *(arr))) return oom(u); \
    (cap) = c_; \
  } while (0)

static void *arena (U *u, size_t n) {
  int64_t cap = (int64_t)u->capallocs;
  if (!grow(&u->allocs, &cap, (int64_t)u->nallocs + 1, sizeof *u->allocs)) return NULL;
  u->capallocs = (size_t)cap;
  void *p = calloc(1, n ? n : 1);
  if (p) u->allocs[u->nallocs++] = p;
  return p;
}

static trl_status newval (U *u, VKind k, Val **out) {
  if ((*out = arena(u, sizeof(Val))) == NULL) return oom(u);
  (*out)->kind = k;
  return TRL_OK;
}

static trl_status push (U *u, Val *v) {
  GROW(u, u->stack, u->capstack, u->sp + 1);
  u->stack[u->sp++] = v;
  return TRL_OK;
}

static trl_status pushnew (U *u, VKind k, Val **out) {
  TRL_TRY(newval(u, k, out));
  return push(u, *out);
}

static trl_status pop (U *u, Val **v) {
  if (u->sp == 0 || u->stack[u->sp - 1]->kind == V_MARK)
    return fail(u, "stack underflow");
  *v = u->stack[--u->sp];
  return TRL_OK;
}

static trl_status top (U *u, Val **v) {
  if (u->sp == 0 || u->stack[u->sp - 1]->kind == V_MARK) return fail(u, "stack underflow");
  *v = u->stack[u->sp - 1];
  return TRL_OK;
}

// Index of the topmost MARK.
static trl_status findmark (U *u, int *at) {
  for (int i = u->sp - 1; i >= 0; i--)
    if (u->stack[i]->kind == V_MARK) { *at = i; return TRL_OK; }
  return fail(u, "no MARK on the stack");
}

// Item arrays live in the arena too: a grown array leaves the old one there until the end.
static trl_status seq_add (U *u, Val *s, Val *v) {
  if (s->u.seq.n == s->u.seq.cap) {
    int cap = s->u.seq.cap ? 2 * s->u.seq.cap : 4;
    Val **items = arena(u, sizeof *items * (size_t)cap);
    if (items == NULL) return oom(u);
    if (s->u.seq.n) memcpy(items, s->u.seq.items, sizeof *items * (size_t)s->u.seq.n);
    s->u.seq.items = items;
    s->u.seq.cap = cap;
  }
  s->u.seq.items[s->u.seq.n++] = v;
  return TRL_OK;
}

// Keys are appended, not replaced: a state_dict never repeats one, and a repeated tensor
// name is refused at the end (keeps hostile pickles linear-time).
static trl_status dict_set (U *u, Val *d, Val *k, Val *v) {
  TRL_TRY(seq_add(u, d, k));
  return seq_add(u, d, v);
}

/* }================================================================== */

/* {==================================================================
** Input
** =================================================================== */

static trl_status need (U *u, size_t n, const char *what) {
  if (n > u->len - u->pos)
    return fail(u, "truncated reading %s (need %zu bytes, %zu left)", what, n, u->len - u->pos);
  return TRL_OK;
}

static uint64_t le (const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static trl_status rd_uint (U *u, int n, uint64_t *v, const char *what) {
  TRL_TRY(need(u, (size_t)n, what));
  *v = le(u->p + u->pos, n);
  u->pos += (size_t)n;
  return TRL_OK;
}

static trl_status pushstr (U *u, size_t n) {
  Val *v;
  TRL_TRY(need(u, n, "a string"));
  TRL_TRY(pushnew(u, V_STR, &v));
  if ((v->u.str.s = arena(u, n + 1)) == NULL) return oom(u);
  memcpy(v->u.str.s, u->p + u->pos, n);
  v->u.str.len = n;
  u->pos += n;
  return TRL_OK;
}

// A newline-terminated line of GLOBAL (at most 'cap'-1 bytes).
static trl_status rd_line (U *u, char *buf, size_t cap) {
  const unsigned char *nl = memchr(u->p + u->pos, '\n', u->len - u->pos);
  if (nl == NULL) return fail(u, "truncated GLOBAL name");
  size_t n = (size_t)(nl - (u->p + u->pos));
  if (n >= cap) return fail(u, "GLOBAL name of %zu bytes is too long", n);
  memcpy(buf, u->p + u->pos, n);
  buf[n] = '\0';
  u->pos += n + 1;
  return TRL_OK;
}

/* }================================================================== */

/* {==================================================================
** Globals, storages and tensors
** =================================================================== */

static trl_status resolve (U *u, const char *mod, const char *name, Val **out) {
  static const struct { const char *name; trl_raw raw; } st[] = {
    {"FloatStorage", TRL_RAW_F32}, {"DoubleStorage", TRL_RAW_F64},
    {"HalfStorage", TRL_RAW_F16}, {"BFloat16Storage", TRL_RAW_BF16},
    {"LongStorage", TRL_RAW_I64}, {"IntStorage", TRL_RAW_I32},
    {"ShortStorage", TRL_RAW_I16}, {"CharStorage", TRL_RAW_I8},
    {"ByteStorage", TRL_RAW_U8}, {"BoolStorage", TRL_RAW_BOOL},
    {"UntypedStorage", TRL_RAW_U8},
  };
  GKind g = G_STORAGE;
  trl_raw raw = TRL_RAW_U8;
  int found = 0;
  if (strcmp(mod, "collections") == 0 && strcmp(name, "OrderedDict") == 0)
    g = G_ORDEREDDICT, found = 1;
  else if (strcmp(mod, "torch._utils") == 0 && strcmp(name, "_rebuild_tensor_v2") == 0)
    g = G_REBUILD_TENSOR, found = 1;
  else if (strcmp(mod, "torch._utils") == 0 && strcmp(name, "_rebuild_parameter") == 0)
    g = G_REBUILD_PARAM, found = 1;
  else if (strcmp(mod, "torch") == 0 || strcmp(mod, "torch.storage") == 0 ||
           strcmp(mod, "torch.cuda") == 0)
    for (size_t i = 0; i < sizeof st / sizeof *st && !found; i++)
      if (strcmp(name, st[i].name) == 0) raw = st[i].raw, found = 1;
  if (!found)
    return trl_fail(TRL_EFORMAT, "pth: %s: refusing to call %.100s.%.100s (only plain tensor "
                    "state_dicts are loaded)", u->what, mod, name);
  TRL_TRY(pushnew(u, V_GLOBAL, out));
  (*out)->u.glob.g = g;
  (*out)->u.glob.raw = raw;
  return TRL_OK;
}

// The bytes of storage 'key', read from the zip once and cached.
static trl_status load_storage (U *u, const Val *sv, Storage **out) {
  const char *key = sv->u.storage.key;
  for (int i = 0; i < u->nstorages; i++)
    if (strcmp(u->storages[i].key, key) == 0) { *out = &u->storages[i]; return TRL_OK; }
  size_t es = trl_raw_size(sv->u.storage.raw);
  uint64_t want = (uint64_t)sv->u.storage.numel * es;
  char *name = arena(u, strlen(u->prefix) + strlen(key) + 8);
  if (name == NULL) return oom(u);
  sprintf(name, "%sdata/%s", u->prefix, key);
  zip_stat_t zs;
  zip_int64_t idx = zip_name_locate(u->zip, name, 0);
  if (idx < 0 || zip_stat_index(u->zip, (zip_uint64_t)idx, 0, &zs) != 0 ||
      !(zs.valid & ZIP_STAT_SIZE))
    return fail(u, "storage '%.100s' has no zip entry '%.200s'", key, name);
  if (zs.size != want)
    return fail(u, "storage '%.100s' should hold %lld %s elements (%llu bytes), its entry has "
                "%llu bytes", key, (long long)sv->u.storage.numel,
                trl_raw_name(sv->u.storage.raw), (unsigned long long)want,
                (unsigned long long)zs.size);
  if (want > u->archive_len * 1100)            // beyond any deflate ratio: a zip bomb
    return fail(u, "storage '%.100s' claims %llu bytes in a %llu-byte archive", key,
                (unsigned long long)want, (unsigned long long)u->archive_len);
  GROW(u, u->storages, u->capstorages, u->nstorages + 1);
  unsigned char *bytes = arena(u, (size_t)want);
  if (bytes == NULL) return oom(u);
  zip_file_t *zf = zip_fopen_index(u->zip, (zip_uint64_t)idx, 0);
  zip_int64_t got = zf ? zip_fread(zf, bytes, want) : -1;
  if (zf) zip_fclose(zf);
  if (got < 0 || (uint64_t)got != want)
    return fail(u, "cannot read zip entry '%.200s' (%s)", name,
                zf ? "short or corrupt data" : zip_strerror(u->zip));
  Storage *s = &u->storages[u->nstorages++];
  s->key = (char *)key;
  s->bytes = bytes;
  s->nbytes = (size_t)want;
  *out = s;
  return TRL_OK;
}

// 'out' = the tuple of ints 't' as a shape; 'what' names it in messages.
static trl_status int_tuple (U *u, const Val *t, int64_t *out, int *n, const char *what) {
  if (t->kind != V_TUPLE && t->kind != V_LIST) return fail(u, "%s is not a tuple", what);
  if (t->u.seq.n > TRL_MAXDIM)
    return fail(u, "%s has %d dims, trl supports at most %d", what, t->u.seq.n, TRL_MAXDIM);
  for (int i = 0; i < t->u.seq.n; i++) {
    if (t->u.seq.items[i]->kind != V_INT || t->u.seq.items[i]->u.i < 0)
      return fail(u, "%s entry %d is not a non-negative integer", what, i);
    out[i] = t->u.seq.items[i]->u.i;
  }
  *n = t->u.seq.n;
  return TRL_OK;
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata])
static trl_status rebuild_tensor (U *u, const Val *args, Val **out) {
  if (args->kind != V_TUPLE || args->u.seq.n < 4)
    return fail(u, "_rebuild_tensor_v2 takes (storage, offset, size, stride, ...)");
  Val **a = args->u.seq.items;
  if (a[0]->kind != V_STORAGE) return fail(u, "_rebuild_tensor_v2: argument 1 is not a storage");
  if (a[1]->kind != V_INT || a[1]->u.i < 0)
    return fail(u, "_rebuild_tensor_v2: storage offset is not a non-negative integer");
  int64_t size[TRL_MAXDIM], stride[TRL_MAXDIM], off = a[1]->u.i, snumel = a[0]->u.storage.numel;
  int nd, nds;
  TRL_TRY(int_tuple(u, a[2], size, &nd, "tensor size"));
  TRL_TRY(int_tuple(u, a[3], stride, &nds, "tensor stride"));
  if (nd != nds) return fail(u, "tensor size has %d dims but stride %d", nd, nds);
  int64_t numel = 1, last = off;
  for (int i = 0; i < nd; i++) {
    if (size[i] != 0 && numel > snumel / size[i] + 1) numel = snumel + 1;   // overflow guard
    else numel *= size[i];
  }
  char sb[TRL_SHAPELEN];
  if (numel > snumel)
    return fail(u, "tensor of size %s has more elements than its storage '%.100s' (%lld): "
                "expanded views are not supported", trl_shape_str(sb, size, nd),
                a[0]->u.storage.key, (long long)snumel);
  for (int i = 0; i < nd && numel > 0; i++) {   // last element must lie inside the storage
    if (size[i] > 1 && stride[i] > 0 &&
        (stride[i] > snumel || size[i] - 1 > (snumel - 1 - last) / stride[i]))
      return fail(u, "tensor of size %s, stride %lld at dim %d (offset %lld) reaches past the "
                  "end of storage '%.100s' (%lld elements)", trl_shape_str(sb, size, nd),
                  (long long)stride[i], i, (long long)off, a[0]->u.storage.key,
                  (long long)snumel);
    last += (size[i] - 1) * stride[i];
  }
  if (numel > 0 && last >= snumel)
    return fail(u, "tensor offset %lld is outside storage '%.100s' (%lld elements)",
                (long long)off, a[0]->u.storage.key, (long long)snumel);
  Storage *s = NULL;
  TRL_TRY(load_storage(u, a[0], &s));
  trl_raw raw = a[0]->u.storage.raw;
  GROW(u, u->tensors, u->captensors, u->ntensors + 1);
  trl_tensor *t;
  TRL_TRY(trl_tensor_empty(&t, trl_raw_dtype(raw), nd, size));
  u->tensors[u->ntensors++] = t;
  size_t es = trl_raw_size(raw), ds = trl_dtype_size(t->dtype);
  unsigned char *dst = trl_data(t);
  // Copy in runs along the last dim when it is dense, else element by element.
  int64_t run = nd > 0 && stride[nd - 1] == 1 ? size[nd - 1] : 1, idx[TRL_MAXDIM] = {0};
  int outer = nd > 0 && stride[nd - 1] == 1 ? nd - 1 : nd;
  for (int64_t done = 0; done < numel; done += run) {
    int64_t src = off;
    for (int i = 0; i < outer; i++) src += idx[i] * stride[i];
    trl_raw_convert(dst + (size_t)done * ds, s->bytes + (size_t)src * es, raw, (size_t)run);
    for (int i = outer - 1; i >= 0; i--) {
      if (++idx[i] < size[i]) break;
      idx[i] = 0;
    }
  }
  TRL_TRY(newval(u, V_TENSOR, out));
  (*out)->u.tensor = u->ntensors - 1;
  return TRL_OK;
}

static trl_status call (U *u, const Val *fn, const Val *args, Val **out) {
  if (fn->kind != V_GLOBAL) return fail(u, "REDUCE on something that is not a callable");
  if (args->kind != V_TUPLE) return fail(u, "REDUCE arguments are not a tuple");
  switch (fn->u.glob.g) {
  case G_ORDEREDDICT:
    if (args->u.seq.n != 0) return fail(u, "OrderedDict called with arguments");
    return newval(u, V_DICT, out);
  case G_REBUILD_TENSOR:
    return rebuild_tensor(u, args, out);
  case G_REBUILD_PARAM:
    if (args->u.seq.n < 1 || args->u.seq.items[0]->kind != V_TENSOR)
      return fail(u, "_rebuild_parameter: argument 1 is not a tensor");
    *out = args->u.seq.items[0];
    return TRL_OK;
  default:
    return fail(u, "a storage type cannot be called");
  }
}

// BINPERSID: ('storage', storage_type, key, location, numel)
static trl_status persistent_load (U *u, const Val *pid, Val **out) {
  Val **a = pid->u.seq.items;
  if (pid->kind != V_TUPLE || pid->u.seq.n != 5 || a[0]->kind != V_STR ||
      strcmp(a[0]->u.str.s, "storage") != 0 || a[1]->kind != V_GLOBAL ||
      a[1]->u.glob.g != G_STORAGE || a[2]->kind != V_STR || a[3]->kind != V_STR ||
      a[4]->kind != V_INT || a[4]->u.i < 0)
    return fail(u, "persistent id is not ('storage', type, key, location, numel)");
  if (strlen(a[2]->u.str.s) != a[2]->u.str.len) return fail(u, "storage key contains NUL");
  TRL_TRY(newval(u, V_STORAGE, out));
  (*out)->u.storage.raw = a[1]->u.glob.raw;
  (*out)->u.storage.key = a[2]->u.str.s;
  (*out)->u.storage.numel = a[4]->u.i;
  if ((uint64_t)a[4]->u.i > UINT64_MAX / 8 / trl_raw_size(a[1]->u.glob.raw))
    return fail(u, "storage '%.100s' numel %lld is too large", a[2]->u.str.s,
                (long long)a[4]->u.i);
  return TRL_OK;
}

/* }================================================================== */

/* {==================================================================
** The unpickler
** =================================================================== */

static trl_status memo_put (U *u, uint64_t i) {
  Val *v = NULL;
  TRL_TRY(top(u, &v));
  if (i > 2 * (uint64_t)u->len + 16) return fail(u, "memo index %llu is implausible",
                                                 (unsigned long long)i);
  size_t old = u->capmemo;
  GROW(u, u->memo, u->capmemo, i + 1);
  if (u->capmemo > old) memset(u->memo + old, 0, (u->capmemo - old) * sizeof *u->memo);
  if (u->memo[i] == NULL) u->memo_count++;
  u->memo[i] = v;
  return TRL_OK;
}

static trl_status memo_get (U *u, uint64_t i) {
  if (i >= u->capmemo || u->memo[i] == NULL)
    return fail(u, "memo index %llu was never stored", (unsigned long long)i);
  return push(u, u->memo[i]);
}

static trl_status run (U *u, Val **result) {
  for (;;) {
    Val *v = NULL, *k = NULL, *w = NULL;
    uint64_t n = 0;
    int mark = 0;
    TRL_TRY(need(u, 1, "an opcode"));
    unsigned op = u->p[u->pos++];
    switch (op) {
    case 0x80:                                  // PROTO
      TRL_TRY(rd_uint(u, 1, &n, "PROTO"));
      if (n > 5) return fail(u, "pickle protocol %llu is not supported", (unsigned long long)n);
      break;
    case 0x95:                                  // FRAME: a length hint only
      TRL_TRY(rd_uint(u, 8, &n, "FRAME"));
      break;
    case '.':                                   // STOP
      TRL_TRY(pop(u, result));
      return TRL_OK;
    case '}': TRL_TRY(pushnew(u, V_DICT, &v)); break;
    case ']': TRL_TRY(pushnew(u, V_LIST, &v)); break;
    case ')': TRL_TRY(pushnew(u, V_TUPLE, &v)); break;
    case '(': TRL_TRY(pushnew(u, V_MARK, &v)); break;
    case 'N': TRL_TRY(pushnew(u, V_NONE, &v)); break;
    case 0x88: case 0x89:                       // NEWTRUE, NEWFALSE
      TRL_TRY(pushnew(u, V_BOOL, &v));
      v->u.i = op == 0x88;
      break;
    case 'K': case 'M': case 'J':               // BININT1, BININT2, BININT
      TRL_TRY(rd_uint(u, op == 'K' ? 1 : op == 'M' ? 2 : 4, &n, "BININT"));
      TRL_TRY(pushnew(u, V_INT, &v));
      v->u.i = op == 'J' ? (int64_t)(int32_t)(uint32_t)n : (int64_t)n;
      break;
    case 0x8a:                                  // LONG1: little-endian two's complement
      TRL_TRY(rd_uint(u, 1, &n, "LONG1"));
      if (n > 8) return fail(u, "LONG1 of %llu bytes does not fit int64", (unsigned long long)n);
      TRL_TRY(pushnew(u, V_INT, &v));
      if (n > 0) {
        uint64_t x;
        TRL_TRY(rd_uint(u, (int)n, &x, "LONG1"));
        if (n < 8 && (x >> (8 * n - 1)) & 1) x |= ~(uint64_t)0 << (8 * n);
        v->u.i = (int64_t)x;
      }
      break;
    case 'G':                                   // BINFLOAT: big-endian double
      TRL_TRY(need(u, 8, "BINFLOAT"));
      n = 0;
      for (int i = 0; i < 8; i++) n = n << 8 | u->p[u->pos + i];
      u->pos += 8;
      TRL_TRY(pushnew(u, V_FLOAT, &v));
      memcpy(&v->u.f, &n, 8);
      break;
    case 'X': case 0x8c: case 0x8d:             // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
    case 'T': case 'U': case 'B': case 'C':     // BINSTRING, SHORT_BINSTRING, (SHORT_)BINBYTES
      TRL_TRY(rd_uint(u, op == 0x8c || op == 'U' || op == 'C' ? 1 : op == 0x8d ? 8 : 4, &n,
                      "a string length"));
      TRL_TRY(need(u, n, "a string"));
      TRL_TRY(pushstr(u, (size_t)n));
      break;
    case 't': case 'l':                         // TUPLE, LIST
      TRL_TRY(findmark(u, &mark));
      TRL_TRY(newval(u, op == 't' ? V_TUPLE : V_LIST, &v));
      for (int i = mark + 1; i < u->sp; i++) TRL_TRY(seq_add(u, v, u->stack[i]));
      u->sp = mark;
      TRL_TRY(push(u, v));
      break;
    case 0x85: case 0x86: case 0x87: {          // TUPLE1..3
      int cnt = (int)op - 0x84;
      Val *items[3];
      for (int i = cnt - 1; i >= 0; i--) TRL_TRY(pop(u, &items[i]));
      TRL_TRY(newval(u, V_TUPLE, &v));
      for (int i = 0; i < cnt; i++) TRL_TRY(seq_add(u, v, items[i]));
      TRL_TRY(push(u, v));
      break;
    }
    case 'a':                                   // APPEND
      TRL_TRY(pop(u, &v));
      TRL_TRY(top(u, &k));
      if (k->kind != V_LIST) return fail(u, "APPEND to something that is not a list");
      TRL_TRY(seq_add(u, k, v));
      break;
    case 'e':                                   // APPENDS
      TRL_TRY(findmark(u, &mark));
      if (mark == 0 || u->stack[mark - 1]->kind != V_LIST)
        return fail(u, "APPENDS to something that is not a list");
      for (int i = mark + 1; i < u->sp; i++) TRL_TRY(seq_add(u, u->stack[mark - 1], u->stack[i]));
      u->sp = mark;
      break;
    case 's':                                   // SETITEM
      TRL_TRY(pop(u, &v));
      TRL_TRY(pop(u, &k));
      TRL_TRY(top(u, &w));
      if (w->kind != V_DICT) return fail(u, "SETITEM on something that is not a dict");
      TRL_TRY(dict_set(u, w, k, v));
      break;
    case 'u':                                   // SETITEMS
      TRL_TRY(findmark(u, &mark));
      if (mark == 0 || u->stack[mark - 1]->kind != V_DICT)
        return fail(u, "SETITEMS on something that is not a dict");
      if ((u->sp - mark - 1) % 2) return fail(u, "SETITEMS with an odd number of items");
      for (int i = mark + 1; i < u->sp; i += 2)
        TRL_TRY(dict_set(u, u->stack[mark - 1], u->stack[i], u->stack[i + 1]));
      u->sp = mark;
      break;
    case 'c': {                                 // GLOBAL
      char mod[256], name[256];
      TRL_TRY(rd_line(u, mod, sizeof mod));
      TRL_TRY(rd_line(u, name, sizeof name));
      TRL_TRY(resolve(u, mod, name, &v));
      break;
    }
    case 0x93:                                  // STACK_GLOBAL
      TRL_TRY(pop(u, &v));
      TRL_TRY(pop(u, &k));
      if (k->kind != V_STR || v->kind != V_STR) return fail(u, "STACK_GLOBAL needs two strings");
      if (strlen(k->u.str.s) != k->u.str.len || strlen(v->u.str.s) != v->u.str.len)
        return fail(u, "STACK_GLOBAL name contains NUL");
      TRL_TRY(resolve(u, k->u.str.s, v->u.str.s, &w));
      break;
    case 'R':                                   // REDUCE
      TRL_TRY(pop(u, &v));
      TRL_TRY(pop(u, &k));
      TRL_TRY(call(u, k, v, &w));
      TRL_TRY(push(u, w));
      break;
    case 'b':                                   // BUILD: only OrderedDict's _metadata
      TRL_TRY(pop(u, &v));
      TRL_TRY(top(u, &k));
      if (k->kind != V_DICT || (v->kind != V_DICT && v->kind != V_NONE && v->kind != V_TUPLE))
        return fail(u, "BUILD on an object that is not an OrderedDict");
      break;
    case 'Q':                                   // BINPERSID
      TRL_TRY(pop(u, &v));
      TRL_TRY(persistent_load(u, v, &w));
      TRL_TRY(push(u, w));
      break;
    case 'h': case 'j':                         // BINGET, LONG_BINGET
      TRL_TRY(rd_uint(u, op == 'h' ? 1 : 4, &n, "a memo index"));
      TRL_TRY(memo_get(u, n));
      break;
    case 'q': case 'r':                         // BINPUT, LONG_BINPUT
      TRL_TRY(rd_uint(u, op == 'q' ? 1 : 4, &n, "a memo index"));
      TRL_TRY(memo_put(u, n));
      break;
    case 0x94:                                  // MEMOIZE
      TRL_TRY(memo_put(u, u->memo_count));
      break;
    case '0':                                   // POP (also pops a MARK, as Python does)
      if (u->sp == 0) return fail(u, "stack underflow");
      u->sp--;
      break;
    case '1':                                   // POP_MARK
      TRL_TRY(findmark(u, &mark));
      u->sp = mark;
      break;
    case '2':                                   // DUP
      TRL_TRY(top(u, &v));
      TRL_TRY(push(u, v));
      break;
    default:
      u->pos--;
      return fail(u, "pickle opcode 0x%02x is not supported (only plain tensor state_dicts are "
                  "loaded)", op);
    }
  }
}

/* }================================================================== */

/* {==================================================================
** Archive
** =================================================================== */

static trl_status find_pickle (U *u, zip_int64_t *idx) {
  zip_int64_t n = zip_get_num_entries(u->zip, 0);
  *idx = -1;
  for (zip_int64_t i = 0; i < n; i++) {
    const char *name = zip_get_name(u->zip, (zip_uint64_t)i, 0);
    if (name == NULL) continue;
    const char *slash = strchr(name, '/');
    if (slash == NULL || strcmp(slash, "/data.pkl") != 0) continue;
    if (*idx >= 0)
      return trl_fail(TRL_EFORMAT, "pth: %s: more than one '*/data.pkl' in the archive", u->what);
    *idx = i;
    size_t plen = (size_t)(slash - name) + 1;
    if ((u->prefix = arena(u, plen + 1)) == NULL) return oom(u);
    memcpy(u->prefix, name, plen);
  }
  if (*idx < 0)
    return trl_fail(TRL_EFORMAT, "pth: %s: a zip archive without '<archive>/data.pkl' (not a "
                    "PyTorch checkpoint; .npz files are not supported)", u->what);
  return TRL_OK;
}

// Read a whole (small) entry; 'max' bounds the size.
static trl_status read_entry (U *u, zip_int64_t idx, size_t max, unsigned char **out,
                              size_t *len) {
  zip_stat_t zs;
  if (zip_stat_index(u->zip, (zip_uint64_t)idx, 0, &zs) != 0 || !(zs.valid & ZIP_STAT_SIZE))
    return trl_fail(TRL_EFORMAT, "pth: %s: %s", u->what, zip_strerror(u->zip));
  if (zs.size > max || zs.size > u->archive_len * 1100)
    return trl_fail(TRL_EFORMAT, "pth: %s: entry '%s' is implausibly large (%llu bytes)",
                    u->what, zs.name, (unsigned long long)zs.size);
  if ((*out = arena(u, (size_t)zs.size + 1)) == NULL) return oom(u);
  zip_file_t *zf = zip_fopen_index(u->zip, (zip_uint64_t)idx, 0);
  zip_int64_t got = zf ? zip_fread(zf, *out, zs.size) : -1;
  if (zf) zip_fclose(zf);
  if (got < 0 || (uint64_t)got != zs.size)
    return trl_fail(TRL_EFORMAT, "pth: %s: cannot read entry '%s' (%s)", u->what, zs.name,
                    zf ? "short or corrupt data" : zip_strerror(u->zip));
  *len = (size_t)zs.size;
  return TRL_OK;
}

static trl_status to_list (U *u, const Val *root, trl_ndlist *l) {
  if (root->kind != V_DICT)
    return trl_fail(TRL_EFORMAT, "pth: %s: the checkpoint is not a dict of tensors (only plain "
                    "tensor state_dicts are loaded)", u->what);
  int n = root->u.seq.n / 2;
  for (int i = 0; i < n; i++) {
    const Val *k = root->u.seq.items[2 * i], *v = root->u.seq.items[2 * i + 1];
    if (k->kind != V_STR || strlen(k->u.str.s) != k->u.str.len)
      return trl_fail(TRL_EFORMAT, "pth: %s: key %d of the state_dict is not a string",
                      u->what, i);
    if (v->kind != V_TENSOR)
      return trl_fail(TRL_EFORMAT, "pth: %s: '%.100s' is not a tensor (only plain tensor "
                      "state_dicts are loaded)", u->what, k->u.str.s);
  }
  l->names = calloc(n ? (size_t)n : 1, sizeof *l->names);
  l->arrays = calloc(n ? (size_t)n : 1, sizeof *l->arrays);
  if (!l->names || !l->arrays) return oom(u);
  l->n = n;
  for (int i = 0; i < n; i++) {
    const Val *k = root->u.seq.items[2 * i], *v = root->u.seq.items[2 * i + 1];
    if ((l->names[i] = malloc(k->u.str.len + 1)) == NULL) return oom(u);
    memcpy(l->names[i], k->u.str.s, k->u.str.len + 1);
    l->arrays[i] = u->tensors[v->u.tensor];
    trl_tensor_retain(l->arrays[i]);
  }
  return TRL_OK;
}

static trl_status load (U *u, zip_source_t *src, trl_ndlist *out) {
  zip_error_t ze;
  zip_error_init(&ze);
  u->zip = zip_open_from_source(src, ZIP_RDONLY, &ze);
  if (u->zip == NULL) {
    trl_status st = trl_fail(TRL_EFORMAT, "pth: %s: not a readable zip archive (%s)", u->what,
                             zip_error_strerror(&ze));
    zip_error_fini(&ze);
    zip_source_free(src);
    return st;
  }
  zip_error_fini(&ze);
  zip_int64_t idx;
  unsigned char *pkl, *order;
  size_t olen;
  TRL_TRY(find_pickle(u, &idx));
  char *bo = arena(u, strlen(u->prefix) + 16);
  if (bo == NULL) return oom(u);
  sprintf(bo, "%sbyteorder", u->prefix);
  zip_int64_t bidx = zip_name_locate(u->zip, bo, 0);
  if (bidx >= 0) {
    TRL_TRY(read_entry(u, bidx, 64, &order, &olen));
    if (olen != 6 || memcmp(order, "little", 6) != 0)
      return trl_fail(TRL_EFORMAT, "pth: %s: byteorder is not 'little' (big-endian "
                      "checkpoints are not supported)", u->what);
  }
  TRL_TRY(read_entry(u, idx, MAX_PKL, &pkl, &u->len));
  u->p = pkl;
  Val *root;
  TRL_TRY(run(u, &root));
  if (u->pos != u->len)
    return trl_fail(TRL_EFORMAT, "pth: %s: %zu bytes after the pickle's STOP", u->what,
                    u->len - u->pos);
  TRL_TRY(to_list(u, root, out));
  char what[300];
  snprintf(what, sizeof what, "pth: %s", u->what);
  return trl_names_check_unique(TRL_EFORMAT, what, out->n, out->names);
}

static void cleanup (U *u) {
  if (u->zip) zip_discard(u->zip);
  for (int i = 0; i < u->ntensors; i++) trl_tensor_release(u->tensors[i]);
  for (size_t i = 0; i < u->nallocs; i++) free(u->allocs[i]);
  free(u->allocs);
  free(u->stack);
  free(u->memo);
  free(u->tensors);
  free(u->storages);
}

static trl_status not_zip (const char *what, const unsigned char *head, size_t n) {
  if (n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5)
    return trl_fail(TRL_EFORMAT, "pth: %s: legacy .pth format not supported, re-save with "
                    "torch>=1.6", what);
  if (n >= 262 && memcmp(head + 257, "ustar", 5) == 0)
    return trl_fail(TRL_EFORMAT, "pth: %s: legacy (tar) .pth format not supported, re-save "
                    "with torch>=1.6", what);
  return trl_fail(TRL_EFORMAT, "pth: %s: not a PyTorch checkpoint (no zip header)", what);
}

static int is_zip (const unsigned char *h, size_t n) {
  return n >= 4 && h[0] == 'P' && h[1] == 'K' && ((h[2] == 3 && h[3] == 4) ||
                                                  (h[2] == 5 && h[3] == 6));
}

trl_status trl_pth_load_mem (trl_ndlist *out, const char *what, const void *buf, size_t len) {
  memset(out, 0, sizeof *out);
  if (!is_zip(buf, len)) return not_zip(what, buf, len);
  zip_error_t ze;
  zip_error_init(&ze);
  zip_source_t *src = zip_source_buffer_create(buf, len, 0, &ze);
  zip_error_fini(&ze);
  if (src == NULL) return trl_fail(TRL_ENOMEM, "pth: %s: out of memory", what);
  U u = {.what = what, .archive_len = len};
  trl_status st = load(&u, src, out);
  cleanup(&u);
  if (st != TRL_OK) trl_ndlist_free(out);
  return st;
}

trl_status trl_pth_load (trl_ndlist *out, const char *path) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (f == NULL) return trl_fail(TRL_EIO, "pth: %s: %s", path, strerror(errno));
  unsigned char head[512];
  size_t n = fread(head, 1, sizeof head, f);
  int seek_ok = fseeko(f, 0, SEEK_END) == 0;
  off_t size = seek_ok ? ftello(f) : -1;
  fclose(f);
  if (size < 0) return trl_fail(TRL_EIO, "pth: %s: cannot get its size", path);
  if (!is_zip(head, n)) return not_zip(path, head, n);
  zip_error_t ze;
  zip_error_init(&ze);
  zip_source_t *src = zip_source_file_create(path, 0, 0, &ze);
  if (src == NULL) {
    trl_status st = trl_fail(TRL_EIO, "pth: %s: %s", path, zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return st;
  }
  zip_error_fini(&ze);
  U u = {.what = path, .archive_len = (uint64_t)size};
  trl_status st = load(&u, src, out);
  cleanup(&u);
  if (st != TRL_OK) trl_ndlist_free(out);
  return st;
}

/* }================================================================== */
