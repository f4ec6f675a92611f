/* cmd_eval.c - `clunet eval`: segmentation scores of a checkpoint on a dataset split. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "data/datasets.h"
#include "data/pipeline.h"
#include "train/evaluate.h"
#include "train/model.h"
#include "train/train.h"

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: clunet eval --weights CKPT --data DIR --dataset NAME [options]\n\n"
               "Scores a checkpoint on a dataset split: accuracy, F1 (= Dice), IoU of vessels and mean IoU,\n"
               "MCC, precision, recall (sensitivity), specificity, ROC AUC and the loss, counted at the\n"
               "field-of-view pixels, pooled over the split and per image.\n\n"
               "  --split S           test (default), train, or val: the training images the checkpoint's run\n"
               "                      held out for validation (from its --val-seed and count)\n"
               "  --threshold T       probability threshold (default: the one chosen on the validation\n"
               "                      images during training, stored in the checkpoint; else 0.5)\n"
               "  --views N           test-time views averaged: 8 (default: the image, its mirrors and their\n"
               "                      transposes), 4 (the mirrors) or 1 (the image only, 8x faster)\n"
               "  --scales LIST       test-time scales averaged (default 1; see `clunet predict --help`)\n"
               "  --datasets FILE     another datasets.txt than the built-in one\n"
               "  --size S            inference tile size (default: the training patch size)\n"
               "  --batch B           tiles per batch (default 1)\n"
               "  --device D          OpenCL device\n"
               "  --json              {\"pooled\": {...}, \"images\": [...]} on stdout\n");
    return status;
}

static void print_scores_json(const cn_scores *s)
{
    printf("{\"accuracy\": %.6f, \"f1\": %.6f, \"iou\": %.6f, \"miou\": %.6f, \"mcc\": %.6f, \"precision\": %.6f, "
           "\"recall\": %.6f, \"specificity\": %.6f, \"auc\": %.6f, \"loss\": %.6f, \"tp\": %llu, \"fp\": %llu, "
           "\"tn\": %llu, \"fn\": %llu}",
           s->accuracy, s->f1, s->iou, s->miou, s->mcc, s->precision, s->recall, s->specificity,
           isfinite(s->auc) ? s->auc : -1.0, s->loss, (unsigned long long)s->tp, (unsigned long long)s->fp,
           (unsigned long long)s->tn, (unsigned long long)s->fn);
}

static void print_scores_row(const char *name, const cn_scores *s)
{
    printf("%-24s %6.4f %6.4f %6.4f %6.4f %6.4f %6.4f %6.4f %6.4f %6.4f %6.4f\n", name, s->accuracy, s->f1, s->iou,
           s->miou, s->mcc, s->precision, s->recall, s->specificity, s->auc, s->loss);
}

/* Replaces the training split by the images the checkpoint's run held out for validation. */
static clunet_status hold_out_val(const char *weights, const char *dataset, cn_sample_set *samples)
{
    cn_checkpoint_info info;
    clunet_status st = cn_checkpoint_peek(weights, &info);
    /* Rebuilt from the run's validation seed and count (or fold) by the rule training used (whole subjects since
     * val_by_subject). */
    const char *v = st ? NULL : cn_checkpoint_config_value(&info, "val");
    const char *folds_v = st ? NULL : cn_checkpoint_config_value(&info, "val_folds");
    const char *fold_v = st ? NULL : cn_checkpoint_config_value(&info, "val_fold");
    int folds = folds_v ? atoi(folds_v) : 0, fold = fold_v ? atoi(fold_v) : 0;
    const char *by_subject = st ? NULL : cn_checkpoint_config_value(&info, "val_by_subject");
    char trained_on[128];
    const char *d = st ? NULL : cn_checkpoint_config_string(&info, "dataset", trained_on, sizeof trained_on);
    int n = v ? atoi(v) : 0;
    cn_sample_set val;
    if (!st && !(v && (by_subject || folds > 0)))
        st = cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                     "--split val: %s predates validation by whole subjects; its held-out images cannot be rebuilt",
                     weights);
    if (!st && !(d && !strcasecmp(d, dataset))) /* the catalogue matches names in any case */
        st = cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--split val: %s was not trained on %s", weights, dataset);
    if (!st && n < 1) st = cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "%s: its run held out no validation images", weights);
    if (!st && folds > 0)
        st = cn_sample_set_fold(samples, folds, fold - 1, cn_checkpoint_val_seed(&info), &val);
    else if (!st)
        st = cn_sample_set_split(samples, n, cn_checkpoint_val_seed(&info), &val);
    if (st) {
        cn_sample_set_free(samples);
        return st;
    }
    cn_sample_set_free(samples);
    *samples = val;
    return CLUNET_OK;
}

int cmd_eval(int argc, char **argv)
{
    const char *weights = NULL, *data = NULL, *dataset = NULL, *datasets = NULL, *device = NULL;
    const char *split_name = "test";
    int json = 0, size = 0, batch = 1, tta_rc;
    cli_tta tta = CLI_TTA_DEFAULT;
    float threshold = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "clunet eval: unknown or incomplete option '%s' (see --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--dataset")) dataset = v;
        else if (!strcmp(a, "--datasets")) datasets = v;
        else if (!strcmp(a, "--device")) device = v;
        else if (!strcmp(a, "--split")) split_name = v;
        else if ((tta_rc = cli_tta_option(&tta, a, v))) {
            if (tta_rc < 0) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--size")) {
            if (!cli_parse_int(v, 32, 8192, &size) || size % 32) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--batch")) {
            if (!cli_parse_int(v, 1, 256, &batch)) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--threshold")) {
            char *end;
            threshold = strtof(v, &end);
            if (*end || !(threshold > 0 && threshold < 1)) return cli_bad_value(a, v);
        } else {
            fprintf(stderr, "clunet eval: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!weights || !data || !dataset) {
        fprintf(stderr, "clunet eval: --weights, --data and --dataset are required (see --help)\n");
        return 2;
    }
    cn_split split;
    if (!strcmp(split_name, "test")) split = CN_SPLIT_TEST;
    else if (!strcmp(split_name, "train") || !strcmp(split_name, "val")) split = CN_SPLIT_TRAIN;
    else return cli_bad_value("--split", split_name);

    cn_catalog cat;
    if (cn_catalog_load(datasets, &cat) != CLUNET_OK) return cli_fail("eval");
    const cn_dataset *set = cn_catalog_find(&cat, dataset);
    if (!set) {
        cn_catalog_free(&cat);
        fprintf(stderr, "clunet: eval: --dataset %s: not in datasets.txt (see `clunet data list`)\n", dataset);
        return 1;
    }
    cn_sample_list list;
    cn_sample_set samples;
    clunet_status st = cn_dataset_scan(set, data, &list);
    cn_catalog_free(&cat);
    if (st) return cli_fail("eval");
    st = cn_sample_set_load(&samples, &list, split, 1);
    cn_sample_list_free(&list);
    if (st) return cli_fail("eval");
    if (!strcmp(split_name, "val") && hold_out_val(weights, dataset, &samples)) return cli_fail("eval");
    if (samples.count == 0) {
        cn_sample_set_free(&samples);
        fprintf(stderr, "clunet: eval: %s has no %s images\n", data, split_name);
        return 1;
    }
    cn_model model;
    if (cn_model_open(weights, device, size, batch, stderr, &model) != CLUNET_OK) {
        cn_sample_set_free(&samples);
        return cli_fail("eval");
    }
    if (!json) {
        printf("device: %s (%s)\n", model.ctx->info.name, model.ctx->info.platform);
        fflush(stdout); /* before the minutes of work, also when piped */
    }
    cli_tta_apply(&tta, &model.infer);
    if (!json) cli_infer_progress(&model.infer);
    threshold = cn_model_threshold(&model, threshold);
    size_t most = 0;
    for (int i = 0; i < samples.count; i++)
        if ((size_t)samples.items[i].width * samples.items[i].height > most)
            most = (size_t)samples.items[i].width * samples.items[i].height;
    float *prob = malloc(most * sizeof *prob);
    cn_eval_acc *pooled = malloc(sizeof *pooled), *one = malloc(sizeof *one);
    cn_scores *scores = calloc((size_t)samples.count, sizeof *scores);
    int rc = 0;
    if (!prob || !pooled || !one || !scores) {
        fprintf(stderr, "clunet: eval: out of host memory\n");
        rc = 1;
    }
    if (!rc) cn_eval_reset(pooled, threshold);
    for (int i = 0; !rc && i < samples.count; i++) {
        const cn_sample_image *s = &samples.items[i];
        size_t n = (size_t)s->width * s->height;
        if (cn_infer_image(&model.infer, s, prob) != CLUNET_OK) {
            rc = cli_fail(s->name);
            break;
        }
        cn_eval_reset(one, threshold);
        cn_eval_add(one, prob, s->label, s->mask, n);
        cn_eval_add(pooled, prob, s->label, s->mask, n);
        cn_eval_scores(one, &scores[i]);
        if (!json) fprintf(stderr, "evaluated %s (%d/%d)\n", s->name, i + 1, samples.count);
    }
    if (!rc) {
        cn_scores all;
        cn_eval_scores(pooled, &all);
        /* For choosing a threshold on validation images (never on the test split). */
        double split_f1;
        float split_threshold = cn_eval_best_threshold(pooled, &split_f1);
        if (json) {
            printf("{\"weights\": ");
            cli_json_string(stdout, weights);
            printf(", \"dataset\": ");
            cli_json_string(stdout, dataset);
            printf(", \"device\": ");
            cli_json_string(stdout, model.ctx->info.name);
            printf(", \"split\": \"%s\", \"threshold\": %g, \"views\": %d, \"scales\": [", split_name, threshold,
                   tta.views);
            for (int k = 0; k < (tta.nscales ? tta.nscales : 1); k++)
                printf("%s%g", k ? ", " : "", tta.nscales ? tta.scales[k] : 1.0f);
            printf("], \"input_scale\": %g, \"pixels\": \"field of view\", \"pooled\": ", model.info.input_scale);
            print_scores_json(&all);
            printf(", \"images\": [");
            for (int i = 0; i < samples.count; i++) {
                printf("%s\n  {\"image\": ", i ? "," : "");
                cli_json_string(stdout, samples.items[i].name);
                printf(", \"scores\": ");
                print_scores_json(&scores[i]);
                printf("}");
            }
            printf("\n], \"best_threshold_on_this_split\": {\"threshold\": %.4f, \"f1\": %.6f}}\n", split_threshold,
                   split_f1);
        } else {
            printf("%s, %s split (%d images), threshold %g, mean of %d test-time view%s", dataset, split_name,
                   samples.count, threshold, tta.views, tta.views > 1 ? "s" : "");
            for (int k = 0; k < tta.nscales; k++) printf("%s%g", k ? ", " : " at scales ", tta.scales[k]);
            if (model.info.input_scale != 1) printf(" (on top of the training's input scale %g)", model.info.input_scale);
            printf("; counted at field-of-view pixels\n\n");
            printf("%-24s %6s %6s %6s %6s %6s %6s %6s %6s %6s %6s\n", "image", "acc", "F1", "IoU", "mIoU", "MCC",
                   "prec", "recall", "spec", "AUC", "loss");
            for (int i = 0; i < samples.count; i++) print_scores_row(samples.items[i].name, &scores[i]);
            printf("\n");
            print_scores_row("pooled", &all);
            printf("\nthe pooled F1 would be %.4f at threshold %.4f, this split's best (choose thresholds on --split val)\n",
                   split_f1, split_threshold);
        }
    }
    free(prob), free(pooled), free(one), free(scores);
    cn_model_close(&model);
    cn_sample_set_free(&samples);
    return rc;
}
