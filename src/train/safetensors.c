/*
 * safetensors.c - a strict reader and an atomic writer for safetensors files.
 *
 * The header is parsed by a small JSON parser that accepts only what the format
 * needs: an object whose values are tensor objects (dtype string, shape and
 * data_offsets arrays of non-negative integers) or, once, "__metadata__" (an
 * object of string to string). Anything else is CLUNET_ERR_FORMAT.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/files.h"
#include "train/safetensors.h"

/* The reference implementation refuses headers above 100 MB; so do we. */
#define MAX_HEADER_BYTES (100u * 1000u * 1000u)

struct cn_st_file {
    char *path;
    FILE *fp;
    uint64_t data_start; /* 8 + header length */
    uint64_t data_bytes;
    cn_st_tensor *tensors;
    int n_tensors, cap_tensors;
    cn_st_meta *meta;
    int n_meta, cap_meta;
};

/* ------------------------------------------------------------------------
 * Strings shared by reader and writer
 * ---------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid. */
static size_t utf8_length(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef) len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) len = 4, cp = s[0] & 0x07;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static int utf8_valid(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_length((const unsigned char *)s + i, n - i);
        if (!len) return 0;
        i += len;
    }
    return 1;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that occurs twice in names (sorted in place), or NULL. */
static const char *find_duplicate(const char **names, int n)
{
    qsort(names, (size_t)n, sizeof *names, cmp_str_ptr);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

/* ------------------------------------------------------------------------
 * JSON header parser
 * ---------------------------------------------------------------------- */

typedef struct parser {
    const char *path;
    const unsigned char *s;
    size_t n, pos;
} parser;

static clunet_status bad(const parser *p, const char *what)
{
    return cn_fail(CLUNET_ERR_FORMAT, "%s: safetensors header: %s at byte %zu", p->path, what,
                   p->pos);
}

static void skip_ws(parser *p)
{
    while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                             p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

/* Skips whitespace and consumes c, or fails naming what was expected. */
static clunet_status expect(parser *p, char c, const char *what)
{
    skip_ws(p);
    if (p->pos >= p->n || p->s[p->pos] != (unsigned char)c) return bad(p, what);
    p->pos++;
    return CLUNET_OK;
}

/* After a value inside a container: 1 if a ',' was consumed, 0 if the closer was. */
static clunet_status next_or_close(parser *p, char close, int *more)
{
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == ',') {
        p->pos++;
        *more = 1;
        return CLUNET_OK;
    }
    if (p->pos < p->n && p->s[p->pos] == (unsigned char)close) {
        p->pos++;
        *more = 0;
        return CLUNET_OK;
    }
    return bad(p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
}

static int hex4(const unsigned char *s, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = s[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        *v = *v << 4 | (uint32_t)d;
    }
    return 1;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Parses a JSON string into a new NUL-terminated UTF-8 buffer (*out, caller frees). */
static clunet_status parse_string(parser *p, char **out)
{
    *out = NULL;
    CN_TRY(expect(p, '"', "expected a string"));
    /* Decoded text is never longer than its encoding, which lies inside the header. */
    size_t start = p->pos, end = start;
    while (end < p->n && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->n) return bad(p, "unterminated string");
    char *o = malloc(end - start + 1);
    if (!o) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of memory", p->path);
    size_t k = 0;
    while (p->pos < end) {
        unsigned char c = p->s[p->pos];
        if (c < 0x20) { free(o); return bad(p, "control character in string"); }
        if (c != '\\') {
            size_t len = utf8_length(p->s + p->pos, end - p->pos);
            if (!len) { free(o); return bad(p, "invalid UTF-8 in string"); }
            memcpy(o + k, p->s + p->pos, len);
            k += len;
            p->pos += len;
            continue;
        }
        c = p->s[p->pos + 1];
        p->pos += 2;
        const char *simple = strchr("\"\\/bfnrt", c);
        if (c && simple) {
            o[k++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            continue;
        }
        uint32_t cp, lo;
        if (c != 'u' || p->pos + 4 > end || !hex4(p->s + p->pos, &cp)) {
            free(o);
            return bad(p, "bad escape in string");
        }
        p->pos += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) { /* a surrogate pair encodes one code point */
            if (p->pos + 6 > end || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                !hex4(p->s + p->pos + 2, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                free(o);
                return bad(p, "unpaired surrogate in string");
            }
            p->pos += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            free(o);
            return bad(p, "unpaired surrogate in string");
        }
        if (cp == 0) { free(o); return bad(p, "NUL character in string"); }
        k += put_utf8(o + k, cp);
    }
    p->pos = end + 1;
    o[k] = '\0';
    *out = o;
    return CLUNET_OK;
}

/* A non-negative JSON integer that fits in 64 bits: no sign, fraction or exponent. */
static clunet_status parse_uint(parser *p, uint64_t *v)
{
    skip_ws(p);
    size_t start = p->pos;
    *v = 0;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        unsigned d = p->s[p->pos] - '0';
        if (*v > (UINT64_MAX - d) / 10) return bad(p, "integer too large");
        *v = *v * 10 + d;
        p->pos++;
    }
    if (p->pos == start) return bad(p, "expected a non-negative integer");
    if (p->pos - start > 1 && p->s[start] == '0') return bad(p, "integer with a leading zero");
    if (p->pos < p->n && strchr(".eE", p->s[p->pos])) return bad(p, "expected an integer");
    return CLUNET_OK;
}

/* An array of at most max integers; *count gets how many. */
static clunet_status parse_uint_array(parser *p, uint64_t *vals, int max, int *count)
{
    int more = 1;
    *count = 0;
    CN_TRY(expect(p, '[', "expected '['"));
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == ']') {
        p->pos++;
        return CLUNET_OK;
    }
    while (more) {
        if (*count == max) return bad(p, "array too long");
        CN_TRY(parse_uint(p, &vals[(*count)++]));
        CN_TRY(next_or_close(p, ']', &more));
    }
    return CLUNET_OK;
}

/* dtypes of the format that clunet does not read: valid files, but unsupported. */
static int known_dtype(const char *d)
{
    static const char *const names[] = {"F64", "F16", "BF16", "I64", "I32", "I16", "I8",
                                        "U64", "U32", "U16", "U8", "BOOL", "F8_E4M3",
                                        "F8_E5M2"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(d, names[i]) == 0) return 1;
    return 0;
}

/* The object describing tensor t (its name is already set). */
static clunet_status parse_tensor(parser *p, cn_st_tensor *t)
{
    int have_dtype = 0, have_shape = 0, have_offsets = 0, more = 1;
    CN_TRY(expect(p, '{', "expected '{' for a tensor"));
    while (more) {
        char *key;
        clunet_status st = CLUNET_OK;
        CN_TRY(parse_string(p, &key));
        if ((st = expect(p, ':', "expected ':'")) != CLUNET_OK) {
            free(key);
            return st;
        }
        if (strcmp(key, "dtype") == 0 && !have_dtype) {
            char *dtype;
            have_dtype = 1;
            if ((st = parse_string(p, &dtype)) == CLUNET_OK) {
                if (strcmp(dtype, "F32") != 0)
                    st = known_dtype(dtype)
                             ? cn_fail(CLUNET_ERR_UNSUPPORTED,
                                       "%s: tensor %s has dtype %s; clunet reads F32 only",
                                       p->path, t->name, dtype)
                             : bad(p, "unknown dtype");
                free(dtype);
            }
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            uint64_t dims[CN_ST_MAX_DIMS];
            have_shape = 1;
            st = parse_uint_array(p, dims, CN_ST_MAX_DIMS, &t->ndim);
            t->count = 1;
            for (int i = 0; st == CLUNET_OK && i < t->ndim; i++) {
                /* The count must fit in size_t and its byte size in uint64. */
                if (dims[i] > INT64_MAX ||
                    (dims[i] && t->count > (SIZE_MAX / 4) / dims[i]))
                    st = bad(p, "shape too large");
                else {
                    t->shape[i] = (int64_t)dims[i];
                    t->count *= (size_t)dims[i];
                }
            }
        } else if (strcmp(key, "data_offsets") == 0 && !have_offsets) {
            uint64_t offs[2] = {0, 0};
            int n;
            have_offsets = 1;
            st = parse_uint_array(p, offs, 2, &n);
            if (st == CLUNET_OK && n != 2) st = bad(p, "data_offsets needs two integers");
            t->begin = offs[0];
            t->end = offs[1];
        } else {
            st = bad(p, "unexpected or repeated key in a tensor");
        }
        free(key);
        CN_TRY(st);
        CN_TRY(next_or_close(p, '}', &more));
    }
    if (!have_dtype || !have_shape || !have_offsets)
        return bad(p, "tensor lacks dtype, shape or data_offsets");
    return CLUNET_OK;
}

static clunet_status parse_metadata(parser *p, cn_st_file *f)
{
    int more = 1;
    CN_TRY(expect(p, '{', "expected '{' for __metadata__"));
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == '}') {
        p->pos++;
        return CLUNET_OK;
    }
    while (more) {
        char *key, *value;
        if (f->n_meta == f->cap_meta) {
            int cap = f->cap_meta ? 2 * f->cap_meta : 8;
            cn_st_meta *m = realloc(f->meta, (size_t)cap * sizeof *m);
            if (!m) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
            f->meta = m;
            f->cap_meta = cap;
        }
        CN_TRY(parse_string(p, &key));
        f->meta[f->n_meta].key = key;
        f->meta[f->n_meta].value = NULL;
        f->n_meta++; /* owned by f from here on, so close frees it on failure */
        CN_TRY(expect(p, ':', "expected ':'"));
        CN_TRY(parse_string(p, &value));
        f->meta[f->n_meta - 1].value = value;
        CN_TRY(next_or_close(p, '}', &more));
    }
    return CLUNET_OK;
}

static clunet_status parse_header(parser *p, cn_st_file *f)
{
    int more = 1, have_meta = 0;
    CN_TRY(expect(p, '{', "expected '{'"));
    skip_ws(p);
    if (p->pos < p->n && p->s[p->pos] == '}') {
        p->pos++;
        more = 0;
    }
    while (more) {
        char *name;
        CN_TRY(parse_string(p, &name));
        if (strcmp(name, "__metadata__") == 0) {
            free(name);
            if (have_meta) return bad(p, "__metadata__ given twice");
            have_meta = 1;
            CN_TRY(expect(p, ':', "expected ':'"));
            CN_TRY(parse_metadata(p, f));
        } else {
            if (f->n_tensors == f->cap_tensors) {
                int cap = f->cap_tensors ? 2 * f->cap_tensors : 64;
                cn_st_tensor *t = realloc(f->tensors, (size_t)cap * sizeof *t);
                if (!t) {
                    free(name);
                    return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
                }
                f->tensors = t;
                f->cap_tensors = cap;
            }
            cn_st_tensor *t = &f->tensors[f->n_tensors++];
            memset(t, 0, sizeof *t);
            t->name = name;
            CN_TRY(expect(p, ':', "expected ':'"));
            CN_TRY(parse_tensor(p, t));
        }
        CN_TRY(next_or_close(p, '}', &more));
    }
    /* Only the writer's space padding may follow. */
    skip_ws(p);
    if (p->pos != p->n) return bad(p, "trailing bytes after the header object");
    return CLUNET_OK;
}

/* ------------------------------------------------------------------------
 * Reader
 * ---------------------------------------------------------------------- */

static int cmp_begin(const void *a, const void *b)
{
    const cn_st_tensor *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Names unique, sizes matching shapes, and the tensors tiling the data exactly. */
static clunet_status check_layout(cn_st_file *f)
{
    int n = f->n_tensors > f->n_meta ? f->n_tensors : f->n_meta;
    const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!names) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    for (int i = 0; i < f->n_tensors; i++) names[i] = f->tensors[i].name;
    const char *dup = find_duplicate(names, f->n_tensors);
    if (dup) {
        clunet_status st = cn_fail(CLUNET_ERR_FORMAT, "%s: tensor %s appears twice", f->path, dup);
        free(names);
        return st;
    }
    for (int i = 0; i < f->n_meta; i++) names[i] = f->meta[i].key;
    dup = find_duplicate(names, f->n_meta);
    if (dup) {
        clunet_status st = cn_fail(CLUNET_ERR_FORMAT, "%s: metadata key %s appears twice",
                                   f->path, dup);
        free(names);
        return st;
    }
    free(names);

    if (f->n_tensors > 1) qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_begin);
    uint64_t pos = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const cn_st_tensor *t = &f->tensors[i];
        if (t->begin > t->end || t->end > f->data_bytes)
            return cn_fail(CLUNET_ERR_FORMAT,
                           "%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
                           "] outside the %" PRIu64 " data bytes",
                           f->path, t->name, t->begin, t->end, f->data_bytes);
        if (t->end - t->begin != (uint64_t)t->count * 4)
            return cn_fail(CLUNET_ERR_FORMAT,
                           "%s: tensor %s: %" PRIu64 " data bytes for %zu F32 values", f->path,
                           t->name, t->end - t->begin, t->count);
        if (t->begin != pos)
            return cn_fail(CLUNET_ERR_FORMAT, "%s: tensor %s: data %s the previous tensor",
                           f->path, t->name, t->begin < pos ? "overlaps" : "leaves a gap after");
        pos = t->end;
    }
    if (pos != f->data_bytes)
        return cn_fail(CLUNET_ERR_FORMAT, "%s: %" PRIu64 " bytes after the last tensor", f->path,
                       f->data_bytes - pos);
    return CLUNET_OK;
}

static clunet_status read_header(cn_st_file *f)
{
    struct stat sb;
    unsigned char len8[8];
    if (fstat(fileno(f->fp), &sb) != 0) return cn_fail(CLUNET_ERR_IO, "%s: cannot stat: %s", f->path, strerror(errno));
    uint64_t size = (uint64_t)sb.st_size;
    if (fread(len8, 1, 8, f->fp) != 8)
        return cn_fail(CLUNET_ERR_FORMAT, "%s: %" PRIu64 " bytes, too short for safetensors",
                       f->path, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
    if (size < 8 || n < 2 || n > MAX_HEADER_BYTES || n > size - 8)
        return cn_fail(CLUNET_ERR_FORMAT,
                       "%s: header length %" PRIu64 " does not fit a file of %" PRIu64 " bytes",
                       f->path, n, size);
    f->data_start = 8 + n;
    f->data_bytes = size - f->data_start;

    unsigned char *text = malloc((size_t)n);
    if (!text) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    if (fread(text, 1, (size_t)n, f->fp) != n) {
        free(text);
        return cn_fail(CLUNET_ERR_IO, "%s: read failed in the header", f->path);
    }
    parser p = {f->path, text, (size_t)n, 0};
    clunet_status st = parse_header(&p, f);
    free(text);
    CN_TRY(st);
    return check_layout(f);
}

clunet_status cn_st_open(const char *path, cn_st_file **file)
{
    *file = NULL;
    cn_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    clunet_status st = cn_open_read(path, &f->fp);
    if (st == CLUNET_OK) st = read_header(f);
    if (st != CLUNET_OK) {
        cn_st_close(f);
        return st;
    }
    *file = f;
    return CLUNET_OK;
}

void cn_st_close(cn_st_file *f)
{
    if (!f) return;
    if (f->fp) fclose(f->fp);
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free((char *)f->meta[i].key);
        free((char *)f->meta[i].value);
    }
    free(f->tensors);
    free(f->meta);
    free(f->path);
    free(f);
}

int cn_st_count(const cn_st_file *f) { return f->n_tensors; }

const cn_st_tensor *cn_st_tensor_at(const cn_st_file *f, int i)
{
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const cn_st_tensor *cn_st_find(const cn_st_file *f, const char *name)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

int cn_st_meta_count(const cn_st_file *f) { return f->n_meta; }

const cn_st_meta *cn_st_meta_at(const cn_st_file *f, int i)
{
    return i >= 0 && i < f->n_meta ? &f->meta[i] : NULL;
}

const char *cn_st_meta_get(const cn_st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

clunet_status cn_st_read(cn_st_file *f, const char *name, float *dst, size_t count)
{
    const cn_st_tensor *t = cn_st_find(f, name);
    if (!t) return cn_fail(CLUNET_ERR_FORMAT, "%s: no tensor named %s", f->path, name);
    if (count != t->count)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: tensor %s has %zu values, not %zu",
                       f->path, name, t->count, count);
    if (count == 0) return CLUNET_OK;
    /* The header check bounds begin by the file size, so the offset fits in off_t. */
    if (fseeko(f->fp, (off_t)(f->data_start + t->begin), SEEK_SET) != 0 ||
        fread(dst, sizeof(float), count, f->fp) != count)
        return cn_fail(CLUNET_ERR_IO, "%s: tensor %s: read failed (file changed?)", f->path,
                       name);
    return CLUNET_OK;
}

/* ------------------------------------------------------------------------
 * Writer
 * ---------------------------------------------------------------------- */

typedef struct strbuf {
    char *s;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n)
{
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *s2 = realloc(b->s, cap);
        if (!s2) {
            b->failed = 1;
            return;
        }
        b->s = s2;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(strbuf *b, uint64_t v)
{
    char tmp[24];
    sb_str(b, (snprintf(tmp, sizeof tmp, "%" PRIu64, v), tmp));
}

/* A JSON string literal; s is valid UTF-8 (checked by the caller). */
static void sb_json(strbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_str(b, esc);
        } else {
            sb_put(b, s, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static clunet_status check_entries(const char *path, const cn_st_entry *e, int n,
                                   const cn_st_meta *meta, int n_meta, uint64_t *counts)
{
    for (int i = 0; i < n; i++) {
        if (!e[i].name || !e[i].name[0] || strcmp(e[i].name, "__metadata__") == 0 ||
            !utf8_valid(e[i].name))
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: tensor %d has an invalid name",
                           path, i);
        if (e[i].ndim < 0 || e[i].ndim > CN_ST_MAX_DIMS || (e[i].ndim && !e[i].shape))
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: tensor %s: bad ndim %d", path,
                           e[i].name, e[i].ndim);
        uint64_t count = 1;
        for (int d = 0; d < e[i].ndim; d++) {
            int64_t dim = e[i].shape[d];
            if (dim < 0 || (dim && count > (SIZE_MAX / 4) / (uint64_t)dim))
                return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: tensor %s: bad shape", path,
                               e[i].name);
            count *= (uint64_t)dim;
        }
        if (count && !e[i].data)
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: tensor %s has no data", path,
                           e[i].name);
        counts[i] = count;
    }
    for (int i = 0; i < n_meta; i++)
        if (!meta[i].key || !meta[i].value || !utf8_valid(meta[i].key) ||
            !utf8_valid(meta[i].value))
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: metadata entry %d is invalid",
                           path, i);

    int most = n > n_meta ? n : n_meta;
    const char **names = malloc((size_t)(most ? most : 1) * sizeof *names);
    if (!names) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    for (int i = 0; i < n; i++) names[i] = e[i].name;
    const char *dup = find_duplicate(names, n);
    clunet_status st = CLUNET_OK;
    if (dup) st = cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: tensor %s given twice", path, dup);
    for (int i = 0; i < n_meta; i++) names[i] = meta[i].key;
    if (st == CLUNET_OK && (dup = find_duplicate(names, n_meta)))
        st = cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: metadata key %s given twice", path, dup);
    free(names);
    return st;
}

static clunet_status build_header(const char *path, const cn_st_entry *e, int n,
                                  const cn_st_meta *meta, int n_meta, const uint64_t *counts,
                                  strbuf *b)
{
    sb_put(b, "{", 1);
    if (n_meta) {
        sb_str(b, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_put(b, ",", 1);
            sb_json(b, meta[i].key);
            sb_put(b, ":", 1);
            sb_json(b, meta[i].value);
        }
        sb_put(b, "}", 1);
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        if (i || n_meta) sb_put(b, ",", 1);
        sb_json(b, e[i].name);
        sb_str(b, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < e[i].ndim; d++) {
            if (d) sb_put(b, ",", 1);
            sb_u64(b, (uint64_t)e[i].shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, offset);
        sb_put(b, ",", 1);
        offset += counts[i] * 4;
        sb_u64(b, offset);
        sb_str(b, "]}");
    }
    sb_put(b, "}", 1);
    while (b->len % 8) sb_put(b, " ", 1); /* pad like the reference writer */
    if (b->failed) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    if (b->len > MAX_HEADER_BYTES)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: header of %zu bytes is too large",
                       path, b->len);
    return CLUNET_OK;
}

/* Makes the rename durable; the directory is that of path. */
static clunet_status sync_directory(const char *path)
{
    char *dir = strdup(path);
    if (!dir) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) slash[1] = '\0';
    else *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    int ok = fd >= 0 && (fsync(fd) == 0 || errno == EINVAL); /* some filesystems refuse */
    int err = errno;
    if (fd >= 0) close(fd);
    clunet_status st = ok ? CLUNET_OK
                          : cn_fail(CLUNET_ERR_IO, "%s: written, but syncing directory %s failed: %s",
                                    path, dir, strerror(err));
    free(dir);
    return st;
}

/* Writes length, header and data to a temp file beside path (so that rename cannot
 * cross filesystems), syncs it and renames it over path. */
static clunet_status replace_file(const char *path, const strbuf *header,
                                  const cn_st_entry *entries, int n_entries,
                                  const uint64_t *counts)
{
    size_t size = strlen(path) + sizeof ".tmp-XXXXXX";
    char *tmp = malloc(size);
    if (!tmp) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    snprintf(tmp, size, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    FILE *fp = NULL;
    if (fd < 0 || fchmod(fd, 0644) != 0 || !(fp = fdopen(fd, "wb"))) {
        clunet_status st = cn_fail(CLUNET_ERR_IO, "%s: cannot create a temp file: %s", path,
                                   strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(tmp);
        return st;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)header->len >> (8 * i));
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(header->s, 1, header->len, fp) == header->len;
    for (int i = 0; ok && i < n_entries; i++)
        if (counts[i])
            ok = fwrite(entries[i].data, sizeof(float), (size_t)counts[i], fp) == counts[i];
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int err = errno;
    ok = fclose(fp) == 0 && ok;
    if (ok && rename(tmp, path) != 0) ok = 0, err = errno;
    clunet_status st = CLUNET_OK;
    if (!ok) {
        st = cn_fail(CLUNET_ERR_IO, "%s: write failed: %s", path, strerror(err));
        unlink(tmp);
    }
    free(tmp);
    return st != CLUNET_OK ? st : sync_directory(path);
}

clunet_status cn_st_write(const char *path, const cn_st_entry *entries, int n_entries,
                          const cn_st_meta *meta, int n_meta)
{
    if (!path || n_entries < 0 || n_meta < 0 || (n_entries && !entries) || (n_meta && !meta))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "safetensors write: bad arguments");
    uint64_t *counts = malloc((size_t)(n_entries ? n_entries : 1) * sizeof *counts);
    if (!counts) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    strbuf header = {0};
    clunet_status st = check_entries(path, entries, n_entries, meta, n_meta, counts);
    if (st == CLUNET_OK)
        st = build_header(path, entries, n_entries, meta, n_meta, counts, &header);
    if (st == CLUNET_OK) st = replace_file(path, &header, entries, n_entries, counts);
    free(counts);
    free(header.s);
    return st;
}
