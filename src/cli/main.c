/* main.c - the `clunet` program: dispatches to one subcommand per file. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"devices", cmd_devices, "list OpenCL devices and their capabilities"},
    {"info", cmd_info, "describe the network: layers, parameters, FLOPs, memory"},
    {"train", cmd_train, "train the U-Net on a dataset or on synthetic retinas"},
    {"eval", cmd_eval, "score a checkpoint on a dataset split"},
    {"predict", cmd_predict, "segment vessels in images"},
    {"report", cmd_report, "draw learning curves and a prediction grid for a training run"},
    {"bench", cmd_bench, "time training and inference per device against its measured peaks"},
    {"data", cmd_data, "check a dataset or an image, list the known datasets, derive FOV masks"},
    {"synth", cmd_synth, "write synthetic retinas (the built-in default data)"},
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: clunet COMMAND [OPTIONS]\n\n"
               "A portable OpenCL engine for retinal vessel segmentation.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`clunet COMMAND --help` describes a command.\n"
               "Environment: CLUNET_DEVICE (default device), CLUNET_NO_CACHE=1 (no kernel binary cache),\n"
               "CLUNET_KERNEL_DIR (read cl/*.cl from a directory instead of the embedded copies), XDG_CACHE_HOME\n"
               "(where the kernel cache lives), and for kernel work CLUNET_GEMM, CLUNET_CONV, CLUNET_TUNE (README).\n");
}

/* A command's status, unless what it printed to stdout (a report, --json) could not all be written. */
static int finish(const char *name, int rc)
{
    int err = fflush(stdout) ? errno : 0;
    if (!err && !ferror(stdout)) return rc;
    fprintf(stderr, "clunet: %s: cannot write the output: %s\n", name, err ? strerror(err) : "write error");
    return rc ? rc : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return finish("help", 0);
    }
    if (!strcmp(argv[1], "--version")) return finish("version", cmd_version(1, argv + 1));
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return finish(argv[1], commands[i].run(argc - 1, argv + 1));
    fprintf(stderr, "clunet: unknown command '%s' (see `clunet --help`)\n", argv[1]);
    return 2;
}
