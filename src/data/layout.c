/*
 * layout.c - finds a dataset's files under a directory from the patterns of
 * its datasets.txt entry. File names match without regard to case (HRF mixes
 * .jpg and .JPG) and NAME also matches NAME.gz (STARE ships gzipped PPMs).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/error.h"
#include "data/datasets.h"

static clunet_status no_memory(void)
{
    return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of memory while listing a dataset");
}

/* malloc'ed "a/b"; a may be "" */
static char *join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 2);
    if (!s) return NULL;
    memcpy(s, a, na);
    size_t k = na;
    if (na && a[na - 1] != '/') s[k++] = '/';
    memcpy(s + k, b, nb + 1);
    return s;
}

/* Replaces the pattern's {id}; malloc'ed. */
static char *fill(const char *pattern, const char *id)
{
    const char *at = strstr(pattern, "{id}");
    size_t head = (size_t)(at - pattern), nid = strlen(id), tail = strlen(at + 4);
    char *s = malloc(head + nid + tail + 1);
    if (!s) return NULL;
    memcpy(s, pattern, head);
    memcpy(s + head, id, nid);
    memcpy(s + head + nid, at + 4, tail + 1);
    return s;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* "2" < "10", otherwise case-insensitive. */
static int natural_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0') a++;
            while (*b == '0') b++;
            size_t na = 0, nb = 0;
            while (isdigit((unsigned char)a[na])) na++;
            while (isdigit((unsigned char)b[nb])) nb++;
            if (na != nb) return na < nb ? -1 : 1;
            int c = strncmp(a, b, na);
            if (c) return c;
            a += na;
            b += nb;
            continue;
        }
        int ca = tolower((unsigned char)*a), cb = tolower((unsigned char)*b);
        if (ca != cb) return ca - cb;
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

static int cmp_ids(const void *x, const void *y)
{
    int c = natural_cmp(*(char *const *)x, *(char *const *)y);
    return c ? c : strcmp(*(char *const *)x, *(char *const *)y);
}

/* Does name equal want, or want + ".gz", ignoring case? */
static int name_matches(const char *name, const char *want)
{
    size_t n = strlen(want);
    return !strncasecmp(name, want, n) && (!name[n] || !strcasecmp(name + n, ".gz"));
}

/*
 * The existing file for relative path rel under root (see the header comment
 * for how names match), malloc'ed in *found; *found is NULL when there is none.
 * *dir_missing says whether rel's directory itself is missing.
 */
static clunet_status resolve(const char *root, const char *rel, char **found, int *dir_missing)
{
    *found = NULL;
    *dir_missing = 0;
    char *exact = join(root, rel);
    if (!exact) return no_memory();
    if (is_file(exact)) {
        *found = exact;
        return CLUNET_OK;
    }
    const char *slash = strrchr(exact, '/');
    size_t dlen = slash ? (size_t)(slash - exact) : 0;
    char *dir = malloc(dlen + 2);
    if (!dir) {
        free(exact);
        return no_memory();
    }
    memcpy(dir, exact, dlen);
    dir[dlen] = '\0';
    if (!dlen) strcpy(dir, slash ? "/" : ".");
    const char *want = slash ? slash + 1 : exact;
    DIR *d = opendir(dir);
    if (!d) *dir_missing = 1;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!name_matches(e->d_name, want)) continue;
        char *path = join(dir, e->d_name);
        if (path && is_file(path)) {
            *found = path;
            break;
        }
        free(path);
    }
    if (d) closedir(d);
    free(dir);
    free(exact);
    return CLUNET_OK;
}

/*
 * An entry named like an image must be a file to read: a folder, a FIFO or a broken link there is refused, naming
 * it, rather than found missing later under its id alone.
 */
static clunet_status check_listed(const char *dir, const char *name)
{
    char *path = join(dir, name);
    if (!path) return no_memory();
    struct stat sb;
    clunet_status st = CLUNET_OK;
    if (stat(path, &sb) != 0)
        st = cn_fail(CLUNET_ERR_IO, "%s: %s", path, errno == ENOENT ? "a dangling symbolic link" : strerror(errno));
    else if (!S_ISREG(sb.st_mode)) st = cn_fail(CLUNET_ERR_IO, "%s: not a regular file", path);
    free(path);
    return st;
}

/* ---------------------------------------------------------------------------
 * One group
 * ------------------------------------------------------------------------- */

typedef struct id_list {
    char **ids;
    int count;
} id_list;

static void free_ids(id_list *l)
{
    for (int i = 0; i < l->count; i++) free(l->ids[i]);
    free(l->ids);
}

/* The ids of every file in the image pattern's directory that fits it. */
static clunet_status list_ids(const cn_dataset *set, const char *root, const char *pattern, id_list *out)
{
    memset(out, 0, sizeof *out);
    const char *at = strstr(pattern, "{id}");
    const char *slash = strrchr(pattern, '/');
    size_t dlen = slash ? (size_t)(slash - pattern) : 0;
    const char *prefix = slash ? slash + 1 : pattern;
    size_t nprefix = (size_t)(at - prefix);
    const char *suffix = at + 4;
    size_t nsuffix = strlen(suffix);

    char *rel = malloc(dlen + 1);
    if (!rel) return no_memory();
    memcpy(rel, pattern, dlen);
    rel[dlen] = '\0';
    char *dir = join(root, rel);
    free(rel);
    if (!dir) return no_memory();
    DIR *d = opendir(dir);
    if (!d) {
        clunet_status st = cn_fail(CLUNET_ERR_IO, "%s: %s (%s images are %s)", dir, strerror(errno), set->name, pattern);
        free(dir);
        return st;
    }
    clunet_status st = CLUNET_OK;
    for (struct dirent *e; st == CLUNET_OK && (e = readdir(d));) {
        const char *name = e->d_name;
        size_t n = strlen(name);
        if (!strcmp(name, ".") || !strcmp(name, "..")) continue; /* a pattern of {id} alone fits them */
        if (n > 3 && !strcasecmp(name + n - 3, ".gz")) n -= 3;
        if (n <= nprefix + nsuffix || strncasecmp(name, prefix, nprefix) ||
            strncasecmp(name + n - nsuffix, suffix, nsuffix))
            continue;
        if ((st = check_listed(dir, name)) != CLUNET_OK) break;
        size_t nid = n - nprefix - nsuffix;
        char **grown = realloc(out->ids, (size_t)(out->count + 1) * sizeof *grown);
        char *id = malloc(nid + 1);
        if (grown) out->ids = grown;
        if (!grown || !id) {
            free(id);
            st = no_memory();
            break;
        }
        memcpy(id, name + nprefix, nid);
        id[nid] = '\0';
        out->ids[out->count++] = id;
    }
    closedir(d);
    free(dir);
    if (st != CLUNET_OK) {
        free_ids(out);
        return st;
    }
    if (out->count > 1) qsort(out->ids, (size_t)out->count, sizeof *out->ids, cmp_ids);
    /* NAME and NAME.gz side by side give the same id twice. */
    int k = 0;
    for (int i = 0; i < out->count; i++) {
        if (k && !strcasecmp(out->ids[k - 1], out->ids[i])) free(out->ids[i]);
        else out->ids[k++] = out->ids[i];
    }
    out->count = k;
    return CLUNET_OK;
}

static cn_split auto_split(const cn_dataset *set, const char *id, int position)
{
    if (set->train_first >= 0) return position < set->train_first ? CN_SPLIT_TRAIN : CN_SPLIT_TEST;
    for (int i = 0; i < set->n_train_ids; i++)
        if (!strcasecmp(set->train_ids[i], id)) return CN_SPLIT_TRAIN;
    return CN_SPLIT_TEST;
}

/* Finds the file a label or mask pattern names for an id; *path stays NULL when optional and absent. */
static clunet_status companion(const char *root, const char *pattern, const char *id, const char *what,
                               const char *image, int optional_dir, char **path)
{
    char *rel = fill(pattern, id);
    if (!rel) return no_memory();
    int dir_missing;
    clunet_status st = resolve(root, rel, path, &dir_missing);
    if (st == CLUNET_OK && !*path && !(optional_dir && dir_missing)) {
        char *full = join(root, rel);
        struct stat sb; /* there but no file to read (a folder, a broken link): say what it is */
        if (full && lstat(full, &sb) == 0) st = check_listed(root, rel);
        if (st == CLUNET_OK) st = cn_fail(CLUNET_ERR_IO, "missing %s %s (for image %s)", what, full ? full : rel, image);
        free(full);
    }
    free(rel);
    return st;
}

static clunet_status scan_group(const cn_dataset *set, const cn_dataset_group *g, const char *root,
                                cn_sample_list *list)
{
    id_list ids;
    CN_TRY(list_ids(set, root, g->image, &ids));
    if (!ids.count) return cn_fail(CLUNET_ERR_IO, "%s: no %s images named like %s", root, set->name, g->image);
    cn_sample *grown = realloc(list->items, (size_t)(list->count + ids.count + 1) * sizeof *grown);
    if (!grown) {
        free_ids(&ids);
        return no_memory();
    }
    list->items = grown;
    clunet_status st = CLUNET_OK;
    for (int i = 0; i < ids.count && st == CLUNET_OK; i++) {
        cn_sample *s = &list->items[list->count];
        memset(s, 0, sizeof *s);
        s->id = ids.ids[i];
        ids.ids[i] = NULL;
        s->subject_len = (int)strlen(s->id);
        if (set->subject_first && set->subject_first < s->subject_len) s->subject_len = set->subject_first;
        s->split = g->split == CN_SPLIT_AUTO ? auto_split(set, s->id, i) : g->split;
        list->count++;
        int dir_missing;
        char *rel = fill(g->image, s->id);
        if (!rel) {
            st = no_memory();
            break;
        }
        st = resolve(root, rel, &s->image, &dir_missing);
        free(rel);
        if (st == CLUNET_OK && !s->image) st = cn_fail(CLUNET_ERR_INTERNAL, "listed image %s vanished", s->id);
        if (st == CLUNET_OK && g->label)
            st = companion(root, g->label, s->id, "label", s->image, g->labels_optional, &s->label);
        if (st == CLUNET_OK && g->mask) st = companion(root, g->mask, s->id, "FOV mask", s->image, 0, &s->mask);
    }
    free_ids(&ids);
    return st;
}

clunet_status cn_dataset_scan(const cn_dataset *set, const char *root, cn_sample_list *list)
{
    memset(list, 0, sizeof *list);
    if (!is_dir(root)) return cn_fail(CLUNET_ERR_IO, "%s: not a directory", root);
    clunet_status st = CLUNET_OK;
    for (int i = 0; i < set->n_groups && st == CLUNET_OK; i++) st = scan_group(set, &set->groups[i], root, list);
    /* a mistyped id would quietly move its image to the test split */
    for (int k = 0; k < set->n_train_ids && st == CLUNET_OK; k++) {
        int found = 0;
        for (int i = 0; i < list->count && !found; i++) found = !strcasecmp(list->items[i].id, set->train_ids[k]);
        if (!found)
            st = cn_fail(CLUNET_ERR_IO, "%s: dataset %s's `train ids` names %s, which matches no image here", root,
                         set->name, set->train_ids[k]);
    }
    if (st == CLUNET_OK && set->count && list->count != set->count)
        st = cn_fail(CLUNET_ERR_IO, "%s: found %d %s images, expected %d (images are %s%s%s)", root, list->count,
                     set->name, set->count, set->groups[0].image, set->n_groups > 1 ? ", " : "",
                     set->n_groups > 1 ? set->groups[1].image : "");
    if (st != CLUNET_OK) cn_sample_list_free(list);
    return st;
}

void cn_sample_list_free(cn_sample_list *list)
{
    for (int i = 0; i < list->count; i++) {
        free(list->items[i].id);
        free(list->items[i].image);
        free(list->items[i].label);
        free(list->items[i].mask);
    }
    free(list->items);
    memset(list, 0, sizeof *list);
}
