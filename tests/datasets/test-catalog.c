/*
 * test-catalog - datasets.txt (the source file and the embedded copy), parser
 * errors that name their line, and the loader on fake DRIVE, STARE and HRF
 * trees built in a temporary directory: right files, right splits, and
 * errors that name what is missing.
 *
 * usage: test-catalog SOURCE_ROOT/datasets.txt
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/datasets.h"

#include "check.h"

/* ---------------------------------------------------------------------------
 * The catalogue
 * ------------------------------------------------------------------------- */

static void test_catalog(const char *path)
{
    cn_catalog file, embedded;
    CHECK(cn_catalog_load(path, &file) == CLUNET_OK, "load %s", path);
    CHECK(cn_catalog_load(NULL, &embedded) == CLUNET_OK, "load the embedded copy");
    CHECK(file.count == embedded.count, "source and embedded copies differ (%d vs %d datasets)", file.count,
          embedded.count);
    static const struct {
        const char *name, *truth;
        int count, width, height;
    } want[] = {
        {"DRIVE", "1st_manual", 40, 565, 584},  {"CHASE_DB1", "1stHO", 28, 999, 960},
        {"STARE", "labels-ah", 20, 700, 605},   {"HRF", "manual1", 45, 3504, 2336},
        {"FIVES", "Ground truth", 800, 2048, 2048},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const cn_dataset *d = cn_catalog_find(&file, want[i].name);
        CHECK(d != NULL, "%s missing", want[i].name);
        if (!d) continue;
        CHECK(d->count == want[i].count, "%s count %d", d->name, d->count);
        CHECK(d->width == want[i].width && d->height == want[i].height, "%s size %dx%d", d->name, d->width,
              d->height);
        CHECK(d->ground_truth && !strncmp(d->ground_truth, want[i].truth, strlen(want[i].truth)),
              "%s ground truth '%s'", d->name, d->ground_truth ? d->ground_truth : "(none)");
        CHECK(d->license && d->citation && d->n_urls > 0, "%s lacks license, citation or url", d->name);
        CHECK(d->n_groups > 0 && d->groups[0].label, "%s has no labelled group", d->name);
    }
    CHECK(cn_catalog_find(&file, "chase_db1") != NULL, "names match without regard to case");
    const cn_dataset *hrf = cn_catalog_find(&file, "HRF");
    int hashed = 0;
    for (int i = 0; hrf && i < hrf->n_archives; i++)
        hashed |= hrf->archives[i].sha256 &&
                  !strcmp(hrf->archives[i].sha256, "a914d02cda161b7f33f25d0397c276d50e9a6cbc705e9b364a54f0adafed57e4");
    CHECK(hashed, "HRF all.zip sha256");
    cn_catalog_free(&file);
    cn_catalog_free(&embedded);
    CHECK(file.count == 0 && file.sets == NULL, "free leaves an empty catalogue");
}

static void test_parse_errors(void)
{
    static const struct {
        const char *text, *where, *what;
    } bad[] = {
        {"url http://x\n", "t.txt:1:", "dataset NAME"},
        {"dataset A\n  group train\n    image a/{id}.png\n  bogus 1\n", "t.txt:4:", "unknown key"},
        {"dataset A\n group train\n image a/b.png\n", "t.txt:3:", "no {id}"},
        {"dataset A\n group train\n image {id}/b.png\n", "t.txt:3:", "outside the file name"},
        {"dataset A\n group train\n image {id}{id}.png\n", "t.txt:3:", "more than once"},
        {"dataset A\n group train\n image ../{id}.png\n", "t.txt:3:", "leave"},
        {"dataset A\n group sideways\n", "t.txt:2:", "train, test or auto"},
        {"dataset A\n size 12\n", "t.txt:2:", "WxH"},
        {"dataset A\n count -3\n", "t.txt:2:", "positive"},
        {"dataset A\n archive f http://x sha256=abc\n", "t.txt:2:", "64 lowercase hex"},
        {"dataset A\n train second 3\n", "t.txt:2:", "first N"},
        {"dataset A\n subject first\n", "t.txt:2:", "subject takes"},
        {"dataset A\n subject first 0\n", "t.txt:2:", "subject takes"},
        {"dataset A\n subject last 2\n", "t.txt:2:", "subject takes"},
        {"dataset A\n subject first 2\n subject first 3\n", "t.txt:3:", "twice"},
        {"dataset A\n label {id}.png\n", "t.txt:2:", "group SPLIT"},
        {"dataset A\n group auto\n image {id}.png\n", "t.txt:1:", "train"},
        {"dataset A\n group train\n image {id}.png\ndataset a\n", "t.txt:4:", "twice"},
        {"dataset A\n group train\n image {id}.png\n image {id}.jpg\n", "t.txt:4:", "twice"},
        {"dataset A\n\n# no group\n", "t.txt:1:", "no group"},
        {"\n\n# comment\ndataset A\n count\n", "t.txt:5:", "no value"},
        {"# nothing\n", "t.txt:1:", "no dataset"},
        {"dataset A B\n", "t.txt:1:", "letters"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cn_catalog cat;
        clunet_status st = cn_catalog_parse(bad[i].text, "t.txt", &cat);
        const char *msg = clunet_last_error();
        CHECK(st == CLUNET_ERR_FORMAT, "case %zu parsed", i);
        CHECK(!strncmp(msg, bad[i].where, strlen(bad[i].where)) && strstr(msg, bad[i].what),
              "case %zu: got '%s', want '%s ... %s'", i, msg, bad[i].where, bad[i].what);
        CHECK(cat.count == 0 && cat.sets == NULL, "case %zu left a half catalogue", i);
    }
    cn_catalog cat;
    CHECK(cn_catalog_load("/nonexistent/datasets.txt", &cat) == CLUNET_ERR_IO &&
              strstr(clunet_last_error(), "/nonexistent/datasets.txt"),
          "a missing file is named");
}

/* ---------------------------------------------------------------------------
 * Fake layouts (names only: the loader decodes nothing)
 * ------------------------------------------------------------------------- */

static char root[256];

static void touch(const char *rel)
{
    char path[900];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    /* mkdir -p of the parent */
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(path, 0777);
        *p = '/';
    }
    FILE *f = fopen(path, "wb");
    if (f) fclose(f);
    CHECK(f != NULL, "create %s", path);
}

static void remove_tree(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    CHECK(system(cmd) == 0, "rm -rf %s", path);
}

static void new_root(const char *name)
{
    snprintf(root, sizeof root, "%s/clunet-%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name);
    CHECK(mkdtemp(root) != NULL, "mkdtemp");
}

static const cn_dataset *find(const cn_catalog *cat, const char *name)
{
    const cn_dataset *d = cn_catalog_find(cat, name);
    CHECK(d != NULL, "%s in the embedded catalogue", name);
    return d;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return s && n >= m && !strcmp(s + n - m, tail);
}

static void test_drive(const cn_catalog *cat)
{
    const cn_dataset *d = find(cat, "DRIVE");
    if (!d) return;
    new_root("drive");
    char rel[600];
    for (int i = 1; i <= 40; i++) {
        const char *dir = i > 20 ? "training" : "test", *kind = i > 20 ? "training" : "test";
        snprintf(rel, sizeof rel, "%s/images/%02d_%s.tif", dir, i, kind);
        touch(rel);
        snprintf(rel, sizeof rel, "%s/mask/%02d_%s_mask.gif", dir, i, kind);
        touch(rel);
        if (i > 20) {
            snprintf(rel, sizeof rel, "training/1st_manual/%02d_manual1.gif", i);
            touch(rel);
        }
    }
    touch("training/images/Thumbs.db");
    cn_sample_list list;
    /* The challenge archive has no test labels: allowed. */
    CHECK(cn_dataset_scan(d, root, &list) == CLUNET_OK, "scan fake DRIVE");
    CHECK(list.count == 40, "DRIVE: %d samples", list.count);
    int train = 0, labelled = 0;
    for (int i = 0; i < list.count; i++) {
        const cn_sample *s = &list.items[i];
        train += s->split == CN_SPLIT_TRAIN;
        labelled += s->label != NULL;
        int n = atoi(s->id);
        CHECK((n > 20) == (s->split == CN_SPLIT_TRAIN), "DRIVE %s split %s", s->id, cn_split_name(s->split));
        CHECK(s->mask && strstr(s->mask, "/mask/") && ends_with(s->mask, "_mask.gif"), "DRIVE %s mask %s", s->id,
              s->mask ? s->mask : "(none)");
        if (s->label) {
            snprintf(rel, sizeof rel, "/training/1st_manual/%s_manual1.gif", s->id);
            CHECK(ends_with(s->label, rel), "DRIVE %s label %s", s->id, s->label);
        }
    }
    CHECK(train == 20 && labelled == 20, "DRIVE train %d labelled %d", train, labelled);
    CHECK(list.count == 40 && !strcmp(list.items[0].id, "21") && !strcmp(list.items[20].id, "01"),
          "DRIVE order: groups in file order, ids sorted");
    cn_sample_list_free(&list);

    /* Once test/1st_manual exists, every test image needs its label. */
    for (int i = 1; i <= 19; i++) {
        snprintf(rel, sizeof rel, "test/1st_manual/%02d_manual1.gif", i);
        touch(rel);
    }
    CHECK(cn_dataset_scan(d, root, &list) == CLUNET_ERR_IO && strstr(clunet_last_error(), "test/1st_manual/20_manual1.gif"),
          "a missing test label is named");
    touch("test/1st_manual/20_manual1.gif");
    CHECK(cn_dataset_scan(d, root, &list) == CLUNET_OK && list.count == 40 && list.items[39].label,
          "all DRIVE labels");
    cn_sample_list_free(&list);

    snprintf(rel, sizeof rel, "%s/training/mask/33_training_mask.gif", root);
    remove(rel);
    CHECK(cn_dataset_scan(d, root, &list) == CLUNET_ERR_IO && strstr(clunet_last_error(), "33_training_mask.gif"),
          "a missing mask is named");
    CHECK(list.count == 0 && list.items == NULL, "failed scan leaves an empty list");
    snprintf(rel, sizeof rel, "%s/training/images", root);
    remove_tree(rel);
    CHECK(cn_dataset_scan(d, root, &list) == CLUNET_ERR_IO && strstr(clunet_last_error(), "training/images"),
          "a missing image directory is named");
    mkdir(rel, 0777);
    CHECK(cn_dataset_scan(d, root, &list) == CLUNET_ERR_IO && strstr(clunet_last_error(), "no DRIVE images"),
          "an empty image directory is an error");
    remove_tree(root);
    CHECK(cn_dataset_scan(d, root, &list) == CLUNET_ERR_IO && strstr(clunet_last_error(), root),
          "a missing root is named");
}

/* Both eyes of 14 children: ids 01L..14R, the first 20 train, subjects are the 2-digit child numbers. */
static void test_chase(const cn_catalog *cat)
{
    const cn_dataset *d = find(cat, "CHASE_DB1");
    if (!d) return;
    new_root("chase");
    char rel[600];
    for (int i = 0; i < 28; i++) {
        snprintf(rel, sizeof rel, "Image_%02d%c.jpg", i / 2 + 1, i % 2 ? 'R' : 'L');
        touch(rel);
        snprintf(rel, sizeof rel, "Image_%02d%c_1stHO.png", i / 2 + 1, i % 2 ? 'R' : 'L');
        touch(rel);
    }
    cn_sample_list list;
    CHECK(cn_dataset_scan(d, root, &list) == CLUNET_OK, "scan fake CHASE_DB1");
    CHECK(list.count == 28, "CHASE_DB1: %d samples", list.count);
    for (int i = 0; i < list.count && list.count == 28; i++) {
        const cn_sample *s = &list.items[i];
        char child[16];
        snprintf(child, sizeof child, "%02d", i / 2 + 1);
        CHECK(s->split == (i < 20 ? CN_SPLIT_TRAIN : CN_SPLIT_TEST), "CHASE_DB1 %s split", s->id);
        CHECK(s->subject_len == 2 && !strncmp(s->id, child, 2), "CHASE_DB1 %s: subject is child %s (length %d)",
              s->id, child, s->subject_len);
    }
    cn_sample_list_free(&list);
    remove_tree(root);
}

static void test_stare(const cn_catalog *cat)
{
    const cn_dataset *d = find(cat, "STARE");
    if (!d) return;
    static const int ids[20] = {1, 2, 3, 4, 5, 44, 77, 81, 82, 139, 162, 163, 235, 236, 239, 240, 255, 291, 319, 324};
    new_root("stare");
    char rel[600];
    for (int i = 0; i < 20; i++) {
        /* Gzipped and unpacked files mixed, as after a partial gunzip. */
        snprintf(rel, sizeof rel, "stare-images/im%04d.ppm%s", ids[i], i % 2 ? ".gz" : "");
        touch(rel);
        snprintf(rel, sizeof rel, "labels-ah/im%04d.ah.ppm%s", ids[i], i % 3 ? ".gz" : "");
        touch(rel);
    }
    touch("stare-images/im0001.ppm.gz"); /* both forms of one file: still one image */
    cn_sample_list list;
    CHECK(cn_dataset_scan(d, root, &list) == CLUNET_OK, "scan fake STARE");
    CHECK(list.count == 20, "STARE: %d samples", list.count);
    for (int i = 0; i < list.count && list.count == 20; i++) {
        char id[16];
        snprintf(id, sizeof id, "im%04d", ids[i]);
        const cn_sample *s = &list.items[i];
        CHECK(!strcmp(s->id, id), "STARE sample %d is %s, want %s", i, s->id, id);
        CHECK(s->split == (i < 10 ? CN_SPLIT_TRAIN : CN_SPLIT_TEST), "STARE %s split", s->id);
        CHECK(s->label && strstr(s->label, "/labels-ah/") && strstr(s->label, id), "STARE %s label", s->id);
        CHECK(s->mask == NULL, "STARE has no masks");
        CHECK(s->subject_len == (int)strlen(s->id), "STARE %s is its own subject", s->id);
    }
    cn_sample_list_free(&list);
    snprintf(rel, sizeof rel, "%s/stare-images/im0324.ppm", root);
    remove(rel);
    snprintf(rel, sizeof rel, "%s/stare-images/im0324.ppm.gz", root);
    remove(rel);
    CHECK(cn_dataset_scan(d, root, &list) == CLUNET_ERR_IO && strstr(clunet_last_error(), "found 19") &&
              strstr(clunet_last_error(), "expected 20"),
          "a missing image is counted");
    remove_tree(root);
}

static void test_hrf(const cn_catalog *cat)
{
    const cn_dataset *d = find(cat, "HRF");
    if (!d) return;
    static const char *kinds[3] = {"h", "g", "dr"};
    new_root("hrf");
    char rel[600];
    for (int k = 0; k < 3; k++) {
        for (int i = 1; i <= 15; i++) {
            /* HRF mixes .jpg and .JPG. */
            snprintf(rel, sizeof rel, "images/%02d_%s.%s", i, kinds[k], i % 4 ? "jpg" : "JPG");
            touch(rel);
            snprintf(rel, sizeof rel, "manual1/%02d_%s.tif", i, kinds[k]);
            touch(rel);
            snprintf(rel, sizeof rel, "mask/%02d_%s_mask.tif", i, kinds[k]);
            touch(rel);
        }
    }
    cn_sample_list list;
    CHECK(cn_dataset_scan(d, root, &list) == CLUNET_OK, "scan fake HRF");
    CHECK(list.count == 45, "HRF: %d samples", list.count);
    int train = 0;
    for (int i = 0; i < list.count; i++) {
        const cn_sample *s = &list.items[i];
        int n = atoi(s->id);
        train += s->split == CN_SPLIT_TRAIN;
        CHECK((n <= 5) == (s->split == CN_SPLIT_TRAIN), "HRF %s split %s", s->id, cn_split_name(s->split));
        CHECK(s->label && s->mask && strstr(s->mask, s->id), "HRF %s label and mask", s->id);
        CHECK(strstr(s->image, "/images/") != NULL, "HRF %s image %s", s->id, s->image);
    }
    CHECK(train == 15, "HRF train %d", train);
    CHECK(list.count == 45 && !strcmp(list.items[0].id, "01_dr") && !strcmp(list.items[3].id, "02_dr") &&
              !strcmp(list.items[44].id, "15_h"),
          "HRF ids sorted");
    CHECK(list.count == 45 && ends_with(list.items[11].image, "/images/04_h.JPG"), "the real name of an upper-case file: %s",
          list.count == 45 ? list.items[11].image : "");
    cn_sample_list_free(&list);
    snprintf(rel, sizeof rel, "%s/manual1/07_dr.tif", root);
    remove(rel);
    CHECK(cn_dataset_scan(d, root, &list) == CLUNET_ERR_IO && strstr(clunet_last_error(), "manual1/07_dr.tif") &&
              strstr(clunet_last_error(), "07_dr"),
          "a missing label is named");
    remove_tree(root);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test-catalog PATH/datasets.txt\n");
        return 2;
    }
    test_catalog(argv[1]);
    test_parse_errors();
    cn_catalog cat;
    CHECK(cn_catalog_load(NULL, &cat) == CLUNET_OK, "embedded catalogue");
    test_drive(&cat);
    test_stare(&cat);
    test_chase(&cat);
    test_hrf(&cat);
    cn_catalog_free(&cat);
    return check_summary();
}
