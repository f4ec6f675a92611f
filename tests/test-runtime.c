/*
 * test-runtime - the OpenCL layer on every device present: enumeration,
 * selection, errors, memory accounting, kernel launches with offsets, build
 * failures, the on-disk binary cache (hit on the second build; corrupt
 * entries ignored safely) in a scratch XDG_CACHE_HOME of its own, and the
 * choice of kernel variants by timing (cn_tune_pick), and of choices timed on a
 * busy machine.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "runtime/cache.h"
#include "runtime/runtime.h"
#include "runtime/sha256.h"

#include "check.h"

static void test_sha256(void)
{
    static const struct {
        const char *msg, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        cn_sha256 s;
        uint8_t d[32];
        char hex[65];
        cn_sha256_init(&s);
        /* Feed byte by byte to exercise block boundaries too. */
        for (const char *p = v[i].msg; *p; p++) cn_sha256_update(&s, p, 1);
        cn_sha256_final(&s, d);
        cn_sha256_hex(d, hex);
        CHECK(!strcmp(hex, v[i].hex), "sha256(\"%s\") = %s", v[i].msg, hex);
    }
}

static void test_status_strings(void)
{
    for (int s = CLUNET_OK; s >= CLUNET_ERR_INTERNAL; s--) {
        const char *str = clunet_status_string((clunet_status)s);
        CHECK(str && *str && strcmp(str, "unknown status"), "status %d has no string", s);
    }
    CHECK(!strcmp(cn_cl_error_name(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES"), "CL error name table");
    CHECK(cn_cl_status(CL_MEM_OBJECT_ALLOCATION_FAILURE) == CLUNET_ERR_OUT_OF_MEMORY, "CL status mapping");
}

static void test_selection(int n, const clunet_device_info *devs)
{
    int idx = -1;
    CHECK(clunet_device_select("0", &idx) == CLUNET_OK && idx == 0, "select by index 0");
    CHECK(clunet_device_select("9999", &idx) == CLUNET_ERR_NO_DEVICE, "an index out of range is refused");
    CHECK(clunet_device_select("no-such-device-xyzzy", &idx) == CLUNET_ERR_NO_DEVICE,
          "an unknown name is refused");
    CHECK(strstr(clunet_last_error(), "no-such-device-xyzzy") != NULL, "the error names the spec");
    CHECK(clunet_device_select(NULL, &idx) == CLUNET_OK && idx >= 0 && idx < n, "a default device exists");
    for (int i = 0; i < n; i++) {
        int got = -1;
        CHECK(clunet_device_select(devs[i].name, &got) == CLUNET_OK && !strcmp(devs[got].name, devs[i].name),
              "select by name '%s'", devs[i].name);
        if (devs[i].type == CLUNET_DEVICE_CPU && !devs[i].simulator)
            CHECK(clunet_device_select("cpu", &got) == CLUNET_OK && devs[got].type == CLUNET_DEVICE_CPU,
                  "select by type cpu");
    }
    /* by type: real hardware only (Oclgrind calls itself a GPU), refused in one line otherwise */
    const char *types[] = {"gpu", "cpu"};
    for (int t = 0; t < 2; t++) {
        int got = -1, real = 0;
        clunet_device_type want = t ? CLUNET_DEVICE_CPU : CLUNET_DEVICE_GPU;
        for (int i = 0; i < n; i++) real |= devs[i].type == want && !devs[i].simulator;
        clunet_status st = clunet_device_select(types[t], &got);
        if (real)
            CHECK(st == CLUNET_OK && devs[got].type == want && !devs[got].simulator, "--device %s: real hardware",
                  types[t]);
        else
            CHECK(st == CLUNET_ERR_NO_DEVICE && strstr(clunet_last_error(), types[t]) &&
                      !strchr(clunet_last_error(), '\n'),
                  "--device %s with none but simulators: refused (%s)", types[t], clunet_last_error());
    }
}

static void test_memory(const char *spec)
{
    clunet_settings s;
    clunet_default_settings(&s);
    s.device = spec;
    s.memory_cap_bytes = 3u << 20;
    clunet_context *ctx;
    if (clunet_context_create(&s, &ctx) != CLUNET_OK) {
        CHECK(0, "context on %s", spec);
        return;
    }
    cl_mem a = NULL, b = NULL, c = NULL;
    CHECK(cn_buffer_alloc(ctx, 1u << 20, &a) == CLUNET_OK, "1 MiB under a 3 MiB cap");
    CHECK(cn_buffer_alloc(ctx, 1u << 20, &b) == CLUNET_OK, "2 MiB under a 3 MiB cap");
    clunet_memory_stats m;
    clunet_context_memory(ctx, &m);
    CHECK(m.current_bytes == 2u << 20 && m.peak_bytes == 2u << 20 && m.cap_bytes == 3u << 20,
          "accounting: current %llu peak %llu cap %llu", (unsigned long long)m.current_bytes,
          (unsigned long long)m.peak_bytes, (unsigned long long)m.cap_bytes);
    CHECK(cn_buffer_alloc(ctx, 2u << 20, &c) == CLUNET_ERR_OUT_OF_MEMORY, "over the cap is refused");
    CHECK(strstr(clunet_last_error(), "2.0 MiB") && strstr(clunet_last_error(), "3.0 MiB"),
          "the error names the size and the limit");
    cn_buffer_free(ctx, a);
    clunet_context_memory(ctx, &m);
    CHECK(m.current_bytes == 1u << 20 && m.peak_bytes == 2u << 20, "free is counted");
    cn_buffer_free(ctx, b);
    clunet_context_destroy(ctx);
}

static void test_kernel(clunet_context *ctx)
{
    enum { N = 1000, OFF_X = 7, OFF_Y = 13 };
    float host[N + OFF_X], out[N + OFF_Y];
    for (int i = 0; i < N + OFF_X; i++) host[i] = 0.5f + (float)i;
    cl_mem x, y;
    if (cn_buffer_alloc(ctx, sizeof host, &x) != CLUNET_OK || cn_buffer_alloc(ctx, sizeof out, &y) != CLUNET_OK) {
        CHECK(0, "allocation");
        return;
    }
    cl_kernel copy;
    size_t g = N + OFF_Y, local = 64;
    int ok = cn_buffer_write(ctx, x, 0, sizeof host, host) == CLUNET_OK &&
             cn_buffer_fill_float(ctx, y, 0, sizeof out, -2.0f) == CLUNET_OK &&
             cn_kernel(ctx, "memory.cl", "copy_f32", NULL, &copy) == CLUNET_OK &&
             CN_ARG_MEM(copy, 0, x) == CLUNET_OK && CN_ARG_INT(copy, 1, OFF_X) == CLUNET_OK &&
             CN_ARG_MEM(copy, 2, y) == CLUNET_OK && CN_ARG_INT(copy, 3, OFF_Y) == CLUNET_OK &&
             CN_ARG_INT(copy, 4, N) == CLUNET_OK && cn_launch(ctx, copy, 1, &g, &local) == CLUNET_OK &&
             cn_buffer_read(ctx, y, 0, sizeof out, out) == CLUNET_OK;
    CHECK(ok, "fill and copy kernels run");
    int bad = 0;
    for (int i = 0; ok && i < N + OFF_Y; i++) {
        float want = i < OFF_Y ? -2.0f : host[i - OFF_Y + OFF_X];
        bad += out[i] != want;
    }
    CHECK(ok && bad == 0, "copy with offsets: %d wrong values", bad);
    cl_kernel again;
    CHECK(cn_kernel(ctx, "memory.cl", "copy_f32", NULL, &again) == CLUNET_OK && again == copy,
          "kernels are built once and reused");
    CHECK(cn_kernel(ctx, "memory.cl", "no_such_kernel", NULL, &again) != CLUNET_OK &&
              strstr(clunet_last_error(), "no_such_kernel"),
          "a missing kernel is named");
    cn_buffer_free(ctx, x);
    cn_buffer_free(ctx, y);
}

/*
 * cn_buffer_fill_float over spans that start and end inside and across the
 * kernel's 16-float vectors, plain and streaming: the span holds the value,
 * every float around it keeps its poison.
 */
static void test_fill(clunet_context *ctx)
{
    enum { N = 1200 };
    static const int spans[][2] = {{0, 0}, {3, 1}, {5, 15}, {7, 16}, {1, 17}, {16, 33}, {13, 987}, {0, N}, {64, 512}};
    float *host = malloc(N * sizeof(float));
    cl_mem buf;
    if (!host || cn_buffer_alloc(ctx, N * sizeof(float), &buf) != CLUNET_OK) {
        CHECK(0, "allocation");
        free(host);
        return;
    }
    int saved_stores = ctx->stream_stores;
    size_t saved_floor = ctx->stream_floor;
    for (int stream = 0; stream < 2; stream++) {
        ctx->stream_stores = stream, ctx->stream_floor = 0;
        for (size_t s = 0; s < sizeof spans / sizeof spans[0]; s++) {
            int off = spans[s][0], n = spans[s][1], bad = 0;
            for (int i = 0; i < N; i++) host[i] = 0.5f + (float)i;
            int ok = cn_buffer_write(ctx, buf, 0, N * sizeof(float), host) == CLUNET_OK &&
                     cn_buffer_fill_float(ctx, buf, off * sizeof(float), n * sizeof(float), -3.25f) == CLUNET_OK &&
                     cn_buffer_read(ctx, buf, 0, N * sizeof(float), host) == CLUNET_OK;
            for (int i = 0; ok && i < N; i++) bad += host[i] != (i >= off && i < off + n ? -3.25f : 0.5f + (float)i);
            CHECK(ok && bad == 0, "fill of %d floats at %d (%s stores): %d wrong values", n, off,
                  stream ? "streaming" : "plain", bad);
        }
    }
    ctx->stream_stores = saved_stores, ctx->stream_floor = saved_floor;
    CHECK(cn_buffer_fill_float(ctx, buf, 2, 8, 0.0f) == CLUNET_ERR_INVALID_ARGUMENT &&
              strstr(clunet_last_error(), "not whole floats"),
          "a fill that is not whole floats is refused");
    cn_buffer_free(ctx, buf);
    free(host);
}

/* A context on device spec, or NULL after a failed check. */
static clunet_context *open_context(const char *spec)
{
    clunet_settings s;
    clunet_default_settings(&s);
    s.device = spec;
    clunet_context *ctx;
    if (clunet_context_create(&s, &ctx) == CLUNET_OK) return ctx;
    CHECK(0, "context on %s", spec);
    return NULL;
}

/* Keeps this thread busy for `seconds` of wall time. */
static void spin(double seconds)
{
    double t0 = cn_seconds();
    while (cn_seconds() - t0 < seconds) {
    }
}

/* A cn_tune_pick candidate: busy for value x 10 us of wall time, counting its runs in ((int *)arg)[value]. */
static clunet_status busy(clunet_context *ctx, int value, void *arg)
{
    (void)ctx;
    ((int *)arg)[value]++;
    spin(value * 1e-5);
    return CLUNET_OK;
}

/*
 * cn_tune_pick on candidates of known times: the fastest wins and is
 * remembered; the two best get five more rounds each only where they lie
 * within 15% of each other.
 */
static void test_tune(const char *spec)
{
    clunet_context *ctx = open_context(spec);
    if (!ctx) return;
    int runs[64] = {0}, chosen = -1;
    const int apart[3] = {40, 20, 60}, close[3] = {22, 60, 20}; /* x 10 us: 2x apart; 10% apart */
    CHECK(cn_tune_pick(ctx, "test_tune_apart", apart, 3, busy, runs, &chosen) == CLUNET_OK && chosen == 20,
          "the fastest of three candidates 2x apart wins (%d)", chosen);
    CHECK(runs[20] == 6 && runs[40] == 6 && runs[60] == 6,
          "... after one untimed and five timed runs each, no runoff (%d %d %d)", runs[20], runs[40], runs[60]);
    memset(runs, 0, sizeof runs);
    CHECK(cn_tune_pick(ctx, "test_tune_close", close, 3, busy, runs, &chosen) == CLUNET_OK && chosen == 20,
          "the fastest of two candidates 10%% apart wins (%d)", chosen);
    CHECK(runs[20] == 11 && runs[22] == 11 && runs[60] == 6,
          "... after a runoff of five more runs each of those two alone (%d %d %d)", runs[20], runs[22], runs[60]);
    memset(runs, 0, sizeof runs);
    CHECK(cn_tune_pick(ctx, "test_tune_close", close, 3, busy, runs, &chosen) == CLUNET_OK && chosen == 20 &&
              runs[20] + runs[22] + runs[60] == 0,
          "a key asked again is answered without running anything");
    clunet_context_destroy(ctx);
}

/* A cn_tune_pick candidate of value ms (long enough for the CPU counters), counting its runs in ((int *)arg)[value]. */
static clunet_status busy_ms(clunet_context *ctx, int value, void *arg)
{
    (void)ctx;
    ((int *)arg)[value]++;
    spin(value * 1e-3);
    return CLUNET_OK;
}

/* One child process per CPU, each spinning for `seconds` (or until killed); returns how many started. */
static int spin_children(pid_t *pids, int max, double seconds)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = 0;
    for (; n < max && n < cpus; n++) {
        pids[n] = fork();
        if (pids[n] < 0) break;
        if (pids[n] == 0) {
            spin(seconds);
            _exit(0);
        }
    }
    return n;
}

/* Waits for the children, killed first unless they are to finish their spin. */
static void reap_children(pid_t *pids, int n, int kill_them)
{
    for (int i = 0; i < n; i++) {
        if (kill_them) kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
}

/* The line of key in ctx's tuning file, or "" */
static void tuning_line(const clunet_context *ctx, const char *key, char *line, size_t size)
{
    line[0] = 0;
    FILE *f = fopen(ctx->tuning_file, "r");
    if (!f) return;
    while (fgets(line, (int)size, f))
        if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ' ') {
            line[strcspn(line, "\n")] = 0;
            fclose(f);
            return;
        }
    line[0] = 0;
    fclose(f);
}

/* The share of the CPUs others use over `seconds` of this process sleeping. */
static double idle_others(double seconds)
{
    cn_cpu_mark m;
    cn_cpu_mark_now(&m);
    return cn_cpu_others_over(&m, seconds);
}

/* A timed pick among 20, 30 and 45 ms under `key`: the candidates' runs in runs[], the choice in *chosen. */
static clunet_status pick_ms(clunet_context *ctx, const char *key, int *runs, int *chosen)
{
    static const int ms[3] = {30, 20, 45};
    memset(runs, 0, 64 * sizeof *runs);
    return cn_tune_pick(ctx, key, ms, 3, busy_ms, runs, chosen);
}

/* The CPU counters: other processes' time is seen, this process's own is not. */
static void test_cpu_counters(void)
{
    pid_t pids[256];
    cn_cpu_mark mark;
    cn_cpu_mark_now(&mark);
    if (!mark.cpus) {
        printf("note: no CPU counters here (/proc/stat): other processes' load is not measured, nothing to check\n");
        return;
    }
    int n = spin_children(pids, 256, 0.4);
    /* measured before they are waited for: then their time becomes this process's (as a compiler's would) */
    double others = cn_cpu_others_over(&mark, 0.45);
    reap_children(pids, n, 0);
    CHECK(others >= 0.5, "children spinning on all %d CPUs for 0.4 s: others used %.0f%% of them", n, 100 * others);
    double before = idle_others(0.3);
    cn_cpu_mark_now(&mark);
    spin(0.4);
    others = cn_cpu_others(&mark);
    CHECK(others < before + 0.15, "this process spinning for 0.4 s is not counted as others' (%.0f%%; %.0f%% idle before)",
          100 * others, 100 * before);
}

/*
 * Choices timed on a busy machine: such a choice is marked in the tuning file,
 * kept by runs on a busy machine, and timed again (then replaced) by a run
 * that has had the machine to itself; a busy measurement never replaces a quiet one.
 */
static void test_tune_busy(const char *spec)
{
    clunet_context *ctx = open_context(spec);
    if (!ctx) return;
    char value[32], line[256], note[256];
    ctx->quiet = 1;
    snprintf(value, sizeof value, "7");
    cn_tuning_settle(ctx, "test_busy", value, sizeof value, 0.6);
    tuning_line(ctx, "test_busy", line, sizeof line);
    CHECK(!strcmp(line, "test_busy 7 busy=60"), "a choice measured at 60%% busy is marked: '%s'", line);
    CHECK(!cn_tuning_get(ctx, "test_busy", value, sizeof value), "... and a quiet run does not take it");
    ctx->quiet = 0;
    CHECK(cn_tuning_get(ctx, "test_busy", value, sizeof value) && !strcmp(value, "7"),
          "... but a busy run does (%s)", value);
    snprintf(value, sizeof value, "3");
    cn_tuning_settle(ctx, "test_busy", value, sizeof value, 0.05);
    tuning_line(ctx, "test_busy", line, sizeof line);
    CHECK(!strcmp(line, "test_busy 3") && !strcmp(value, "3"), "a quiet measurement replaces it: '%s'", line);
    snprintf(value, sizeof value, "9");
    cn_tuning_settle(ctx, "test_busy", value, sizeof value, 0.9);
    tuning_line(ctx, "test_busy", line, sizeof line);
    CHECK(!strcmp(line, "test_busy 3") && !strcmp(value, "3"),
          "a busy measurement does not replace a quiet one, and takes its value: '%s', %s", line, value);
    CHECK(cn_tuning_busy_note(ctx, note, sizeof note) && strstr(note, "1 kernel choice was timed") &&
              strstr(note, "60%"),
          "the one busy choice kept is told of: '%s'", note);
    CHECK(!cn_tuning_busy_note(ctx, note, sizeof note), "... once");
    if (ctx->info.type != CLUNET_DEVICE_CPU || !ctx->cpu_start.cpus) {
        printf("note: %s: %s, so no pick is timed beside spinning processes\n", spec,
               ctx->cpu_start.cpus ? "not a CPU device, whose picks are never marked busy"
                                   : "no CPU counters here (/proc/stat)");
        clunet_context_destroy(ctx);
        return;
    }
    /* the slowest candidate, as if a busy machine had chosen it */
    snprintf(value, sizeof value, "45");
    cn_tuning_settle(ctx, "test_busy_pick", value, sizeof value, 0.5);
    clunet_context_destroy(ctx);

    pid_t pids[256];
    int runs[64], chosen = -1, n = spin_children(pids, 256, 30);
    ctx = open_context(spec); /* made while the CPUs are busy */
    clunet_status st = ctx ? pick_ms(ctx, "test_busy_pick", runs, &chosen) : CLUNET_ERR_INTERNAL;
    CHECK(st == CLUNET_OK && chosen == 45 && runs[20] + runs[30] + runs[45] == 0,
          "a run on a busy machine takes the marked choice untimed (%d; %d runs)", chosen, runs[20] + runs[30] + runs[45]);
    st = ctx ? pick_ms(ctx, "test_busy_pick2", runs, &chosen) : CLUNET_ERR_INTERNAL;
    reap_children(pids, n, 1);
    line[0] = 0;
    if (ctx) tuning_line(ctx, "test_busy_pick2", line, sizeof line);
    CHECK(st == CLUNET_OK && ctx->busy_picks == 1 && strstr(line, " busy="),
          "a pick timed beside %d spinning processes is marked and counted: '%s'", n, line);
    if (ctx) clunet_context_destroy(ctx);

    double before = idle_others(0.3);
    if (before >= 0.1) {
        printf("note: other processes use %.0f%% of the CPUs: a quiet run's timing again of a marked choice is not "
               "checked here\n",
               100 * before);
        return;
    }
    ctx = open_context(spec);
    st = ctx ? pick_ms(ctx, "test_busy_pick", runs, &chosen) : CLUNET_ERR_INTERNAL;
    line[0] = 0;
    if (ctx) tuning_line(ctx, "test_busy_pick", line, sizeof line);
    CHECK(st == CLUNET_OK && chosen == 20 && runs[20] > 0 && !strcmp(line, "test_busy_pick 20"),
          "a run on a quiet machine times a marked choice again and replaces it (%d: '%s')", chosen, line);
    if (ctx) clunet_context_destroy(ctx);
}

static int count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    closedir(d);
    return n;
}

static void clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    char path[2048];
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* Damages the first n cache entries: truncation, a flipped byte, garbage. */
static void damage_entries(const char *dir, int n)
{
    DIR *d = opendir(dir);
    if (!d) return;
    char path[2048];
    int done = 0;
    for (struct dirent *e; (e = readdir(d)) && done < n;) {
        if (!strstr(e->d_name, ".bin")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r+b");
        if (!f) continue;
        if (done == 0) {
            if (truncate(path, 40) != 0) printf("note: truncate failed\n");
        } else if (done == 1) {
            fseek(f, 100, SEEK_SET);
            int c = fgetc(f);
            fseek(f, 100, SEEK_SET);
            fputc(c ^ 0x40, f);
        } else {
            fputs("garbage garbage garbage", f);
        }
        fclose(f);
        done++;
    }
    closedir(d);
}

static void test_cache(const char *spec)
{
    char dir[1024];
    if (!cn_cache_dir(dir, sizeof dir)) {
        CHECK(0, "no cache directory (set XDG_CACHE_HOME)");
        return;
    }
    clear_dir(dir);
    clunet_settings s;
    clunet_default_settings(&s);
    s.device = spec;
    int hits[3], compiled[3];
    for (int round = 0; round < 3; round++) {
        if (round == 2) damage_entries(dir, 3);
        clunet_context *ctx;
        if (clunet_context_create(&s, &ctx) != CLUNET_OK) {
            CHECK(0, "context");
            return;
        }
        CHECK(clunet_context_build_all(ctx) == CLUNET_OK, "build all kernels (round %d)", round);
        clunet_context_build_stats(ctx, &hits[round], &compiled[round]);
        if (round == 2) { /* programs loaded from the cache still work */
            test_kernel(ctx);
            test_fill(ctx);
        }
        clunet_context_destroy(ctx);
    }
    int total = compiled[0] + hits[0];
    printf("cache: round 1 compiled %d, round 2 hits %d, round 3 (3 entries damaged) compiled %d hits %d\n",
           compiled[0], hits[1], compiled[2], hits[2]);
    /* Files with identical text share an entry, so a cold cache may already hit a few. */
    CHECK(compiled[0] > 0 && compiled[0] + hits[0] == total, "a cold cache compiles");
    CHECK(hits[1] == total && compiled[1] == 0, "the second build hits the cache for every program");
    CHECK(compiled[2] == 3 && hits[2] == total - 3, "damaged entries are recompiled, the rest hit");
    CHECK(count_files(dir, ".tmp-") == 0, "no temporary files are left in the cache");

    setenv("CLUNET_NO_CACHE", "1", 1);
    clunet_context *ctx;
    if (clunet_context_create(&s, &ctx) == CLUNET_OK) {
        CHECK(clunet_context_build_all(ctx) == CLUNET_OK, "build with the cache off");
        int h, c;
        clunet_context_build_stats(ctx, &h, &c);
        CHECK(h == 0 && c == total, "CLUNET_NO_CACHE=1 compiles everything (%d hits)", h);
        clunet_context_destroy(ctx);
    }
    unsetenv("CLUNET_NO_CACHE");
}

static void test_build_failure(const char *spec)
{
    char dir[] = "/tmp/clunet-kdir-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char path[256];
    snprintf(path, sizeof path, "%s/common.cl", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < cn_source_count; i++)
        if (f && !strcmp(cn_sources[i].name, "common.cl")) fputs(cn_sources[i].text, f);
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/broken.cl", dir);
    f = fopen(path, "w");
    if (f) {
        fputs("__kernel void broken(__global float *x) { x[0] = undeclared_thing; }\n", f);
        fclose(f);
    }
    setenv("CLUNET_KERNEL_DIR", dir, 1);
    clunet_settings s;
    clunet_default_settings(&s);
    s.device = spec;
    s.use_cache = 0;
    clunet_context *ctx;
    if (clunet_context_create(&s, &ctx) == CLUNET_OK) {
        cl_kernel k;
        clunet_status st = cn_kernel(ctx, "broken.cl", "broken", NULL, &k);
        CHECK(st == CLUNET_ERR_BUILD, "a broken kernel fails to build (status %d)", st);
        CHECK(strstr(clunet_last_error(), "broken.cl") && strstr(clunet_last_error(), "undeclared_thing"),
              "the build error names the file and carries the build log");
        st = cn_kernel(ctx, "missing.cl", "k", NULL, &k);
        CHECK(st == CLUNET_ERR_IO && strstr(clunet_last_error(), "missing.cl"), "a missing file is named");
        clunet_context_destroy(ctx);
    }
    unsetenv("CLUNET_KERNEL_DIR");
    unlink(path);
    snprintf(path, sizeof path, "%s/common.cl", dir);
    unlink(path);
    rmdir(dir);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int main(void)
{
    /* The cache tests empty and damage the cache: never the user's own. */
    char scratch[] = "/tmp/clunet-cache-test-XXXXXX";
    if (!mkdtemp(scratch)) {
        printf("FAIL: mkdtemp: cannot make a scratch cache directory\n0 passed, 1 failed\n");
        return 1;
    }
    setenv("XDG_CACHE_HOME", scratch, 1);
    test_sha256();
    test_status_strings();
    const clunet_device_info *devs;
    int n = 0;
    if (clunet_devices(&devs, &n) != CLUNET_OK) {
        printf("FAIL: no OpenCL device: %s\n", clunet_last_error());
        printf("%d passed, %d failed\n", passed, failed + 1);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        CHECK(devs[i].name[0] && devs[i].compute_units > 0 && devs[i].global_mem_bytes > 0 &&
                  devs[i].max_work_group_size > 0 && devs[i].max_alloc_bytes > 0,
              "device %d (%s) has sane capabilities", i, devs[i].name);
    }
    test_selection(n, devs);
    for (int i = 0; i < n; i++) {
        char spec[16];
        snprintf(spec, sizeof spec, "%d", i);
        printf("device %d: %s\n", i, devs[i].name);
        test_memory(spec);
        test_build_failure(spec);
        test_cache(spec);
        test_tune(spec);
        test_tune_busy(spec);
    }
    test_cpu_counters();
    /* PoCL keeps its own cache under XDG_CACHE_HOME too: remove the whole tree. */
    nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_summary();
}
