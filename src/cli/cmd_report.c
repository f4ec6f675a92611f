/* cmd_report.c - `clunet report`: learning curves and a prediction grid for a training run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "data/datasets.h"
#include "data/pipeline.h"
#include "report/report.h"
#include "train/model.h"

/* The training run's synthetic validation retinas start here in their stream (see train.c). */
#define SYNTHETIC_VAL_FIRST 1000000

typedef struct options {
    const char *run_dir, *weights, *data, *dataset, *datasets, *device, *split_name;
    cn_split split;
    int count, size, curves_only;
    cli_tta tta;
    float threshold;
} options;

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: clunet report RUN_DIR [--data DIR --dataset NAME --split test|train] [options]\n\n"
               "Draws the learning curves of a training run from RUN_DIR/metrics.csv into\n"
               "RUN_DIR/curve_{loss,f1,accuracy,iou,mcc,precision,recall,specificity,auc}.png, then a grid\n"
               "RUN_DIR/predictions.png: image | ground truth | probability | errors, one row per image.\n"
               "The grid shows images of --data, or, for a run on synthetic retinas, validation retinas of\n"
               "the same stream; without either it is skipped.\n\n"
               "  --weights CKPT     checkpoint for the grid (default RUN_DIR/best.safetensors; the grid is\n"
               "                     skipped when that file does not exist)\n"
               "  --data DIR         a dataset laid out as its archive unpacks (see `clunet data list`)\n"
               "  --dataset NAME     its name in datasets.txt (default: the one the checkpoint was trained on)\n"
               "  --datasets FILE    another datasets.txt than the built-in one\n"
               "  --split test|train which split of --data (default test)\n"
               "  --count N          images in the grid, the first N of the split (default 4, at most 16)\n"
               "  --threshold T      probability threshold of the error panel (default: the checkpoint's,\n"
               "                     chosen on the validation images during training; else 0.5)\n"
               "  --views N          test-time views averaged: 8 (default), 4 or 1 (see `clunet eval --help`)\n"
               "  --scales LIST      test-time scales averaged (default 1; see `clunet predict --help`)\n"
               "  --size S           inference tile size (default: the training patch size)\n"
               "  --device D         OpenCL device\n"
               "  --curves-only      only the learning curves (no device needed)\n");
    return status;
}

/* The first o->count images of the split, labels where the dataset has them. */
static int load_dataset(const options *o, const char *dataset, cn_sample_set *set)
{
    cn_catalog cat;
    if (cn_catalog_load(o->datasets, &cat) != CLUNET_OK) return cli_fail("report");
    const cn_dataset *ds = cn_catalog_find(&cat, dataset);
    if (!ds) {
        cn_catalog_free(&cat);
        fprintf(stderr, "clunet: report: --dataset %s: not in datasets.txt (see `clunet data list`)\n", dataset);
        return 1;
    }
    cn_sample_list list;
    clunet_status st = cn_dataset_scan(ds, o->data, &list);
    cn_catalog_free(&cat);
    if (st) return cli_fail("report");
    /* Decode only the images the grid shows. */
    cn_sample_list first = {malloc((size_t)o->count * sizeof *first.items), 0};
    if (!first.items) {
        cn_sample_list_free(&list);
        fprintf(stderr, "clunet: report: out of host memory\n");
        return 1;
    }
    for (int i = 0; i < list.count && first.count < o->count; i++)
        if (list.items[i].split == o->split) first.items[first.count++] = list.items[i];
    st = cn_sample_set_load(set, &first, o->split, 0);
    free(first.items);
    cn_sample_list_free(&list);
    if (st) return cli_fail("report");
    if (set->count == 0) {
        fprintf(stderr, "clunet: report: %s has no %s images\n", o->data, o->split_name);
        return 1;
    }
    return 0;
}

/* Probabilities of every sample, then the grid. */
static int draw_grid(const options *o, const char *weights, const cn_sample_set *set)
{
    cn_model model;
    if (cn_model_open(weights, o->device, o->size, 1, stderr, &model) != CLUNET_OK) return cli_fail("report");
    cli_tta_apply(&o->tta, &model.infer);
    cli_infer_progress(&model.infer);
    float threshold = cn_model_threshold(&model, o->threshold);
    float **probs = calloc((size_t)set->count, sizeof *probs);
    int rc = 0;
    for (int i = 0; !rc && i < set->count; i++) {
        const cn_sample_image *s = &set->items[i];
        if (!probs || !(probs[i] = malloc((size_t)s->width * s->height * sizeof **probs))) {
            fprintf(stderr, "clunet: report: out of host memory\n");
            rc = 1;
        } else if (cn_infer_image(&model.infer, s, probs[i]) != CLUNET_OK) rc = cli_fail(s->name);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/predictions.png", o->run_dir);
    if (!rc && cn_report_grid(path, set->items, (const float *const *)probs, set->count, threshold) != CLUNET_OK)
        rc = cli_fail("report");
    if (!rc) printf("predictions: %s (%d images, threshold %g)\n", path, set->count, threshold);
    for (int i = 0; probs && i < set->count; i++) free(probs[i]);
    free(probs);
    cn_model_close(&model);
    return rc;
}

static int parse_options(int argc, char **argv, options *o)
{
    int tta_rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--curves-only")) {
            o->curves_only = 1;
            continue;
        }
        if (a[0] != '-') {
            if (o->run_dir) {
                fprintf(stderr, "clunet report: one RUN_DIR only, got '%s' and '%s'\n", o->run_dir, a);
                return 2;
            }
            o->run_dir = a;
            continue;
        }
        if (!v) {
            fprintf(stderr, "clunet report: unknown or incomplete option '%s' (see --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--weights")) o->weights = v;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--dataset")) o->dataset = v;
        else if (!strcmp(a, "--datasets")) o->datasets = v;
        else if (!strcmp(a, "--device")) o->device = v;
        else if (!strcmp(a, "--split")) {
            if (!strcmp(v, "test")) o->split = CN_SPLIT_TEST;
            else if (!strcmp(v, "train")) o->split = CN_SPLIT_TRAIN;
            else return cli_bad_value(a, v);
            o->split_name = v;
        }
        else if ((tta_rc = cli_tta_option(&o->tta, a, v))) {
            if (tta_rc < 0) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--count")) {
            if (!cli_parse_int(v, 1, 16, &o->count)) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--size")) {
            if (!cli_parse_int(v, 32, 8192, &o->size) || o->size % 32) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--threshold")) {
            char *end;
            o->threshold = strtof(v, &end);
            if (*end || !(o->threshold > 0 && o->threshold < 1)) return cli_bad_value(a, v);
        } else {
            fprintf(stderr, "clunet report: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!o->run_dir) {
        fprintf(stderr, "clunet report: RUN_DIR is required (see --help)\n");
        return 2;
    }
    if (o->dataset && !o->data) {
        fprintf(stderr, "clunet report: --dataset needs --data DIR\n");
        return 2;
    }
    return 0;
}

int cmd_report(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) return usage(stdout, 0);
    options o = {.split_name = "test", .split = CN_SPLIT_TEST, .count = 4, .tta = CLI_TTA_DEFAULT};
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc;

    /* the grid's checkpoint and dataset first: a usage error leaves RUN_DIR as it was */
    char csv[4096], weights[4096], trained_on[128];
    int grid = !o.curves_only;
    if (o.weights) snprintf(weights, sizeof weights, "%s", o.weights);
    else snprintf(weights, sizeof weights, "%s/best.safetensors", o.run_dir);
    int no_weights = grid && !o.weights && access(weights, R_OK);
    cn_checkpoint_info info;
    const char *dataset = NULL;
    if (grid && !no_weights) {
        if (cn_checkpoint_peek(weights, &info) != CLUNET_OK) return cli_fail("report");
        dataset = cn_checkpoint_config_string(&info, "dataset", trained_on, sizeof trained_on);
        if (o.data && !o.dataset && (!dataset || !strcmp(dataset, "synthetic"))) {
            fprintf(stderr, "clunet report: --data needs --dataset NAME (the checkpoint does not name one)\n");
            return 2;
        }
    }

    snprintf(csv, sizeof csv, "%s/metrics.csv", o.run_dir);
    if (cn_report_curves(csv, o.run_dir) != CLUNET_OK) return cli_fail("report");
    printf("curves: %s/curve_*.png\n", o.run_dir);
    if (!grid) return 0;
    if (no_weights) {
        printf("no %s: no prediction grid (see --weights)\n", weights);
        return 0;
    }
    cn_sample_set set = {0};
    if (o.data) {
        rc = load_dataset(&o, o.dataset ? o.dataset : dataset, &set);
    } else if (dataset && !strcmp(dataset, "synthetic")) {
        if (cn_sample_set_synthetic(&set, cn_checkpoint_val_seed(&info), SYNTHETIC_VAL_FIRST, o.count, info.size) != CLUNET_OK)
            rc = cli_fail("report");
    } else {
        printf("%s was trained on %s: add --data DIR for a prediction grid\n", weights, dataset ? dataset : "a dataset");
        return 0;
    }
    if (!rc) rc = draw_grid(&o, weights, &set);
    cn_sample_set_free(&set);
    return rc;
}
