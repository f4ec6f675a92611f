/*
 * test-safetensors.c - the safetensors reader and writer: round trips, atomic
 * replacement, a corpus of corrupt files that must all be refused cleanly, and
 * interop with tools/torch_reference.py (skipped when torch is not importable).
 *
 * usage: test-safetensors [PYTHON TORCH_REFERENCE_PY]
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clunet.h"
#include "train/safetensors.h"

static char dir[256];

#include "check.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static float rand_float(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 8.0 - 4.0);
}

static char *in_dir(const char *name)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    return p;
}

static void write_bytes(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
        printf("cannot write %s\n", path);
        exit(1);
    }
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    *n = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)size + 1);
    if (buf && fread(buf, 1, (size_t)size, f) == (size_t)size) *n = (size_t)size;
    fclose(f);
    return buf;
}

/* Files in the test directory whose name contains ".tmp-" (left-over temp files). */
static int temp_files(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".tmp-") != NULL;
    if (d) closedir(d);
    return n;
}

/* Opens path and reads every tensor; returns the first failing status. */
static clunet_status open_and_read(const char *path)
{
    cn_st_file *f;
    clunet_status st = cn_st_open(path, &f);
    if (st != CLUNET_OK) return st;
    for (int i = 0; st == CLUNET_OK && i < cn_st_count(f); i++) {
        const cn_st_tensor *t = cn_st_tensor_at(f, i);
        float *buf = malloc(t->count ? t->count * sizeof(float) : 1);
        st = buf ? cn_st_read(f, t->name, buf, t->count) : CLUNET_ERR_OUT_OF_MEMORY;
        free(buf);
    }
    cn_st_close(f);
    return st;
}

/* A rejection must be FORMAT (or UNSUPPORTED) with a one-line message naming the file. */
static int rejected_cleanly(clunet_status st, const char *path)
{
    const char *msg = clunet_last_error();
    return (st == CLUNET_ERR_FORMAT || st == CLUNET_ERR_UNSUPPORTED) && strstr(msg, path) &&
           !strchr(msg, '\n');
}

/* A file made of an 8-byte length, header text and data_len bytes of data. */
static void make_file(const char *path, uint64_t length, const char *header, size_t data_len)
{
    size_t h = strlen(header), n = 8 + h + data_len;
    unsigned char *buf = malloc(n);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(length >> (8 * i));
    memcpy(buf + 8, header, h);
    for (size_t i = 0; i < data_len; i++) buf[8 + h + i] = (unsigned char)(i * 37 + 11);
    write_bytes(path, buf, n);
    free(buf);
}

/* ------------------------------------------------------------------------
 * Round trip and writer behaviour
 * ---------------------------------------------------------------------- */

enum { NA = 3 * 4 * 5, NB = 1 };
static float data_a[NA], data_b[NB];
static const int64_t shape_a[] = {3, 4, 5}, shape_empty[] = {0, 7};
static const char *unicode_name = "unicode \xe2\x9c\x93 \"quoted\" back\\slash\ttab";

static void fill_entries(cn_st_entry *e)
{
    for (int i = 0; i < NA; i++) data_a[i] = rand_float();
    data_a[0] = -0.0f;
    data_a[1] = 1e-40f; /* subnormal */
    data_a[2] = 3.0e38f;
    data_b[0] = rand_float();
    e[0] = (cn_st_entry){"a.weight", 3, shape_a, data_a};
    e[1] = (cn_st_entry){"scalar", 0, NULL, data_b};
    e[2] = (cn_st_entry){"empty", 2, shape_empty, NULL};
    e[3] = (cn_st_entry){unicode_name, 1, shape_a + 2, data_a + 7};
}

static const cn_st_meta meta[] = {
    {"config", "{\"bn_eps\": 1e-05, \"name\": \"x\\\\y\"}"},
    {"\xc3\xbc" "ber", "line1\nline2\x01"},
    {"empty", ""},
};

static void test_round_trip(void)
{
    cn_st_entry e[4];
    fill_entries(e);
    const char *path = in_dir("round.safetensors");
    CHECK(cn_st_write(path, e, 4, meta, 3) == CLUNET_OK, "write");
    CHECK(temp_files() == 0, "no temp file left after a write");

    size_t n;
    unsigned char *bytes = read_bytes(path, &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | bytes[i];
    CHECK(hlen % 8 == 0 && n == 8 + hlen + (NA + NB + 5) * 4, "header padded, size %zu", n);
    free(bytes);

    cn_st_file *f;
    CHECK(cn_st_open(path, &f) == CLUNET_OK, "open");
    if (!f) return;
    CHECK(cn_st_count(f) == 4, "4 tensors, got %d", cn_st_count(f));
    for (int i = 0; i < 4 && i < cn_st_count(f); i++) {
        const cn_st_tensor *t = cn_st_tensor_at(f, i);
        CHECK(strcmp(t->name, e[i].name) == 0, "tensor %d in write order: %s", i, t->name);
        CHECK(t->ndim == e[i].ndim, "%s ndim", t->name);
        for (int d = 0; d < t->ndim && d < e[i].ndim; d++)
            CHECK(t->shape[d] == e[i].shape[d], "%s dim %d", t->name, d);
        float out[NA + 1];
        for (size_t k = 0; k < NA + 1; k++) out[k] = NAN; /* poison */
        CHECK(cn_st_read(f, t->name, out, t->count) == CLUNET_OK, "read %s", t->name);
        CHECK(t->count == 0 || memcmp(out, e[i].data, t->count * sizeof(float)) == 0,
              "%s bit-exact", t->name);
        CHECK(isnan(out[t->count]), "%s read no more than its values", t->name);
    }
    CHECK(cn_st_meta_count(f) == 3, "3 metadata keys");
    for (int i = 0; i < 3; i++) {
        const char *v = cn_st_meta_get(f, meta[i].key);
        const cn_st_meta *m = cn_st_meta_at(f, i);
        CHECK(v && strcmp(v, meta[i].value) == 0, "metadata %s", meta[i].key);
        CHECK(m && strcmp(m->key, meta[i].key) == 0, "metadata %d in write order", i);
    }
    CHECK(!cn_st_meta_at(f, 3) && !cn_st_tensor_at(f, -1), "out-of-range indices give NULL");
    CHECK(cn_st_meta_get(f, "nope") == NULL, "absent metadata key");
    float x[NA];
    CHECK(cn_st_read(f, "nope", x, 1) == CLUNET_ERR_FORMAT, "absent tensor refused");
    CHECK(cn_st_read(f, "a.weight", x, NA - 1) == CLUNET_ERR_INVALID_ARGUMENT,
          "wrong count refused");
    cn_st_close(f);

    /* Replacing an existing file, and the header-only file. */
    data_a[5] = 42.0f;
    CHECK(cn_st_write(path, e, 1, NULL, 0) == CLUNET_OK, "overwrite");
    CHECK(cn_st_open(path, &f) == CLUNET_OK && cn_st_count(f) == 1 && cn_st_meta_count(f) == 0,
          "overwritten file has the new content");
    if (f) {
        CHECK(cn_st_read(f, "a.weight", x, NA) == CLUNET_OK && x[5] == 42.0f, "new values");
        cn_st_close(f);
    }
    const char *none = in_dir("none.safetensors");
    CHECK(cn_st_write(none, NULL, 0, NULL, 0) == CLUNET_OK && open_and_read(none) == CLUNET_OK,
          "a file with no tensors");
}

static void test_writer_failures(void)
{
    cn_st_entry e[4];
    fill_entries(e);
    const char *path = in_dir("keep.safetensors");
    CHECK(cn_st_write(path, e, 2, meta, 1) == CLUNET_OK, "write the file to keep");
    size_t n0, n1;
    unsigned char *before = read_bytes(path, &n0);

    cn_st_entry bad[2] = {e[0], e[0]};
    CHECK(cn_st_write(path, bad, 2, NULL, 0) == CLUNET_ERR_INVALID_ARGUMENT, "duplicate names");
    bad[1].name = "__metadata__";
    CHECK(cn_st_write(path, bad, 2, NULL, 0) == CLUNET_ERR_INVALID_ARGUMENT, "reserved name");
    bad[1].name = "bad\xff";
    CHECK(cn_st_write(path, bad, 2, NULL, 0) == CLUNET_ERR_INVALID_ARGUMENT, "invalid UTF-8");
    int64_t neg[] = {2, -1};
    bad[1] = (cn_st_entry){"neg", 2, neg, data_a};
    CHECK(cn_st_write(path, bad, 2, NULL, 0) == CLUNET_ERR_INVALID_ARGUMENT, "negative dim");
    bad[1] = (cn_st_entry){"nodata", 3, shape_a, NULL};
    CHECK(cn_st_write(path, bad, 2, NULL, 0) == CLUNET_ERR_INVALID_ARGUMENT, "no data");
    cn_st_meta twice[2] = {meta[0], meta[0]};
    CHECK(cn_st_write(path, e, 1, twice, 2) == CLUNET_ERR_INVALID_ARGUMENT, "duplicate keys");

    /* rename onto a directory fails after the temp file was written. */
    const char *sub = in_dir("subdir");
    mkdir(sub, 0755);
    CHECK(cn_st_write(sub, e, 2, NULL, 0) == CLUNET_ERR_IO, "rename failure reported");
    struct stat sb;
    CHECK(stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode), "target left as it was");
    CHECK(cn_st_write(in_dir("no/such/dir.safetensors"), e, 1, NULL, 0) == CLUNET_ERR_IO,
          "missing directory");
    CHECK(temp_files() == 0, "failed writes leave no temp file");

    unsigned char *after = read_bytes(path, &n1);
    CHECK(n0 == n1 && memcmp(before, after, n0) == 0, "failed writes left the old file intact");
    free(before);
    free(after);
    rmdir(sub);
}

/* ------------------------------------------------------------------------
 * Corrupt corpus
 * ---------------------------------------------------------------------- */

static void test_truncations_and_flips(void)
{
    cn_st_entry e[4];
    fill_entries(e);
    const char *good = in_dir("good.safetensors"), *bad = in_dir("bad.safetensors");
    CHECK(cn_st_write(good, e, 4, meta, 3) == CLUNET_OK, "write");
    size_t n;
    unsigned char *bytes = read_bytes(good, &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | bytes[i];

    int bad_truncations = 0;
    for (size_t len = 0; len < n; len++) {
        write_bytes(bad, bytes, len);
        bad_truncations += !rejected_cleanly(open_and_read(bad), bad);
    }
    CHECK(bad_truncations == 0, "%d of %zu truncations not rejected cleanly", bad_truncations, n);

    /* A flipped header bit may yield another valid file (a changed name), never a crash. */
    int unclean = 0, rejected = 0;
    for (size_t i = 0; i < 8 + hlen; i++) {
        for (int b = 0; b < 8; b++) {
            bytes[i] ^= (unsigned char)(1u << b);
            write_bytes(bad, bytes, n);
            clunet_status st = open_and_read(bad);
            rejected += st != CLUNET_OK;
            unclean += st != CLUNET_OK && !rejected_cleanly(st, bad);
            bytes[i] ^= (unsigned char)(1u << b);
        }
    }
    CHECK(unclean == 0, "%d header bit flips failed with a wrong status or message", unclean);
    CHECK(rejected > (int)(8 + hlen) * 4, "most header bit flips rejected (%d of %d)", rejected,
          (int)(8 + hlen) * 8);

    const uint64_t lies[] = {0, 1, n - 8 + 1, n, (uint64_t)1 << 63, UINT64_MAX, 100000008};
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        for (int k = 0; k < 8; k++) bytes[k] = (unsigned char)(lies[i] >> (8 * k));
        write_bytes(bad, bytes, n);
        CHECK(rejected_cleanly(open_and_read(bad), bad), "header length %llu",
              (unsigned long long)lies[i]);
    }
    free(bytes);
}

#define T1 "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"

static const struct {
    const char *header;
    size_t data;
    clunet_status want;
    const char *what;
} cases[] = {
    /* positive controls: these must be accepted */
    {"{\"a\":" T1 "}   ", 4, CLUNET_OK, "valid, padded"},
    {" {\"a\" : " T1 " }\n", 4, CLUNET_OK, "whitespace"},
    {"{}", 0, CLUNET_OK, "empty header"},
    {"{\"__metadata__\":{}}", 0, CLUNET_OK, "empty metadata"},
    {"{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, CLUNET_OK, "scalar"},
    {"{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}}", 0, CLUNET_OK, "empty"},
    {"{\"\\u00fc\\ud83d\\ude00\":" T1 "}", 4, CLUNET_OK, "escaped name"},
    {"{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},\"a\":" T1 "}", 8, CLUNET_OK,
     "tensors out of header order"},
    /* malformed */
    {"", 0, CLUNET_ERR_FORMAT, "empty text"},
    {"  ", 0, CLUNET_ERR_FORMAT, "only spaces"},
    {"{", 0, CLUNET_ERR_FORMAT, "open brace"},
    {"[]", 0, CLUNET_ERR_FORMAT, "array"},
    {"\"x\"", 0, CLUNET_ERR_FORMAT, "string"},
    {"{\"a\":" T1, 4, CLUNET_ERR_FORMAT, "unclosed"},
    {"{\"a\":" T1 "}x", 4, CLUNET_ERR_FORMAT, "trailing garbage"},
    {"{\"a\":" T1 "}{}", 4, CLUNET_ERR_FORMAT, "two objects"},
    {"{\"a\":" T1 ",}", 4, CLUNET_ERR_FORMAT, "trailing comma"},
    {"{\"a\":" T1 ",\"a\":" T1 "}", 4, CLUNET_ERR_FORMAT, "duplicate tensor"},
    {"{\"a\" " T1 "}", 4, CLUNET_ERR_FORMAT, "missing colon"},
    {"{a:" T1 "}", 4, CLUNET_ERR_FORMAT, "unquoted key"},
    {"{\"a\":null}", 0, CLUNET_ERR_FORMAT, "null tensor"},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CLUNET_ERR_FORMAT, "no dtype"},
    {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, CLUNET_ERR_FORMAT, "no shape"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, CLUNET_ERR_FORMAT, "no offsets"},
    {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     CLUNET_ERR_FORMAT, "repeated key"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
     CLUNET_ERR_FORMAT, "extra key"},
    {"{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
     CLUNET_ERR_UNSUPPORTED, "F16"},
    {"{\"a\":{\"dtype\":\"X32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CLUNET_ERR_FORMAT,
     "unknown dtype"},
    {"{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CLUNET_ERR_FORMAT,
     "dtype a number"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, CLUNET_ERR_FORMAT,
     "negative dim"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, CLUNET_ERR_FORMAT,
     "fraction"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4, CLUNET_ERR_FORMAT,
     "exponent"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, CLUNET_ERR_FORMAT,
     "leading zero"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]}}", 4, CLUNET_ERR_FORMAT,
     "comma in array"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 4,
     CLUNET_ERR_FORMAT, "integer overflow"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,0]}}", 0,
     CLUNET_ERR_FORMAT, "shape product overflow"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
     CLUNET_ERR_FORMAT, "nine dims"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, CLUNET_ERR_FORMAT,
     "three offsets"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, CLUNET_ERR_FORMAT,
     "one offset"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, CLUNET_ERR_FORMAT,
     "begin after end"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 3, CLUNET_ERR_FORMAT,
     "end past the data"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, CLUNET_ERR_FORMAT,
     "size does not match shape"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, CLUNET_ERR_FORMAT,
     "overlap"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, CLUNET_ERR_FORMAT,
     "gap"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CLUNET_ERR_FORMAT,
     "same range twice"},
    {"{\"a\":" T1 "}", 8, CLUNET_ERR_FORMAT, "bytes after the last tensor"},
    {"{\"__metadata__\":{\"k\":1}}", 0, CLUNET_ERR_FORMAT, "metadata value a number"},
    {"{\"__metadata__\":{\"k\":{}}}", 0, CLUNET_ERR_FORMAT, "nested metadata"},
    {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, CLUNET_ERR_FORMAT, "duplicate meta"},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, CLUNET_ERR_FORMAT, "two metadata"},
    {"{\"__metadata__\":[]}", 0, CLUNET_ERR_FORMAT, "metadata array"},
    {"{\"a\tb\":" T1 "}", 4, CLUNET_ERR_FORMAT, "raw control character"},
    {"{\"a\\x\":" T1 "}", 4, CLUNET_ERR_FORMAT, "bad escape"},
    {"{\"a\\u12\":" T1 "}", 4, CLUNET_ERR_FORMAT, "short \\u"},
    {"{\"a\\ud800\":" T1 "}", 4, CLUNET_ERR_FORMAT, "lone high surrogate"},
    {"{\"a\\udc00\":" T1 "}", 4, CLUNET_ERR_FORMAT, "lone low surrogate"},
    {"{\"a\\u0000\":" T1 "}", 4, CLUNET_ERR_FORMAT, "escaped NUL"},
    {"{\"a\xff\":" T1 "}", 4, CLUNET_ERR_FORMAT, "invalid UTF-8"},
    {"{\"a\xc0\xaf\":" T1 "}", 4, CLUNET_ERR_FORMAT, "overlong UTF-8"},
    {"{\"a\xed\xa0\x80\":" T1 "}", 4, CLUNET_ERR_FORMAT, "UTF-8 surrogate"},
    {"{\"a\\", 0, CLUNET_ERR_FORMAT, "backslash at the end"},
    {"{\"a", 0, CLUNET_ERR_FORMAT, "unterminated string"},
};

static void test_handcrafted(void)
{
    const char *path = in_dir("case.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        make_file(path, strlen(cases[i].header), cases[i].header, cases[i].data);
        clunet_status st = open_and_read(path);
        if (cases[i].want == CLUNET_OK)
            CHECK(st == CLUNET_OK, "%s: accepted", cases[i].what);
        else
            CHECK(st == cases[i].want && rejected_cleanly(st, path), "%s: rejected (%d)",
                  cases[i].what, (int)st);
    }
    /* A NUL byte inside the header text. */
    static const char with_nul[] = "{\"a\0\":" T1 "}";
    unsigned char buf[8 + sizeof with_nul - 1 + 4] = {0};
    buf[0] = sizeof with_nul - 1;
    memcpy(buf + 8, with_nul, sizeof with_nul - 1);
    write_bytes(path, buf, sizeof buf);
    CHECK(rejected_cleanly(open_and_read(path), path), "NUL byte in the header");

    CHECK(open_and_read(in_dir("missing.safetensors")) == CLUNET_ERR_IO, "missing file");
    CHECK(open_and_read(dir) == CLUNET_ERR_IO, "a directory");
}

/* ------------------------------------------------------------------------
 * Interop with tools/torch_reference.py
 * ---------------------------------------------------------------------- */

static int run(const char *cmd)
{
    printf("$ %s\n", cmd);
    fflush(stdout);
    return system(cmd);
}

/* 0 when python has torch and torchvision, else says why not. */
static int torch_missing(const char *python)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch, torchvision' 2>/dev/null", python);
    if (system(cmd) == 0) return 0;
    printf("skip: %s cannot import torch and torchvision\n", python);
    return 1;
}

static void test_python(const char *python, const char *script)
{
    char cmd[2048];

    /* Python writes, C reads. */
    const char *w = in_dir("twin.safetensors");
    snprintf(cmd, sizeof cmd, "'%s' '%s' export --out '%s' --seed 2", python, script, w);
    CHECK(run(cmd) == 0, "export ran");
    cn_st_file *f;
    CHECK(cn_st_open(w, &f) == CLUNET_OK, "open the exported twin");
    if (f) {
        uint64_t trainable = 0;
        for (int i = 0; i < cn_st_count(f); i++) {
            const cn_st_tensor *t = cn_st_tensor_at(f, i);
            if (!strstr(t->name, "running_")) trainable += t->count;
        }
        CHECK(cn_st_count(f) == 361, "361 tensors, got %d", cn_st_count(f));
        CHECK(trainable == 10071501, "10,071,501 trainable values, got %llu",
              (unsigned long long)trainable);
        const cn_st_tensor *stem = cn_st_find(f, "encoder.0.0.weight");
        CHECK(stem && stem->ndim == 4 && stem->shape[0] == 32 && stem->shape[1] == 3 &&
                  stem->shape[2] == 3 && stem->shape[3] == 3,
              "encoder.0.0.weight is (32,3,3,3)");
        const cn_st_tensor *d0 = cn_st_find(f, "decoder.0.conv1.weight");
        CHECK(d0 && d0->ndim == 4 && d0->shape[0] == 256 && d0->shape[1] == 1952,
              "decoder.0.conv1.weight is (256,1952,3,3)");
        float var[1280], head[145];
        CHECK(cn_st_read(f, "encoder.8.1.running_var", var, 1280) == CLUNET_OK &&
                  var[0] == 1.0f && var[1279] == 1.0f,
              "encoder.8.1.running_var starts at 1");
        CHECK(cn_st_read(f, "head.weight", head, 144) == CLUNET_OK && head[0] != 0.0f &&
                  isfinite(head[143]),
              "head.weight is random and finite");
        const char *config = cn_st_meta_get(f, "config");
        CHECK(config && strstr(config, "\"bn_eps\": 1e-05"), "config records bn_eps: %s",
              config ? config : "(none)");
        CHECK(cn_st_meta_get(f, "input_mean") && cn_st_meta_get(f, "input_std"),
              "input_mean and input_std");
        cn_st_close(f);
    }

    /* C writes, Python reads and writes again, C checks every bit survived. */
    cn_st_entry e[4];
    fill_entries(e);
    const char *c = in_dir("from_c.safetensors"), *py = in_dir("from_py.safetensors");
    CHECK(cn_st_write(c, e, 4, meta, 3) == CLUNET_OK, "write for python");
    snprintf(cmd, sizeof cmd, "'%s' '%s' recode '%s' '%s'", python, script, c, py);
    CHECK(run(cmd) == 0, "python read the C file");
    CHECK(cn_st_open(py, &f) == CLUNET_OK, "open the python-written file");
    if (f) {
        CHECK(cn_st_count(f) == 4 && cn_st_meta_count(f) == 3, "same tensor and key counts");
        for (int i = 0; i < 4; i++) {
            const cn_st_tensor *t = cn_st_find(f, e[i].name);
            float out[NA];
            int same = t && t->ndim == e[i].ndim &&
                       cn_st_read(f, e[i].name, out, t->count) == CLUNET_OK &&
                       (t->count == 0 || memcmp(out, e[i].data, t->count * 4) == 0);
            for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == e[i].shape[d];
            CHECK(same, "tensor %s survived python", e[i].name);
        }
        for (int i = 0; i < 3; i++) {
            const char *v = cn_st_meta_get(f, meta[i].key);
            CHECK(v && strcmp(v, meta[i].value) == 0, "metadata %s survived python",
                  meta[i].key);
        }
        cn_st_close(f);
    }

    /* Python refuses what C refuses. */
    const char *bad = in_dir("overlap.safetensors");
    static const char overlap[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    make_file(bad, strlen(overlap), overlap, 12);
    snprintf(cmd, sizeof cmd, "'%s' '%s' recode '%s' '%s' 2>&1", python, script, bad, py);
    CHECK(run(cmd) != 0, "python refuses overlapping offsets");
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(in_dir(e->d_name));
    if (d) closedir(d);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/clunet-st-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        printf("cannot create a temp directory in %s\n", tmp && *tmp ? tmp : "/tmp");
        return 1;
    }
    /* --interop PYTHON SCRIPT: only the round trips through tools/torch_reference.py, skipped (77) without torch */
    if (argc == 4 && !strcmp(argv[1], "--interop")) {
        if (torch_missing(argv[2])) {
            remove_dir();
            return 77;
        }
        test_python(argv[2], argv[3]);
    } else {
        test_round_trip();
        test_writer_failures();
        test_truncations_and_flips();
        test_handcrafted();
    }
    remove_dir();
    return check_summary();
}
