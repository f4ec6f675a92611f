/* util.c - small helpers shared by the subcommands. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/clock.h"

int cli_fail(const char *context)
{
    fprintf(stderr, "clunet: %s: %s\n", context, clunet_last_error());
    return 1;
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

int cli_parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

int cli_parse_views(const char *s, int *out)
{
    int v;
    if (!cli_parse_int(s, 1, 8, &v) || (v != 1 && v != 4 && v != 8)) return 0;
    *out = v;
    return 1;
}

int cli_parse_scales(const char *s, float *out, int max, int *n)
{
    int count = 0;
    for (const char *p = s;; p++) {
        char *end;
        errno = 0;
        float v = strtof(p, &end);
        if (errno || end == p || !(v >= 0.25f && v <= 4.0f) || count == max) return 0;
        out[count++] = v;
        if (!*end) break;
        if (*end != ',') return 0;
        p = end;
    }
    *n = count;
    return 1;
}

int cli_tta_option(cli_tta *t, const char *a, const char *v)
{
    int ok;
    if (!strcmp(a, "--views")) ok = cli_parse_views(v, &t->views);
    else if (!strcmp(a, "--scales")) ok = cli_parse_scales(v, t->scales, CN_INFER_MAX_SCALES, &t->nscales);
    else return 0;
    return ok ? 1 : -1;
}

void cli_tta_apply(const cli_tta *t, cn_infer *inf)
{
    inf->views = t->views;
    inf->nscales = t->nscales;
    memcpy(inf->scales, t->scales, sizeof inf->scales);
}

/* An image that takes long (HRF's 3504 x 2336 at 8 views: minutes on a CPU) reports its tiles this often. */
#define INFER_PROGRESS_SECONDS 10.0

typedef struct infer_clock {
    double start, last;
} infer_clock;

static void infer_progress(void *user, const char *name, int done, int total)
{
    infer_clock *c = user;
    double now = cn_seconds();
    if (done == 0) c->start = c->last = now;
    if (done == 0 || done >= total || now - c->last < INFER_PROGRESS_SECONDS) return;
    c->last = now;
    double took = now - c->start;
    fprintf(stderr, "%s: %d of %d tiles (%d%%) in %.0f s, about %.0f s left\n", name, done, total,
            (int)(100.0 * done / total), took, took * (total - done) / done);
}

void cli_infer_progress(cn_infer *inf)
{
    static infer_clock clock;
    inf->progress = infer_progress;
    inf->progress_user = &clock;
}

int cli_bad_value(const char *option, const char *value)
{
    fprintf(stderr, "clunet: %s %s: not a valid value (see --help)\n", option, value);
    return 2;
}

int cli_out_dir(const char *command, const char *dir, int *created)
{
    struct stat st;
    *created = mkdir(dir, 0755) == 0;
    if (!*created && errno != EEXIST) {
        fprintf(stderr, "clunet: %s: --out %s: cannot create: %s\n", command, dir, strerror(errno));
        return 1;
    }
    if (!*created && (stat(dir, &st) || !S_ISDIR(st.st_mode))) {
        fprintf(stderr, "clunet: %s: --out %s: exists and is not a directory\n", command, dir);
        return 1;
    }
    if (access(dir, W_OK | X_OK)) { /* before any work: not after minutes of it, once per image */
        fprintf(stderr, "clunet: %s: --out %s: cannot write into it: %s\n", command, dir, strerror(errno));
        return 1;
    }
    return 0;
}
