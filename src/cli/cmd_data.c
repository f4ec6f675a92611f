/* cmd_data.c - `clunet data`: check a dataset or an image, list the known datasets, show a FOV mask. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "common/error.h"
#include "common/files.h"
#include "data/datasets.h"
#include "data/fov.h"
#include "data/pipeline.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: clunet data check DIR --dataset NAME [--json] [--datasets FILE]\n"
            "       clunet data check IMAGE [--json]\n"
            "       clunet data list [--datasets FILE]\n"
            "       clunet data fov IMAGE OUT.png\n\n"
            "check   with DIR: finds every image, label and FOV mask of dataset NAME as its\n"
            "        official archive unpacks, decodes them all and checks that sizes agree\n"
            "        and labels are binary, and that every field of view holds pixels; prints\n"
            "        a line per image and a summary, or a line on stderr for each problem\n"
            "        found and exit status 1. With IMAGE: decodes one file.\n"
            "        --json prints {\"dataset\", \"images\": [{\"image\", \"split\", \"width\",\n"
            "        \"height\", \"channels\", \"mean\" (per channel, 0-255), \"vessel_fraction\",\n"
            "        \"fov_fraction\"}]} instead (fractions of all pixels).\n"
            "list    the datasets clunet knows: download pages, terms, citation, layout.\n"
            "fov     writes the field-of-view mask clunet derives from IMAGE.\n\n"
            "--datasets FILE reads FILE instead of the datasets.txt built into clunet.\n");
}

/* ---------------------------------------------------------------------------
 * Per-image statistics
 * ------------------------------------------------------------------------- */

typedef struct stats {
    const char *image; /* file name only */
    const char *split;
    int width, height, channels, bits;
    double mean[3];
    double vessel_fraction, fov_fraction; /* -1 when there is no label */
    int has_label, mask_from_file;
} stats;

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void image_stats(const cn_image *img, stats *st)
{
    size_t n = (size_t)img->width * img->height;
    st->width = img->width, st->height = img->height, st->channels = img->channels, st->bits = img->bits;
    for (int k = 0; k < img->channels && k < 3; k++) {
        double sum = 0;
        for (size_t i = 0; i < n; i++) sum += img->data[i * img->channels + k];
        st->mean[k] = sum / (double)n;
    }
}

static double mask_fraction(const cn_image *mask)
{
    size_t n = (size_t)mask->width * mask->height, on = 0;
    for (size_t i = 0; i < n; i++) on += mask->data[i] > 0;
    return (double)on / (double)n;
}

/* Decodes one sample and fills st; errors name the file. */
static clunet_status check_sample(const cn_sample *s, stats *st)
{
    cn_image img, lab = {0}, mask = {0};
    memset(st, 0, sizeof *st);
    st->image = base_name(s->image);
    st->split = cn_split_name(s->split);
    st->vessel_fraction = -1;
    CN_TRY(cn_image_load(s->image, &img));
    clunet_status rc = CLUNET_OK;
    image_stats(&img, st);
    if (img.channels != 1 && img.channels != 3)
        rc = cn_fail(CLUNET_ERR_FORMAT, "%s: %d channels (expected 1 or 3)", s->image, img.channels);
    if (rc == CLUNET_OK && s->label) {
        rc = cn_image_load(s->label, &lab);
        if (rc == CLUNET_OK) rc = cn_label_check(&lab, s->label, &img, st->image, &st->vessel_fraction);
        st->has_label = 1;
    }
    if (rc == CLUNET_OK) rc = cn_fov_get(s->mask, s->image, &img, &mask);
    if (rc == CLUNET_OK) st->fov_fraction = mask_fraction(&mask);
    st->mask_from_file = s->mask != NULL;
    cn_image_free(&img);
    cn_image_free(&lab);
    cn_image_free(&mask);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------------- */

static void print_line(const stats *st)
{
    printf("%-22s %-5s %4dx%-4d x%d  mean", st->image, st->split, st->width, st->height, st->channels);
    for (int k = 0; k < st->channels && k < 3; k++) printf(" %6.1f", st->mean[k]);
    if (st->vessel_fraction >= 0) printf("  vessels %.3f", st->vessel_fraction);
    else printf("  vessels  -   ");
    printf("  fov %.3f%s\n", st->fov_fraction, st->mask_from_file ? "" : " (derived)");
}

static void print_json(const char *dataset, const stats *all, int count)
{
    printf("{\"dataset\": ");
    if (dataset) cli_json_string(stdout, dataset);
    else printf("null");
    printf(", \"images\": [");
    for (int i = 0; i < count; i++) {
        const stats *st = &all[i];
        printf("%s\n  {\"image\": ", i ? "," : "");
        cli_json_string(stdout, st->image);
        printf(", \"split\": ");
        if (st->split) cli_json_string(stdout, st->split);
        else printf("null");
        printf(", \"width\": %d, \"height\": %d, \"channels\": %d, \"mean\": [", st->width, st->height, st->channels);
        for (int k = 0; k < st->channels && k < 3; k++) printf("%s%.4f", k ? ", " : "", st->mean[k]);
        printf("], \"vessel_fraction\": ");
        if (st->vessel_fraction >= 0) printf("%.6f", st->vessel_fraction);
        else printf("null");
        printf(", \"fov_fraction\": %.6f}", st->fov_fraction);
    }
    printf("\n]}\n");
}

/* ---------------------------------------------------------------------------
 * Subcommands
 * ------------------------------------------------------------------------- */

static int check_image(const char *path, int json)
{
    cn_sample s = {.image = (char *)path, .split = CN_SPLIT_TRAIN};
    stats st;
    if (check_sample(&s, &st) != CLUNET_OK) return cli_fail("data check");
    st.split = NULL;
    if (json) {
        print_json(NULL, &st, 1);
        return 0;
    }
    printf("%s: %dx%d, %d channel%s, %d bits, mean", path, st.width, st.height, st.channels,
           st.channels > 1 ? "s" : "", st.bits);
    for (int k = 0; k < st.channels && k < 3; k++) printf(" %.1f", st.mean[k]);
    printf(", derived fov %.3f\n", st.fov_fraction);
    return 0;
}

static int check_dataset(const char *dir, const char *name, const char *catalog_path, int json)
{
    cn_catalog cat;
    if (cn_catalog_load(catalog_path, &cat) != CLUNET_OK) return cli_fail("data check");
    const cn_dataset *set = cn_catalog_find(&cat, name);
    if (!set) {
        fprintf(stderr, "clunet: data check: unknown dataset '%s' (known:", name);
        for (int i = 0; i < cat.count; i++) fprintf(stderr, " %s", cat.sets[i].name);
        fprintf(stderr, ")\n");
        cn_catalog_free(&cat);
        return 1;
    }
    cn_sample_list list;
    int rc = 0;
    stats *all = NULL;
    if (cn_dataset_scan(set, dir, &list) != CLUNET_OK) rc = cli_fail("data check");
    if (!rc && !(all = calloc((size_t)list.count + 1, sizeof *all))) {
        fprintf(stderr, "clunet: data check: out of memory\n");
        rc = 1;
    }
    /* every image is checked and every problem named (a line each on stderr), not only the first */
    int labels = 0, masks = 0, train = 0, bad = 0;
    for (int i = 0; !rc && i < list.count; i++) {
        if (check_sample(&list.items[i], &all[i]) != CLUNET_OK) {
            cli_fail("data check");
            bad++;
            continue;
        }
        labels += all[i].has_label;
        masks += all[i].mask_from_file;
        train += list.items[i].split == CN_SPLIT_TRAIN;
        if (!json) print_line(&all[i]);
    }
    if (bad) {
        if (!json) printf("%s: %d of %d images have problems (each named on stderr)\n", set->name, bad, list.count);
        rc = 1;
    }
    if (!rc && json) print_json(set->name, all, list.count);
    else if (!rc)
        printf("%s: %d images (%d train, %d test), %d labels, %d FOV masks%s; sizes agree, labels binary\n",
               set->name, list.count, train, list.count - train, labels, masks,
               masks < list.count ? " (the rest derived)" : "");
    free(all);
    cn_sample_list_free(&list);
    cn_catalog_free(&cat);
    return rc;
}

static int list_datasets(const char *catalog_path)
{
    cn_catalog cat;
    if (cn_catalog_load(catalog_path, &cat) != CLUNET_OK) return cli_fail("data list");
    for (int i = 0; i < cat.count; i++) {
        const cn_dataset *d = &cat.sets[i];
        printf("%s%s", i ? "\n" : "", d->name);
        if (d->count) printf(": %d images", d->count);
        if (d->width) printf(", %dx%d", d->width, d->height);
        printf("\n");
        for (int k = 0; k < d->n_urls; k++) printf("  url       %s\n", d->urls[k]);
        for (int k = 0; k < d->n_archives; k++)
            printf("  archive   %s %s%s%s\n", d->archives[k].file, d->archives[k].url,
                   d->archives[k].sha256 ? "\n            sha256 " : "", d->archives[k].sha256 ? d->archives[k].sha256 : "");
        if (d->license) printf("  terms     %s\n", d->license);
        if (d->citation) printf("  cite      %s\n", d->citation);
        if (d->ground_truth) printf("  truth     %s\n", d->ground_truth);
        for (int g = 0; g < d->n_groups; g++) {
            const cn_dataset_group *gr = &d->groups[g];
            printf("  %-9s %s | %s | %s\n", cn_split_name(gr->split), gr->image, gr->label ? gr->label : "-",
                   gr->mask ? gr->mask : "(FOV derived)");
        }
        if (d->subject_first)
            printf("  subject   the first %d characters of an id (validation holds out whole subjects)\n",
                   d->subject_first);
        for (int k = 0; k < d->n_notes; k++) printf("  note      %s\n", d->notes[k]);
    }
    cn_catalog_free(&cat);
    return 0;
}

static int write_fov(const char *in, const char *out)
{
    size_t len = strlen(out);
    if (len < 4 || strcasecmp(out + len - 4, ".png")) {
        fprintf(stderr, "clunet data fov: %s: the mask is written as PNG: name it OUT.png\n", out);
        return 2;
    }
    if (cn_same_file(in, out)) { /* the same file under another name, or through a link, would lose the photograph */
        fprintf(stderr, "clunet data fov: %s: is the input image itself: name another file\n", out);
        return 2;
    }
    cn_image img, mask;
    if (cn_image_load(in, &img) != CLUNET_OK) return cli_fail("data fov");
    clunet_status st = cn_fov_derive(&img, &mask);
    cn_image_free(&img);
    if (st == CLUNET_OK) {
        st = cn_image_write_png(out, &mask, 8);
        if (st == CLUNET_OK) printf("%s: FOV covers %.3f of the frame\n", out, mask_fraction(&mask));
        cn_image_free(&mask);
    }
    return st == CLUNET_OK ? 0 : cli_fail("data fov");
}

int cmd_data(int argc, char **argv)
{
    if (argc < 2 || cli_wants_help(argc, argv)) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1], *dataset = NULL, *catalog = NULL, *pos[2] = {NULL, NULL};
    int json = 0, npos = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--dataset") && i + 1 < argc) dataset = argv[++i];
        else if (!strcmp(argv[i], "--datasets") && i + 1 < argc) catalog = argv[++i];
        else if (argv[i][0] != '-' && npos < 2) pos[npos++] = argv[i];
        else {
            fprintf(stderr, "clunet data: unexpected argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    struct stat st;
    if (!strcmp(sub, "check") && npos == 1 && !dataset && stat(pos[0], &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "clunet: data check: %s is a directory: name its dataset with --dataset NAME\n", pos[0]);
        return 1;
    }
    if (!strcmp(sub, "check") && npos == 1)
        return dataset ? check_dataset(pos[0], dataset, catalog, json) : check_image(pos[0], json);
    if (!strcmp(sub, "list") && npos == 0) return list_datasets(catalog);
    if (!strcmp(sub, "fov") && npos == 2) return write_fov(pos[0], pos[1]);
    fprintf(stderr, "clunet data: expected `check DIR --dataset NAME`, `check IMAGE`, `list` or `fov IMAGE OUT` (see --help)\n");
    return 2;
}
