/*
 * cli.h - the `clunet` program: one file per subcommand, each an entry
 * `int cmd_NAME(int argc, char **argv)` returning the process exit code
 * (argv[0] is the subcommand's name). Only the CLI prints.
 */
#ifndef CLUNET_CLI_H
#define CLUNET_CLI_H

#include <stdio.h>

#include "clunet.h"
#include "train/infer.h"

int cmd_version(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_synth(int argc, char **argv);

/* Prints "clunet: CONTEXT: <last error>" to stderr and returns 1. */
int cli_fail(const char *context);

/* True if any of argv[1..] is -h or --help. */
int cli_wants_help(int argc, char **argv);

/* Parses a decimal integer in [lo, hi]; 0 if s is not one. */
int cli_parse_int(const char *s, int lo, int hi, int *out);

/* Parses --views: 1, 4 or 8 (test-time views, see cn_infer); 0 if s is none of them. */
int cli_parse_views(const char *s, int *out);

/* Parses --scales: a comma-separated list of up to max factors in [0.25, 4] (test-time scales, see cn_infer). */
int cli_parse_scales(const char *s, float *out, int max, int *n);

/* Test-time augmentation, shared by eval, predict and report: --views and --scales. */
typedef struct cli_tta {
    int views, nscales;
    float scales[CN_INFER_MAX_SCALES];
} cli_tta;
#define CLI_TTA_DEFAULT {.views = 8, .nscales = 0}

/* Option a with value v: 1 if it is --views or --scales and v valid, -1 if v is not, 0 if a is another option. */
int cli_tta_option(cli_tta *t, const char *a, const char *v);

/* Sets inf's views and scales. */
void cli_tta_apply(const cli_tta *t, cn_infer *inf);

/* Makes inf report on stderr, every 10 s, how far an image that takes long has got. */
void cli_infer_progress(cn_infer *inf);

/* Prints "clunet: OPTION VALUE: not a valid value" and returns 2. */
int cli_bad_value(const char *option, const char *value);

/* Creates the folder --out names unless it exists (*created: whether it did); prints the error, returns 1, if neither. */
int cli_out_dir(const char *command, const char *dir, int *created);

/* Writes s as a JSON string literal (quotes and escapes) to f. */
void cli_json_string(FILE *f, const char *s);

#endif
