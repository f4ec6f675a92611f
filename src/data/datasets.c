/*
 * datasets.c - parses datasets.txt (its format is documented in the file's
 * own header comment) into a cn_catalog. Every error names SOURCE:LINE.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "common/files.h"
#include "data/datasets.h"

/* Longest file datasets.txt may be: it is a small text file. */
#define CATALOG_MAX_BYTES (1 << 20)

const char *cn_split_name(cn_split split)
{
    switch (split) {
    case CN_SPLIT_TRAIN: return "train";
    case CN_SPLIT_TEST: return "test";
    case CN_SPLIT_AUTO: return "auto";
    }
    return "?";
}

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------- */

typedef struct parser {
    const char *source;
    int line;
    cn_catalog *cat;
} parser;

static clunet_status bad(const parser *p, const char *what, const char *detail)
{
    return cn_fail(CLUNET_ERR_FORMAT, "%s:%d: %s%s%s", p->source, p->line, what,
                   detail ? ": " : "", detail ? detail : "");
}

static clunet_status no_memory(void)
{
    return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of memory while reading datasets.txt");
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Appends a copy of s to a growing array of strings. */
static clunet_status push_str(char ***arr, int *n, const char *s)
{
    char **grown = realloc(*arr, (size_t)(*n + 1) * sizeof **arr);
    if (!grown) return no_memory();
    *arr = grown;
    if (!(grown[*n] = dup_str(s))) return no_memory();
    (*n)++;
    return CLUNET_OK;
}

/* Parses a whole decimal number in [lo, hi]. */
static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

static int valid_name(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-') return 0;
    return 1;
}

/* '{id}' exactly once, in the last path component, with no '..' component. */
static const char *pattern_problem(const char *pat)
{
    const char *id = strstr(pat, "{id}");
    if (!id) return "has no {id}";
    if (strstr(id + 4, "{id}")) return "has {id} more than once";
    if (strchr(id, '/')) return "has {id} outside the file name";
    if (pat[0] == '/') return "must be relative to the dataset directory";
    if (!strncmp(pat, "../", 3) || strstr(pat, "/../")) return "must not leave the dataset directory";
    return NULL;
}

/* ---------------------------------------------------------------------------
 * Statements
 * ------------------------------------------------------------------------- */

static cn_dataset *current(parser *p) { return p->cat->count ? &p->cat->sets[p->cat->count - 1] : NULL; }

static cn_dataset_group *current_group(parser *p)
{
    cn_dataset *d = current(p);
    return d && d->n_groups ? &d->groups[d->n_groups - 1] : NULL;
}

static clunet_status start_dataset(parser *p, const char *name)
{
    if (!valid_name(name)) return bad(p, "a dataset name is letters, digits, '_' and '-'", name);
    if (cn_catalog_find(p->cat, name)) return bad(p, "dataset defined twice", name);
    cn_dataset *grown = realloc(p->cat->sets, (size_t)(p->cat->count + 1) * sizeof *grown);
    if (!grown) return no_memory();
    p->cat->sets = grown;
    cn_dataset *d = &grown[p->cat->count++];
    memset(d, 0, sizeof *d);
    d->train_first = -1;
    if (!(d->name = dup_str(name))) return no_memory();
    return CLUNET_OK;
}

static clunet_status start_group(parser *p, cn_dataset *d, const char *value)
{
    cn_split split;
    if (!strcmp(value, "train")) split = CN_SPLIT_TRAIN;
    else if (!strcmp(value, "test")) split = CN_SPLIT_TEST;
    else if (!strcmp(value, "auto")) split = CN_SPLIT_AUTO;
    else return bad(p, "group is train, test or auto", value);
    cn_dataset_group *grown = realloc(d->groups, (size_t)(d->n_groups + 1) * sizeof *grown);
    if (!grown) return no_memory();
    d->groups = grown;
    cn_dataset_group *g = &grown[d->n_groups++];
    memset(g, 0, sizeof *g);
    g->split = split;
    return CLUNET_OK;
}

static clunet_status set_once(parser *p, char **field, const char *key, const char *value)
{
    if (*field) return bad(p, "given twice in this dataset or group", key);
    if (!(*field = dup_str(value))) return no_memory();
    return CLUNET_OK;
}

static clunet_status set_pattern(parser *p, char **field, const char *key, const char *value)
{
    const char *problem = pattern_problem(value);
    if (problem) {
        char what[64];
        snprintf(what, sizeof what, "%s pattern %s", key, problem);
        return bad(p, what, value);
    }
    return set_once(p, field, key, value);
}

static int is_hex64(const char *s)
{
    if (strlen(s) != 64) return 0;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s)) return 0;
    return 1;
}

/* archive FILE URL [sha256=HEX] */
static clunet_status add_archive(parser *p, cn_dataset *d, char *value)
{
    char *words[4], *save;
    int n = 0;
    for (char *w = strtok_r(value, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        if (n == 3) return bad(p, "archive takes FILE URL [sha256=HEX]", NULL);
        words[n++] = w;
    }
    if (n < 2) return bad(p, "archive takes FILE URL [sha256=HEX]", NULL);
    const char *hash = NULL;
    if (n == 3) {
        if (strncmp(words[2], "sha256=", 7) || !is_hex64(words[2] + 7))
            return bad(p, "expected sha256= and 64 lowercase hex digits", words[2]);
        hash = words[2] + 7;
    }
    cn_archive *grown = realloc(d->archives, (size_t)(d->n_archives + 1) * sizeof *grown);
    if (!grown) return no_memory();
    d->archives = grown;
    cn_archive *a = &grown[d->n_archives++];
    a->file = dup_str(words[0]);
    a->url = dup_str(words[1]);
    a->sha256 = hash ? dup_str(hash) : NULL;
    if (!a->file || !a->url || (hash && !a->sha256)) return no_memory();
    return CLUNET_OK;
}

/* train first N | train ids ID... */
static clunet_status set_train_rule(parser *p, cn_dataset *d, char *value)
{
    if (d->train_first >= 0 || d->n_train_ids) return bad(p, "train given twice", NULL);
    char *save;
    char *kind = strtok_r(value, " \t", &save);
    char *rest = strtok_r(NULL, "", &save);
    while (rest && isspace((unsigned char)*rest)) rest++;
    if (kind && rest && !strcmp(kind, "first")) {
        if (!parse_int(rest, 1, 1000000, &d->train_first)) return bad(p, "train first takes a positive count", rest);
        return CLUNET_OK;
    }
    if (kind && rest && !strcmp(kind, "ids")) {
        for (char *w = strtok_r(rest, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
            CN_TRY(push_str(&d->train_ids, &d->n_train_ids, w));
        return CLUNET_OK;
    }
    return bad(p, "train takes `first N` or `ids ID ...`", NULL);
}

static clunet_status group_statement(parser *p, cn_dataset_group *g, const char *key, char *value)
{
    if (!strcmp(key, "image")) return set_pattern(p, &g->image, key, value);
    if (!strcmp(key, "label")) return set_pattern(p, &g->label, key, value);
    if (!strcmp(key, "mask")) return set_pattern(p, &g->mask, key, value);
    if (strcmp(value, "optional")) return bad(p, "expected `labels optional`", value);
    g->labels_optional = 1;
    return CLUNET_OK;
}

static clunet_status statement(parser *p, const char *key, char *value)
{
    if (!strcmp(key, "dataset")) return start_dataset(p, value);
    cn_dataset *d = current(p);
    if (!d) return bad(p, "expected `dataset NAME` before", key);
    if (!strcmp(key, "image") || !strcmp(key, "label") || !strcmp(key, "mask") || !strcmp(key, "labels")) {
        cn_dataset_group *g = current_group(p);
        if (!g) return bad(p, "expected `group SPLIT` before", key);
        return group_statement(p, g, key, value);
    }
    if (!strcmp(key, "group")) return start_group(p, d, value);
    if (!strcmp(key, "url")) return push_str(&d->urls, &d->n_urls, value);
    if (!strcmp(key, "note")) return push_str(&d->notes, &d->n_notes, value);
    if (!strcmp(key, "license")) return set_once(p, &d->license, key, value);
    if (!strcmp(key, "citation")) return set_once(p, &d->citation, key, value);
    if (!strcmp(key, "ground_truth")) return set_once(p, &d->ground_truth, key, value);
    if (!strcmp(key, "archive")) return add_archive(p, d, value);
    if (!strcmp(key, "train")) return set_train_rule(p, d, value);
    if (!strcmp(key, "subject")) {
        if (d->subject_first) return bad(p, "subject given twice", NULL);
        if (strncmp(value, "first", 5) || !isspace((unsigned char)value[5]) ||
            !parse_int(value + 6, 1, 1000, &d->subject_first))
            return bad(p, "subject takes `first N`", value);
        return CLUNET_OK;
    }
    if (!strcmp(key, "count")) {
        if (!parse_int(value, 1, 10000000, &d->count)) return bad(p, "count takes a positive number", value);
        return CLUNET_OK;
    }
    if (!strcmp(key, "size")) {
        int w, h;
        char tail;
        if (sscanf(value, "%dx%d%c", &w, &h, &tail) != 2 || w < 1 || h < 1 || w > 100000 || h > 100000)
            return bad(p, "size takes WxH", value);
        d->width = w;
        d->height = h;
        return CLUNET_OK;
    }
    return bad(p, "unknown key", key);
}

/* What a finished dataset must have; p->line points at its `dataset` line. */
static clunet_status check_dataset(parser *p, const cn_dataset *d)
{
    char what[160];
    if (!d->n_groups) {
        snprintf(what, sizeof what, "dataset %s has no group", d->name);
        return bad(p, what, NULL);
    }
    for (int i = 0; i < d->n_groups; i++) {
        const cn_dataset_group *g = &d->groups[i];
        if (!g->image) {
            snprintf(what, sizeof what, "dataset %s: group %d has no image pattern", d->name, i + 1);
            return bad(p, what, NULL);
        }
        if (g->split == CN_SPLIT_AUTO && d->train_first < 0 && !d->n_train_ids) {
            snprintf(what, sizeof what, "dataset %s: group auto needs a `train` rule", d->name);
            return bad(p, what, NULL);
        }
    }
    return CLUNET_OK;
}

/* ---------------------------------------------------------------------------
 * Whole file
 * ------------------------------------------------------------------------- */

static clunet_status parse_lines(parser *p, char *text)
{
    int dataset_line = 0;
    char *save = NULL;
    p->line = 0;
    /* Count lines ourselves: strtok_r would merge empty lines. */
    for (char *line = text; line; line = save) {
        p->line++;
        char *nl = strchr(line, '\n');
        save = nl && nl[1] ? nl + 1 : NULL; /* no phantom line after the final newline */
        if (nl) *nl = '\0';
        size_t n = strlen(line);
        while (n && isspace((unsigned char)line[n - 1])) line[--n] = '\0';
        while (isspace((unsigned char)*line)) line++;
        if (!*line || *line == '#') continue;
        char *value = line;
        while (*value && !isspace((unsigned char)*value)) value++;
        if (*value) *value++ = '\0';
        while (isspace((unsigned char)*value)) value++;
        if (!*value) return bad(p, "no value for", line);
        if (!strcmp(line, "dataset") && p->cat->count) {
            int here = p->line;
            p->line = dataset_line;
            CN_TRY(check_dataset(p, current(p)));
            p->line = here;
        }
        if (!strcmp(line, "dataset")) dataset_line = p->line;
        CN_TRY(statement(p, line, value));
    }
    if (!p->cat->count) return bad(p, "no dataset defined", NULL);
    p->line = dataset_line;
    return check_dataset(p, current(p));
}

clunet_status cn_catalog_parse(const char *text, const char *source, cn_catalog *cat)
{
    memset(cat, 0, sizeof *cat);
    char *copy = dup_str(text);
    if (!copy) return no_memory();
    parser p = {source, 0, cat};
    clunet_status st = parse_lines(&p, copy);
    free(copy);
    if (st != CLUNET_OK) cn_catalog_free(cat);
    return st;
}

clunet_status cn_catalog_load(const char *path, cn_catalog *cat)
{
    memset(cat, 0, sizeof *cat);
    if (!path) return cn_catalog_parse(cn_datasets_txt_embedded, "datasets.txt (built in)", cat);
    FILE *f;
    CN_TRY(cn_open_read(path, &f));
    char *text = malloc(CATALOG_MAX_BYTES + 1);
    if (!text) {
        fclose(f);
        return no_memory();
    }
    size_t n = fread(text, 1, CATALOG_MAX_BYTES + 1, f);
    int failed = ferror(f), why = errno;
    fclose(f);
    clunet_status st;
    if (failed) st = cn_fail(CLUNET_ERR_IO, "%s: %s", path, strerror(why));
    else if (n > CATALOG_MAX_BYTES) st = cn_fail(CLUNET_ERR_FORMAT, "%s: larger than %d bytes", path, CATALOG_MAX_BYTES);
    else if (memchr(text, '\0', n)) st = cn_fail(CLUNET_ERR_FORMAT, "%s: not a text file (contains NUL bytes)", path);
    else {
        text[n] = '\0';
        st = cn_catalog_parse(text, path, cat);
    }
    free(text);
    return st;
}

static void free_strs(char **arr, int n)
{
    for (int i = 0; i < n; i++) free(arr[i]);
    free(arr);
}

void cn_catalog_free(cn_catalog *cat)
{
    for (int i = 0; i < cat->count; i++) {
        cn_dataset *d = &cat->sets[i];
        free(d->name);
        free(d->license);
        free(d->citation);
        free(d->ground_truth);
        free_strs(d->urls, d->n_urls);
        free_strs(d->notes, d->n_notes);
        free_strs(d->train_ids, d->n_train_ids);
        for (int a = 0; a < d->n_archives; a++) {
            free(d->archives[a].file);
            free(d->archives[a].url);
            free(d->archives[a].sha256);
        }
        free(d->archives);
        for (int g = 0; g < d->n_groups; g++) {
            free(d->groups[g].image);
            free(d->groups[g].label);
            free(d->groups[g].mask);
        }
        free(d->groups);
    }
    free(cat->sets);
    memset(cat, 0, sizeof *cat);
}

const cn_dataset *cn_catalog_find(const cn_catalog *cat, const char *name)
{
    for (int i = 0; i < cat->count; i++)
        if (!strcasecmp(cat->sets[i].name, name)) return &cat->sets[i];
    return NULL;
}
