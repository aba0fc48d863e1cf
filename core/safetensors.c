/*
** safetensors.c: safetensors reader and writer. The JSON header is parsed with cJSON and
** checked whole (dtypes, shapes, offsets that tile the data buffer exactly) before any
** tensor is allocated. Not supported: the F8 types, big-endian hosts.
*/
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "safetensors.h"

#define CHUNK 65536

static const struct { const char *name; trl_raw raw; } dtypes[] = {
  {"F32", TRL_RAW_F32}, {"F64", TRL_RAW_F64}, {"F16", TRL_RAW_F16}, {"BF16", TRL_RAW_BF16},
  {"I64", TRL_RAW_I64}, {"I32", TRL_RAW_I32}, {"I16", TRL_RAW_I16}, {"I8", TRL_RAW_I8},
  {"U8", TRL_RAW_U8}, {"U16", TRL_RAW_U16}, {"U32", TRL_RAW_U32}, {"U64", TRL_RAW_U64},
  {"BOOL", TRL_RAW_BOOL},
};

/* {==================================================================
** Reader
** =================================================================== */

typedef struct {
  const char *what;
  FILE *f;                        // NULL when reading 'buf'
  const unsigned char *buf;
  uint64_t size;
} Src;

typedef struct {
  const char *name;               // borrowed from the cJSON tree
  trl_raw raw;
  int ndim;
  int64_t shape[TRL_MAXDIM];
  uint64_t begin, end;            // relative to the data buffer
  int order;                      // position in the JSON header, to keep ties stable
} Entry;

static trl_status fail (Src *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static trl_status fail (Src *s, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return trl_fail(TRL_EFORMAT, "safetensors: %s: %s", s->what, msg);
}

static trl_status read_at (Src *s, uint64_t off, void *dst, size_t n) {
  if (off > s->size || n > s->size - off)
    return fail(s, "truncated: need bytes %llu..%llu, the file has %llu",
                (unsigned long long)off, (unsigned long long)(off + n),
                (unsigned long long)s->size);
  if (s->f == NULL) { memcpy(dst, s->buf + off, n); return TRL_OK; }
  if (fseeko(s->f, (off_t)off, SEEK_SET) != 0 || fread(dst, 1, n, s->f) != n)
    return trl_fail(TRL_EIO, "safetensors: %s: read error at byte %llu", s->what,
                    (unsigned long long)off);
  return TRL_OK;
}

// A JSON number that is an integer in [0, 2^53], or -1.
static int64_t json_uint (const cJSON *v) {
  if (!cJSON_IsNumber(v)) return -1;
  double d = v->valuedouble;
  if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return -1;
  return (int64_t)d;
}

static trl_status parse_entry (Src *s, const cJSON *e, Entry *en) {
  const char *k = e->string;
  if (!cJSON_IsObject(e)) return fail(s, "tensor '%s': expected an object", k);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
  const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of))
    return fail(s, "tensor '%s': expected string 'dtype', array 'shape' and array "
                "'data_offsets'", k);
  size_t i = 0, nd = sizeof dtypes / sizeof *dtypes;
  while (i < nd && strcmp(dtypes[i].name, dt->valuestring) != 0) i++;
  if (i == nd) return fail(s, "tensor '%s': dtype '%.40s' is not supported", k, dt->valuestring);
  en->name = k;
  en->raw = dtypes[i].raw;
  int ndim = cJSON_GetArraySize(sh);
  if (ndim > TRL_MAXDIM)
    return fail(s, "tensor '%s': %d dims, trl supports at most %d", k, ndim, TRL_MAXDIM);
  en->ndim = ndim;
  uint64_t numel = 1;
  const cJSON *d;
  i = 0;
  cJSON_ArrayForEach(d, sh) {
    int64_t v = json_uint(d);
    if (v < 0) return fail(s, "tensor '%s': shape entry %zu is not a non-negative integer", k, i);
    en->shape[i++] = v;
    if (v != 0 && numel > UINT64_MAX / 16 / (uint64_t)v)
      return fail(s, "tensor '%s': shape is too large", k);
    numel *= (uint64_t)v;
  }
  int64_t b = cJSON_GetArraySize(of) == 2 ? json_uint(cJSON_GetArrayItem(of, 0)) : -1;
  int64_t en_ = cJSON_GetArraySize(of) == 2 ? json_uint(cJSON_GetArrayItem(of, 1)) : -1;
  if (b < 0 || en_ < b)
    return fail(s, "tensor '%s': 'data_offsets' must be [begin, end] with 0 <= begin <= end", k);
  en->begin = (uint64_t)b;
  en->end = (uint64_t)en_;
  uint64_t want = numel * trl_raw_size(en->raw);
  if (en->end - en->begin != want) {
    char sb[TRL_SHAPELEN];
    return fail(s, "tensor '%s': %s %s needs %llu bytes, 'data_offsets' [%llu,%llu] give %llu",
                k, dt->valuestring, trl_shape_str(sb, en->shape, ndim), (unsigned long long)want,
                (unsigned long long)en->begin, (unsigned long long)en->end,
                (unsigned long long)(en->end - en->begin));
  }
  return TRL_OK;
}

static int cmp_entry (const void *pa, const void *pb) {
  const Entry *a = pa, *b = pb;
  if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
  if (a->end != b->end) return a->end < b->end ? -1 : 1;
  return a->order - b->order;
}

static char *dupstr (const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static trl_status take_metadata (Src *s, const cJSON *m, trl_ndlist *l) {
  if (!cJSON_IsObject(m)) return fail(s, "'__metadata__' must be an object of strings");
  int n = cJSON_GetArraySize(m);
  l->meta_keys = calloc(n ? (size_t)n : 1, sizeof(char *));
  l->meta_vals = calloc(n ? (size_t)n : 1, sizeof(char *));
  if (!l->meta_keys || !l->meta_vals) return trl_fail(TRL_ENOMEM, "safetensors: out of memory");
  const cJSON *v;
  cJSON_ArrayForEach(v, m) {
    if (!cJSON_IsString(v))
      return fail(s, "'__metadata__' value of '%s' is not a string", v->string);
    int i = l->n_meta;
    l->meta_keys[i] = dupstr(v->string);
    l->meta_vals[i] = dupstr(v->valuestring);
    l->n_meta++;                               // counted now so that free() sees both
    if (!l->meta_keys[i] || !l->meta_vals[i])
      return trl_fail(TRL_ENOMEM, "safetensors: out of memory");
  }
  return TRL_OK;
}

static trl_status rd_tensor (Src *s, uint64_t base, const Entry *e, trl_tensor **out) {
  TRL_TRY(trl_tensor_empty(out, trl_raw_dtype(e->raw), e->ndim, e->shape));
  unsigned char *dst = trl_data(*out);
  size_t es = trl_raw_size(e->raw), ds = trl_dtype_size((*out)->dtype);
  uint64_t n = (e->end - e->begin) / es;
  trl_status st = TRL_OK;
  if (e->raw == TRL_RAW_F32 || e->raw == TRL_RAW_I64 || e->raw == TRL_RAW_U8 ||
      e->raw == TRL_RAW_U64)                   // already in the trl layout
    st = read_at(s, base + e->begin, dst, n * es);
  else {
    unsigned char tmp[CHUNK];
    for (uint64_t done = 0; done < n && st == TRL_OK; ) {
      size_t k = (size_t)(n - done < CHUNK / es ? n - done : CHUNK / es);
      st = read_at(s, base + e->begin + done * es, tmp, k * es);
      if (st == TRL_OK) trl_raw_convert(dst + done * ds, tmp, e->raw, k);
      done += k;
    }
  }
  if (st != TRL_OK) { trl_tensor_release(*out); *out = NULL; }
  return st;
}

static trl_status parse (Src *s, trl_ndlist *l) {
  unsigned char b8[8];
  if (s->size < 8) return fail(s, "truncated: %llu bytes, the header length alone takes 8",
                               (unsigned long long)s->size);
  TRL_TRY(read_at(s, 0, b8, 8));
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = hl << 8 | b8[i];
  if (hl > TRL_SAFETENSORS_MAX_HEADER)
    return fail(s, "header length %llu is over the limit of %u bytes", (unsigned long long)hl,
                TRL_SAFETENSORS_MAX_HEADER);
  if (hl > s->size - 8)
    return fail(s, "truncated: header length %llu but only %llu bytes follow",
                (unsigned long long)hl, (unsigned long long)(s->size - 8));
  char *text = malloc(hl + 1);
  if (text == NULL) return trl_fail(TRL_ENOMEM, "safetensors: %s: out of memory", s->what);
  trl_status st = read_at(s, 8, text, hl);
  if (st != TRL_OK) { free(text); return st; }
  text[hl] = '\0';
  cJSON *root = hl > 0 && text[0] == '{' ? cJSON_ParseWithLength(text, hl) : NULL;
  free(text);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return fail(s, "the %llu-byte header is not a JSON object", (unsigned long long)hl);
  }
  int n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, root) n++;
  Entry *en = calloc(n ? (size_t)n : 1, sizeof *en);
  if (en == NULL) { cJSON_Delete(root); return trl_fail(TRL_ENOMEM, "safetensors: out of memory"); }
  int k = 0;
  cJSON_ArrayForEach(e, root) {
    if (e->string == NULL) { st = fail(s, "header object without a key"); break; }
    if (strcmp(e->string, "__metadata__") == 0) {
      if (l->meta_keys) { st = fail(s, "'__metadata__' appears twice"); break; }
      st = take_metadata(s, e, l);
    } else {
      st = parse_entry(s, e, &en[k]);
      en[k].order = k;
      k++;
    }
    if (st != TRL_OK) break;
  }
  uint64_t base = 8 + hl, dlen = s->size - base;
  if (st == TRL_OK) {                          // offsets must tile [0, dlen) exactly
    qsort(en, (size_t)k, sizeof *en, cmp_entry);
    uint64_t at = 0;
    for (int i = 0; i < k && st == TRL_OK; i++) {
      if (en[i].begin != at)
        st = fail(s, "tensor '%s' starts at data byte %llu, expected %llu (%s)", en[i].name,
                  (unsigned long long)en[i].begin, (unsigned long long)at,
                  en[i].begin < at ? "overlap" : "gap");
      at = en[i].end;
    }
    if (st == TRL_OK && at != dlen)
      st = fail(s, "tensors cover %llu data bytes but %llu follow the header",
                (unsigned long long)at, (unsigned long long)dlen);
  }
  if (st == TRL_OK) {
    l->names = calloc(k ? (size_t)k : 1, sizeof *l->names);
    l->arrays = calloc(k ? (size_t)k : 1, sizeof *l->arrays);
    if (!l->names || !l->arrays) st = trl_fail(TRL_ENOMEM, "safetensors: out of memory");
    else l->n = k;
  }
  for (int i = 0; i < l->n && st == TRL_OK; i++)
    if ((l->names[i] = dupstr(en[i].name)) == NULL)
      st = trl_fail(TRL_ENOMEM, "safetensors: out of memory");
  if (st == TRL_OK) {
    char what[300];
    snprintf(what, sizeof what, "safetensors: %s", s->what);
    st = trl_names_check_unique(TRL_EFORMAT, what, l->n, l->names);
  }
  for (int i = 0; i < l->n && st == TRL_OK; i++)
    st = rd_tensor(s, base, &en[i], &l->arrays[i]);
  free(en);
  cJSON_Delete(root);
  return st;
}

trl_status trl_safetensors_load_mem (trl_ndlist *out, const char *what, const void *buf,
                                     size_t len) {
  Src s = {what, NULL, buf, len};
  memset(out, 0, sizeof *out);
  trl_status st = parse(&s, out);
  if (st != TRL_OK) trl_ndlist_free(out);
  return st;
}

trl_status trl_safetensors_load (trl_ndlist *out, const char *path) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (f == NULL) return trl_fail(TRL_EIO, "safetensors: %s: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    return trl_fail(TRL_EIO, "safetensors: %s: not a regular file", path);
  }
  Src s = {path, f, NULL, (uint64_t)sb.st_size};
  trl_status st = parse(&s, out);
  fclose(f);
  if (st != TRL_OK) trl_ndlist_free(out);
  return st;
}

/* }================================================================== */

/* {==================================================================
** Writer
** =================================================================== */

typedef struct { char *p; size_t n, cap; int oom; } Buf;

static void put (Buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = (b->n + n + 1) * 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) { b->oom = 1; return; }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

static void puts_ (Buf *b, const char *s) { put(b, s, strlen(s)); }

static void putjson (Buf *b, const char *s) {
  put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; put(b, esc, 2); }
    else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); put(b, esc, 6); }
    else put(b, s, 1);
  }
  put(b, "\"", 1);
}

// 1 if 's' is well-formed UTF-8 (JSON text must be).
static int utf8_ok (const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    int k = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 && *p >= 0xc2 ? 1 : (*p & 0xf0) == 0xe0 ? 2
          : (*p & 0xf8) == 0xf0 && *p <= 0xf4 ? 3 : -1;
    if (k < 0) return 0;
    for (int i = 1; i <= k; i++)
      if ((p[i] & 0xc0) != 0x80) return 0;
    p += k + 1;
  }
  return 1;
}

typedef struct {
  const char *path;
  int n;
  trl_tensor *const *arrays;
  const Buf *header;
} SaveArgs;

static trl_status fill (FILE *f, void *ud) {
  SaveArgs *a = ud;
  unsigned char b8[8];
  for (int i = 0; i < 8; i++) b8[i] = (unsigned char)((uint64_t)a->header->n >> 8 * i);
  fwrite(b8, 1, 8, f);
  fwrite(a->header->p, 1, a->header->n, f);
  for (int i = 0; i < a->n; i++) {
    trl_tensor *t;
    TRL_TRY(trl_tensor_contiguous(&t, a->arrays[i]));
    size_t nb = (size_t)trl_numel(t) * trl_dtype_size(t->dtype);
    if (nb > 0) fwrite(trl_data(t), 1, nb, f);
    trl_tensor_release(t);
    if (ferror(f))
      return trl_fail(TRL_EIO, "save_safetensors: %s: write failed at tensor %d: %s", a->path,
                      i, strerror(errno));
  }
  return TRL_OK;
}

trl_status trl_safetensors_save (const char *path, int n, const char *const *names,
                                 trl_tensor *const *arrays, int n_meta,
                                 const char *const *meta_keys, const char *const *meta_vals) {
  static const char *const dname[TRL_NDTYPE] = {[TRL_F32] = "F32", [TRL_I64] = "I64",
                                                [TRL_U8] = "U8"};
  if (n < 0 || n_meta < 0 || (n > 0 && arrays == NULL) ||
      (n_meta > 0 && (meta_keys == NULL || meta_vals == NULL)))
    return trl_fail(TRL_EARG, "save_safetensors: %s: bad tensor or metadata count", path);
  if (n > 0 && names == NULL)
    return trl_fail(TRL_EARG, "save_safetensors: %s: every tensor needs a name", path);
  for (int i = 0; i < n; i++) {
    if (arrays[i] == NULL || names[i] == NULL)
      return trl_fail(TRL_EARG, "save_safetensors: %s: tensor or name %d is missing", path, i);
    if ((unsigned)arrays[i]->dtype >= TRL_NDTYPE)
      return trl_fail(TRL_ETYPE, "save_safetensors: %s: tensor %d has an unknown dtype", path, i);
    if (strcmp(names[i], "__metadata__") == 0 || !utf8_ok(names[i]))
      return trl_fail(TRL_EARG, "save_safetensors: %s: name %d ('%s') is reserved or not "
                      "UTF-8", path, i, names[i]);
  }
  for (int i = 0; i < n_meta; i++)
    if (!meta_keys[i] || !meta_vals[i] || !utf8_ok(meta_keys[i]) || !utf8_ok(meta_vals[i]))
      return trl_fail(TRL_EARG, "save_safetensors: %s: metadata entry %d is missing or not "
                      "UTF-8", path, i);
  char what[300];
  snprintf(what, sizeof what, "save_safetensors: %s", path);
  TRL_TRY(trl_names_check_unique(TRL_EARG, what, n, (char *const *)names));
  TRL_TRY(trl_names_check_unique(TRL_EARG, what, n_meta, (char *const *)meta_keys));

  Buf h = {0};
  char num[64];
  puts_(&h, "{");
  if (n_meta > 0) {
    puts_(&h, "\"__metadata__\":{");
    for (int i = 0; i < n_meta; i++) {
      if (i) puts_(&h, ",");
      putjson(&h, meta_keys[i]);
      puts_(&h, ":");
      putjson(&h, meta_vals[i]);
    }
    puts_(&h, "}");
  }
  uint64_t at = 0;
  for (int i = 0; i < n; i++) {
    const trl_tensor *t = arrays[i];
    uint64_t nb = (uint64_t)trl_numel(t) * trl_dtype_size(t->dtype);
    if (i || n_meta) puts_(&h, ",");
    putjson(&h, names[i]);
    puts_(&h, ":{\"dtype\":\"");
    puts_(&h, dname[t->dtype]);
    puts_(&h, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
      snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
      puts_(&h, num);
    }
    snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)at,
             (unsigned long long)(at + nb));
    puts_(&h, num);
    at += nb;
  }
  puts_(&h, "}");
  while (h.n % 8) puts_(&h, " ");              // data starts 8-byte aligned
  if (h.oom) {
    free(h.p);
    return trl_fail(TRL_ENOMEM, "save_safetensors: %s: out of memory", path);
  }
  SaveArgs a = {path, n, arrays, &h};
  trl_status st = trl_write_atomic(path, fill, &a);
  free(h.p);
  return st;
}

/* }================================================================== */
