/*
 * test-corrupt - feeds cn_image_load a corpus of broken files made from the
 * valid ones of gen.c: truncations at many lengths, bit flips, overwritten
 * bytes, random headers behind a valid magic, magics of the wrong format,
 * absurd declared sizes (with valid checksums where the format has them), a
 * gzip bomb, gzip in gzip and an empty file. Each load must either fail with
 * FORMAT, IO or UNSUPPORTED and a one-line message naming the file, or succeed
 * with a sane image; it runs in-process under an alarm, so a hang fails too.
 * Hand-made files that must not load are checked to fail.
 *
 *   test-corrupt [--seed N]          run the corpus (default seed 1)
 *   test-corrupt --write-seeds DIR   write the valid files as fuzzing seeds
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data/image.h"
#include "gen.h"

/* Seconds one load may take before it counts as a hang (sanitizers are slow). */
#define TIME_LIMIT 20

static char current[800];
static int counter, bad;
static int loaded_ok, failed[3]; /* FORMAT, IO, UNSUPPORTED */
static uint64_t rng = 1;

static uint32_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test-corrupt: TIMEOUT (hang) loading ";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    ignored = write(2, current, strlen(current));
    ignored = write(2, "\n", 1);
    (void)ignored;
    _exit(3);
}

static void report(const char *why)
{
    bad++;
    fprintf(stderr, "BAD %s: %s\n", current, why);
}

static void check_image(const cn_image *img)
{
    if (img->width < 1 || img->height < 1 || img->width > CN_IMAGE_MAX_SIDE ||
        img->height > CN_IMAGE_MAX_SIDE || (img->channels != 1 && img->channels != 3) ||
        img->bits < 1 || img->bits > 16 || !img->data) {
        report("loaded with insane dimensions");
        return;
    }
    size_t n = (size_t)img->width * img->height * img->channels;
    for (size_t i = 0; i < n; i++)
        if (!(img->data[i] >= 0.0f && img->data[i] <= 255.0f)) {
            report("loaded a sample outside 0-255");
            return;
        }
}

/* Writes the bytes under a name with a rotating (so often wrong) extension and loads them. */
static void try_load(const char *dir, const char *label, const uint8_t *d, size_t n,
                     int must_fail)
{
    static const char *ext[] = {".png", ".jpg", ".tif", ".gif", ".ppm", ".gz", ""};
    snprintf(current, sizeof current, "%s/%05d-%s%s", dir, counter, label,
             ext[counter % (int)(sizeof ext / sizeof ext[0])]);
    counter++;
    if (gen_write_file(current, d, n) != 0) {
        report("cannot write the file");
        return;
    }
    cn_image img;
    alarm(TIME_LIMIT);
    clunet_status st = cn_image_load(current, &img);
    alarm(0);
    const char *msg = clunet_last_error();
    if (st == CLUNET_OK) {
        loaded_ok++;
        check_image(&img);
        if (must_fail) report("loaded, but it must fail");
    } else if (st != CLUNET_ERR_FORMAT && st != CLUNET_ERR_IO && st != CLUNET_ERR_UNSUPPORTED) {
        fprintf(stderr, "  status %d: %s\n", (int)st, msg);
        report("failed with an unexpected status");
    } else {
        failed[st == CLUNET_ERR_FORMAT ? 0 : st == CLUNET_ERR_IO ? 1 : 2]++;
        if (!strstr(msg, current)) report("error message does not name the file");
        if (strchr(msg, '\n')) report("error message is not one line");
        if (img.data) report("image left allocated after a failure");
        if (must_fail) printf("  %s\n", msg); /* the hand-made cases' messages, for the log */
    }
    cn_image_free(&img);
    unlink(current);
}

/* ---------------------------------------------------------------------------
 * Mutations of valid files
 * ------------------------------------------------------------------------- */

static void mutate(const char *dir, const gen_case *k)
{
    size_t n = k->size;
    uint8_t *buf = malloc(n + 1);
    char label[128];
    if (!buf) exit(2);

    size_t lengths[128];
    int count = 0;
    for (size_t len = 0; len < n && len < 48; len++) lengths[count++] = len;
    for (int i = 1; i <= 40 && n > 48; i++) lengths[count++] = 48 + (n - 48) * (size_t)i / 41;
    for (size_t back = 1; back <= 3 && back < n; back++) lengths[count++] = n - back;
    for (int i = 0; i < count; i++) {
        snprintf(label, sizeof label, "%s-cut%zu", k->name, lengths[i]);
        try_load(dir, label, k->bytes, lengths[i], 0);
    }

    for (int v = 0; v < 40; v++) {
        memcpy(buf, k->bytes, n);
        int flips = 1 + (int)(next_random() % 3);
        for (int f = 0; f < flips; f++) {
            size_t span = v % 2 && n > 128 ? 128 : n; /* half of them hit the header */
            size_t at = next_random() % span;
            buf[at] ^= (uint8_t)(1u << (next_random() % 8));
        }
        snprintf(label, sizeof label, "%s-flip%d", k->name, v);
        try_load(dir, label, buf, n, 0);
    }

    static const uint8_t special[] = {0x00, 0xff, 0x7f, 0x80};
    for (int v = 0; v < 16; v++) {
        memcpy(buf, k->bytes, n);
        for (int f = 0; f < 2; f++) buf[next_random() % n] = special[next_random() % 4];
        snprintf(label, sizeof label, "%s-poke%d", k->name, v);
        try_load(dir, label, buf, n, 0);
    }

    for (int v = 0; v < 4; v++) {
        memcpy(buf, k->bytes, n);
        size_t keep = buf[0] == 0x1f ? 2 : 8; /* gzip magic is two bytes */
        for (size_t i = keep; i < n && i < 64; i++) buf[i] = (uint8_t)next_random();
        snprintf(label, sizeof label, "%s-garbage%d", k->name, v);
        try_load(dir, label, buf, n, 0);
    }

    static const struct {
        const char *name, *magic;
        size_t len;
    } magics[] = {
        {"png", "\x89PNG\r\n\x1a\n", 8}, {"jpeg", "\xff\xd8\xff\xe0", 4}, {"gif", "GIF89a", 6},
        {"tiff-le", "II*\0", 4},        {"tiff-be", "MM\0*", 4},          {"pgm", "P5\n", 3},
        {"gzip", "\x1f\x8b\x08\0", 4},
    };
    for (size_t m = 0; m < sizeof magics / sizeof magics[0]; m++) {
        if (n < magics[m].len) continue;
        memcpy(buf, k->bytes, n);
        memcpy(buf, magics[m].magic, magics[m].len);
        snprintf(label, sizeof label, "%s-as-%s", k->name, magics[m].name);
        try_load(dir, label, buf, n, 0);
    }
    free(buf);
}

/* ---------------------------------------------------------------------------
 * Hand-made files that declare absurd sizes or are otherwise unloadable
 * ------------------------------------------------------------------------- */

static const gen_case *find(const gen_case *cases, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(cases[i].name, name) == 0) return &cases[i];
    fprintf(stderr, "test-corrupt: no base case %s\n", name);
    exit(2);
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void png_sizes(const char *dir, const gen_case *rgb8)
{
    static const uint32_t sizes[][2] = {
        {100000, 100000}, {30000, 30000}, {4000, 4000}, {0, 5}, {5, 0}, {0x80000000u, 1},
    };
    uint8_t *buf = malloc(rgb8->size);
    if (!buf) exit(2);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        memcpy(buf, rgb8->bytes, rgb8->size);
        be32(buf + 16, sizes[i][0]); /* IHDR data follows signature, length and type */
        be32(buf + 20, sizes[i][1]);
        be32(buf + 29, (uint32_t)crc32(0, buf + 12, 17)); /* a valid CRC: only the size is wrong */
        char label[64];
        snprintf(label, sizeof label, "png-%ux%u", sizes[i][0], sizes[i][1]);
        try_load(dir, label, buf, rgb8->size, 1);
    }
    free(buf);
}

static void jpeg_sizes(const char *dir, const gen_case *jpg)
{
    static const unsigned sizes[][2] = {{65500, 65500}, {20000, 20000}, {4000, 4000}, {64, 0}};
    uint8_t *buf = malloc(jpg->size);
    if (!buf) exit(2);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < jpg->size && !sof; i++)
        if (jpg->bytes[i] == 0xff && jpg->bytes[i + 1] == 0xc0) sof = i;
    if (!sof) {
        report("no SOF0 marker in the generated JPEG");
        free(buf);
        return;
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        memcpy(buf, jpg->bytes, jpg->size);
        buf[sof + 5] = (uint8_t)(sizes[i][1] >> 8); /* height, then width */
        buf[sof + 6] = (uint8_t)sizes[i][1];
        buf[sof + 7] = (uint8_t)(sizes[i][0] >> 8);
        buf[sof + 8] = (uint8_t)sizes[i][0];
        char label[64];
        snprintf(label, sizeof label, "jpeg-%ux%u", sizes[i][0], sizes[i][1]);
        try_load(dir, label, buf, jpg->size, 1);
    }
    free(buf);
}

static void pnm_sizes(const char *dir)
{
    static const char *headers[] = {
        "P5\n60000 60000\n255\n", "P6\n30000 30000\n255\n", "P6\n4000 4000\n65535\n",
        "P5\n99999999999 1\n255\n", "P5\n-3 4\n255\n", "P5\n4 4\n70000\n", "P5\n4 4\n",
        "P5\n0 4\n255\n", "P6 4 4 255",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        uint8_t buf[64] = {0};
        size_t len = strlen(headers[i]);
        memcpy(buf, headers[i], len);
        char label[32];
        snprintf(label, sizeof label, "pnm-header%zu", i);
        try_load(dir, label, buf, len + 10, 1);
    }
}

/* A little-endian TIFF with one strip: just enough structure to reach the size checks. */
static void tiff_file(const char *dir, const char *label, uint32_t w, uint32_t h, uint16_t bps,
                      uint16_t spp, uint32_t strip_offset, uint32_t strip_bytes)
{
    static const uint16_t tags[] = {256, 257, 258, 259, 262, 273, 277, 278, 279};
    uint32_t values[] = {w, h, bps, 1, spp >= 3 ? 2 : 1, strip_offset, spp, h, strip_bytes};
    uint8_t buf[256] = {'I', 'I', 42, 0, 8, 0, 0, 0};
    size_t p = 8, count = sizeof tags / sizeof tags[0];
    buf[p++] = (uint8_t)count;
    buf[p++] = 0;
    for (size_t i = 0; i < count; i++) {
        int is_long = tags[i] == 256 || tags[i] == 257 || tags[i] == 273 || tags[i] == 278 ||
                      tags[i] == 279;
        uint8_t e[12] = {(uint8_t)tags[i], (uint8_t)(tags[i] >> 8), is_long ? 4 : 3, 0, 1, 0, 0, 0,
                         (uint8_t)values[i], (uint8_t)(values[i] >> 8),
                         (uint8_t)(values[i] >> 16), (uint8_t)(values[i] >> 24)};
        memcpy(buf + p, e, 12);
        p += 12;
    }
    p += 4;  /* next IFD: none */
    p += 40; /* some pixel bytes */
    try_load(dir, label, buf, p, 1);
}

static void tiff_sizes(const char *dir)
{
    tiff_file(dir, "tiff-4e9x1", 4000000000u, 1, 8, 1, 130, 16);
    tiff_file(dir, "tiff-30000x30000", 30000, 30000, 8, 3, 130, 16);
    tiff_file(dir, "tiff-4000x4000-truncated", 4000, 4000, 8, 1, 130, 16000000);
    tiff_file(dir, "tiff-32bit", 4, 4, 32, 1, 130, 64);
    tiff_file(dir, "tiff-strip-past-end", 4, 4, 8, 1, 100000, 16);
    tiff_file(dir, "tiff-60000-samples", 4, 4, 8, 60000, 130, 16);
}

static void gif_file(const char *dir, const char *label, unsigned sw, unsigned sh, unsigned left,
                     unsigned fw, unsigned fh)
{
    uint8_t buf[64] = "GIF89a";
    size_t p = 6;
    uint8_t screen[7] = {(uint8_t)sw, (uint8_t)(sw >> 8), (uint8_t)sh, (uint8_t)(sh >> 8), 0x80,
                         0, 0}; /* global table of 2 entries */
    memcpy(buf + p, screen, 7);
    p += 7;
    uint8_t table[6] = {0, 0, 0, 255, 255, 255};
    memcpy(buf + p, table, 6);
    p += 6;
    uint8_t desc[10] = {',', (uint8_t)left, (uint8_t)(left >> 8), 0, 0, (uint8_t)fw,
                        (uint8_t)(fw >> 8), (uint8_t)fh, (uint8_t)(fh >> 8), 0};
    memcpy(buf + p, desc, 10);
    p += 10;
    uint8_t data[5] = {2, 2, 0x44, 0x01, 0}; /* min code size 2, one tiny block */
    memcpy(buf + p, data, 5);
    p += 5;
    buf[p++] = ';';
    try_load(dir, label, buf, p, 1);
}

static void gif_sizes(const char *dir)
{
    gif_file(dir, "gif-65535x65535", 65535, 65535, 0, 65535, 65535);
    gif_file(dir, "gif-30000x30000", 30000, 30000, 0, 30000, 30000);
    gif_file(dir, "gif-5000x5000-truncated", 5000, 5000, 0, 5000, 5000);
    gif_file(dir, "gif-frame-at-65000", 10, 10, 65000, 10, 10);
    gif_file(dir, "gif-empty-frame", 10, 10, 0, 0, 0);
}

/* 300 MiB of zeros gzipped to ~300 KiB: must stop at the size cap, not exhaust memory. */
static void gzip_cases(const char *dir, const gen_case *png)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) exit(2);
    size_t cap = 4 << 20, total = 300u << 20;
    uint8_t *zeros = calloc(1, 1 << 20), *out = malloc(cap);
    if (!zeros || !out) exit(2);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    for (size_t fed = 0; fed < total; fed += 1 << 20) {
        z.next_in = zeros;
        z.avail_in = 1 << 20;
        if (deflate(&z, fed + (1 << 20) >= total ? Z_FINISH : Z_NO_FLUSH) == Z_STREAM_ERROR ||
            z.avail_out == 0)
            exit(2);
    }
    try_load(dir, "bomb.gz", out, cap - z.avail_out, 1);
    deflateEnd(&z);
    free(zeros);
    free(out);

    size_t n1, n2;
    uint8_t *once = gen_gzip(png->bytes, png->size, &n1);
    uint8_t *twice = gen_gzip(once, n1, &n2);
    try_load(dir, "nested.png.gz.gz", twice, n2, 1);
    free(once);
    free(twice);
    try_load(dir, "empty", (const uint8_t *)"", 0, 1);
}

static int write_seeds(const char *out)
{
    const char *scratch = gen_tempdir("clunet-seeds");
    gen_case *cases;
    int n = gen_all(scratch, &cases);
    rmdir(scratch);
    int status = 0;
    for (int i = 0; i < n; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", out, cases[i].name);
        if (gen_write_file(path, cases[i].bytes, cases[i].size) != 0) {
            fprintf(stderr, "cannot write %s\n", path);
            status = 1;
        }
    }
    printf("wrote %d seeds to %s\n", n, out);
    gen_free(cases, n);
    return status;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0) return write_seeds(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--seed") == 0) rng = strtoull(argv[2], NULL, 10) | 1;
    else if (argc != 1) {
        fprintf(stderr, "usage: test-corrupt [--seed N] | --write-seeds DIR\n");
        return 2;
    }
    signal(SIGALRM, on_alarm);
    const char *dir = gen_tempdir("clunet-corrupt");
    gen_case *cases;
    int n = gen_all(dir, &cases);
    for (int i = 0; i < n; i++) mutate(dir, &cases[i]);
    int mutated = counter;
    png_sizes(dir, find(cases, n, "rgb8.png"));
    jpeg_sizes(dir, find(cases, n, "rgb444.jpg"));
    pnm_sizes(dir);
    tiff_sizes(dir);
    gif_sizes(dir);
    gzip_cases(dir, find(cases, n, "grey8.png"));
    gen_free(cases, n);
    rmdir(dir);
    printf("test-corrupt: %d files (%d mutations of %d valid files, %d hand-made): "
           "%d loaded, %d FORMAT, %d IO, %d UNSUPPORTED; %d bad\n",
           counter, mutated, n, counter - mutated, loaded_ok, failed[0], failed[1], failed[2],
           bad);
    return bad ? 1 : 0;
}
