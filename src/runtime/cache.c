/* cache.c - on-disk kernel binary cache (see cache.h). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/dirs.h"
#include "runtime/cache.h"
#include "runtime/sha256.h"

/* Bump when the entry layout or the way programs are built changes. */
#define CACHE_FORMAT 1
static const char MAGIC[8] = {'C', 'L', 'U', 'N', 'E', 'T', 'K', '1'};
#define MAX_BINARY ((size_t)256 << 20)

int cn_cache_dir(char *out, size_t size)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (xdg && *xdg) n = snprintf(out, size, "%s/clunet", xdg);
    else if (home && *home) n = snprintf(out, size, "%s/.cache/clunet", home);
    else return 0;
    return n > 0 && (size_t)n < size;
}

int cn_cache_path(const char *key, char *out, size_t size)
{
    char dir[1024];
    if (!cn_cache_dir(dir, sizeof dir)) return 0;
    int n = snprintf(out, size, "%s/%s.bin", dir, key);
    return n > 0 && (size_t)n < size;
}

static void hash_string(cn_sha256 *s, const char *str)
{
    /* Length-prefixed so that field boundaries cannot shift between keys. */
    uint64_t len = strlen(str);
    cn_sha256_update(s, &len, sizeof len);
    cn_sha256_update(s, str, len);
}

void cn_cache_key(const clunet_device_info *dev, const char *source, const char *options, char key[65])
{
    cn_sha256 s;
    uint8_t digest[32];
    uint32_t format = CACHE_FORMAT;
    cn_sha256_init(&s);
    cn_sha256_update(&s, &format, sizeof format);
    hash_string(&s, source);
    hash_string(&s, options);
    hash_string(&s, dev->name);
    hash_string(&s, dev->driver_version);
    hash_string(&s, dev->platform_version);
    cn_sha256_final(&s, digest);
    cn_sha256_hex(digest, key);
}

unsigned char *cn_cache_load(const char *key, size_t *size)
{
    char path[1200];
    if (!cn_cache_path(key, path, sizeof path)) return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char magic[8];
    uint64_t len;
    uint8_t want[32], got[32];
    unsigned char *bin = NULL;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, MAGIC, 8) || fread(&len, sizeof len, 1, f) != 1 ||
        len == 0 || len > MAX_BINARY || fread(want, 1, 32, f) != 32)
        goto bad;
    bin = malloc(len);
    if (!bin || fread(bin, 1, len, f) != len || fgetc(f) != EOF) goto bad;
    cn_sha256 s;
    cn_sha256_init(&s);
    cn_sha256_update(&s, bin, len);
    cn_sha256_final(&s, got);
    if (memcmp(want, got, 32)) goto bad;
    fclose(f);
    *size = len;
    return bin;
bad:
    free(bin);
    fclose(f);
    return NULL;
}

void cn_cache_store(const char *key, const unsigned char *binary, size_t size)
{
    char dir[1024], path[1200], tmp[1200];
    if (!cn_cache_dir(dir, sizeof dir) || !cn_make_dirs(dir)) return;
    if (!cn_cache_path(key, path, sizeof path)) return;
    snprintf(tmp, sizeof tmp, "%s/.tmp-XXXXXX", dir);
    int fd = mkstemp(tmp);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(tmp);
        return;
    }
    uint64_t len = size;
    uint8_t digest[32];
    cn_sha256 s;
    cn_sha256_init(&s);
    cn_sha256_update(&s, binary, size);
    cn_sha256_final(&s, digest);
    int ok = fwrite(MAGIC, 1, 8, f) == 8 && fwrite(&len, sizeof len, 1, f) == 1 && fwrite(digest, 1, 32, f) == 32 &&
             fwrite(binary, 1, size, f) == size && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) unlink(tmp);
}

/*
 * Bump when host code changes what a measured choice runs (a path's launches
 * or workspace), so that earlier measurements are not trusted; changes to the
 * kernels' sources count without it. 4: the files before it did not mark
 * choices measured on a busy machine, which may be wrong and are kept for good.
 */
#define TUNING_FORMAT 4

/*
 * tuning-<SHA-256 of the device's identity, TUNING_FORMAT and every kernel
 * source>.txt: "key value" lines. A choice measured on other kernels may be
 * wrong for these, so an edited kernel starts a new file.
 */
void cn_tuning_init(clunet_context *ctx)
{
    char dir[1024], key[65], kernels[65];
    ctx->tuning_file[0] = 0;
    if (!ctx->use_cache || !cn_cache_dir(dir, sizeof dir)) return;
    cn_sha256 s;
    uint8_t digest[32];
    uint32_t format = TUNING_FORMAT;
    cn_sha256_init(&s);
    cn_sha256_update(&s, &format, sizeof format);
    for (int i = 0; i < cn_source_count; i++) {
        hash_string(&s, cn_sources[i].name);
        hash_string(&s, cn_sources[i].text);
    }
    cn_sha256_final(&s, digest);
    cn_sha256_hex(digest, kernels);
    /* choices measured with CLUNET_PATHS forcing the other device type's paths are kept apart from the device's */
    cn_cache_key(&ctx->info, ctx->cpu_paths == (ctx->info.type == CLUNET_DEVICE_CPU) ? "tuning" : "tuning, other paths",
                 kernels, key);
    int n = snprintf(ctx->tuning_file, sizeof ctx->tuning_file, "%s/tuning-%s.txt", dir, key);
    if (n <= 0 || (size_t)n >= sizeof ctx->tuning_file) ctx->tuning_file[0] = 0;
}

/*
 * The line of `key`: its value (the first word after the key) and *busy, the
 * share of the CPUs other processes used while it was measured (" busy=NN"
 * after the value, in percent; 0 without).
 */
static int tuning_read(const clunet_context *ctx, const char *key, char *value, size_t size, double *busy)
{
    char line[256];
    *busy = 0;
    if (!ctx->tuning_file[0]) return 0;
    FILE *f = fopen(ctx->tuning_file, "r");
    if (!f) return 0;
    size_t n = strlen(key);
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, n) || line[n] != ' ') continue;
        char *v = line + n + 1, *end = v + strcspn(v, " \r\n");
        int percent;
        if (*end == ' ' && sscanf(end, " busy=%d", &percent) == 1) *busy = percent / 100.0;
        *end = 0;
        found = snprintf(value, size, "%s", v) < (int)size;
    }
    fclose(f);
    return found;
}

int cn_tuning_get(clunet_context *ctx, const char *key, char *value, size_t size)
{
    double busy;
    if (!tuning_read(ctx, key, value, size, &busy)) return 0;
    /* measured on a busy machine: measured again when this run has had it to itself so far */
    return busy < CN_TUNE_BUSY || !cn_tuning_quiet(ctx);
}

int cn_tuning_quiet(clunet_context *ctx)
{
    if (ctx->quiet < 0)
        ctx->quiet = ctx->cpu_start.cpus && cn_cpu_others_over(&ctx->cpu_start, 0.25) < CN_TUNE_BUSY;
    return ctx->quiet;
}

/* Counts a choice kept although measured on a busy machine, for cn_tuning_busy_note. */
static void count_busy(clunet_context *ctx, double busy)
{
    if (busy < CN_TUNE_BUSY) return;
    ctx->busy_picks++;
    if (busy > ctx->busy_most) ctx->busy_most = busy;
}

/* Writes the tuning file with `key value` replacing any line of that key (a new file renamed over the old). */
static void tuning_write(const char *path, const char *key, const char *value, double busy)
{
    char tmp[1216], line[256];
    snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return;
    FILE *out = fdopen(fd, "w");
    if (!out) {
        close(fd);
        unlink(tmp);
        return;
    }
    /* keep the other keys, replace this one */
    FILE *in = fopen(path, "r");
    size_t n = strlen(key);
    while (in && fgets(line, sizeof line, in))
        if (strncmp(line, key, n) || line[n] != ' ') fputs(line, out);
    if (in) fclose(in);
    if (busy >= CN_TUNE_BUSY) fprintf(out, "%s %s busy=%d\n", key, value, (int)(100 * busy + 0.5));
    else fprintf(out, "%s %s\n", key, value);
    int ok = fflush(out) == 0 && fsync(fileno(out)) == 0;
    ok = (fclose(out) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) unlink(tmp);
}

int cn_first_run_note(const clunet_context *ctx, char *note, size_t size)
{
    char dir[1024];
    if (ctx->tuning_file[0] && access(ctx->tuning_file, F_OK) == 0) return 0;
    if (ctx->tuning_file[0] && cn_cache_dir(dir, sizeof dir)) {
        char made[sizeof dir]; /* cn_make_dirs writes into its argument */
        snprintf(made, sizeof made, "%s", dir);
        struct stat st;
        const char *why = !cn_make_dirs(made) || stat(dir, &st) ? strerror(errno)
                          : !S_ISDIR(st.st_mode)                ? "not a directory"
                          : access(dir, W_OK | X_OK)            ? strerror(errno)
                                                                : NULL;
        if (!why)
            snprintf(note, size, "first run of these kernels on this device: compiling them and timing their variants "
                     "(a few minutes on a CPU; kept in %s for later runs)", dir);
        else
            snprintf(note, size, "the kernel cache %s cannot be created or written (%s): kernels are compiled and "
                     "their variants timed on every run (minutes on a CPU)", dir, why);
    } else
        snprintf(note, size, "no kernel cache (CLUNET_NO_CACHE, or no HOME): kernels are compiled and their variants "
                 "timed on every run (minutes on a CPU)");
    return 1;
}

void cn_tuning_settle(clunet_context *ctx, const char *key, char *value, size_t size, double busy)
{
    char dir[1024];
    if (!ctx->tuning_file[0] || !cn_cache_dir(dir, sizeof dir) || !cn_make_dirs(dir)) {
        count_busy(ctx, busy);
        return;
    }
    /* the directory's lock orders processes that measured at once: the first to get here decides for all */
    int lock = open(dir, O_RDONLY | O_DIRECTORY);
    if (lock >= 0 && flock(lock, LOCK_EX) != 0) {
        close(lock);
        lock = -1;
    }
    char known[256];
    double known_busy;
    if (!tuning_read(ctx, key, known, sizeof known, &known_busy) || (known_busy >= CN_TUNE_BUSY && busy < CN_TUNE_BUSY)) {
        tuning_write(ctx->tuning_file, key, value, busy);
        count_busy(ctx, busy);
    } else {
        snprintf(value, size, "%s", known);
        count_busy(ctx, known_busy);
    }
    if (lock >= 0) close(lock); /* closing releases the lock */
}
