/* cmd_info.c - `clunet info`: the network's layers, parameters, FLOPs and training memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "graph/exec.h"

static size_t node_params(const cn_graph *g, const cn_node *n)
{
    size_t count = 0;
    for (int k = 0; k < 4; k++)
        if (n->param[k] >= 0 && g->params[n->param[k]].trainable) count += g->params[n->param[k]].count;
    return count;
}

static void describe_conv(const cn_node *n, char *out, size_t size)
{
    const cn_conv_attr *a = &n->conv;
    snprintf(out, size, "k%d s%d%s%s", a->k, a->stride, a->groups > 1 ? " depthwise" : "", a->has_bias ? " +bias" : "");
}

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: clunet info [--size S] [--batch B] [--input-skip off|on|conv] [--json]\n\n"
               "Describes the network: a U-Net with an EfficientNet-B0 encoder. Prints every layer with\n"
               "its output shape and parameters, the forward GFLOP at an SxS input, and the device memory\n"
               "that training at batch B needs.\n\n"
               "  --size S    input height and width, a multiple of 32 (default 512)\n"
               "  --batch B   batch size for the memory plan (default 1)\n"
               "  --input-skip M  off (default, as clunet train): the seed's network; on: the last\n"
               "              decoder block also sees the input image; conv: features of it from\n"
               "              two conv layers at full resolution\n"
               "  --json      machine-readable output\n");
    return status;
}

int cmd_info(int argc, char **argv)
{
    cn_unet_config cfg;
    cn_unet_default_config(&cfg);
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout, 0);
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], 32, 32768, &cfg.height)) return cli_bad_value("--size", argv[i]);
            cfg.width = cfg.height;
        } else if (!strcmp(argv[i], "--input-skip") && i + 1 < argc) {
            if (!cn_input_skip_from_name(argv[++i], &cfg.input_skip)) return cli_bad_value("--input-skip", argv[i]);
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], 1, 4096, &cfg.batch)) return cli_bad_value("--batch", argv[i]);
        } else {
            fprintf(stderr, "clunet info: unknown or incomplete option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    cn_graph g;
    if (cn_unet_build(&cfg, &g) != CLUNET_OK) return cli_fail("info");

    double gflop = cn_graph_forward_flops(&g) * 1e-9;
    size_t acts, grads;
    cn_exec_planned_arenas(&g, 1, &acts, &grads);
    /* parameters, their gradients, Adam's m and v; BN running statistics */
    size_t params = 4 * g.trainable_floats + g.state_floats;
    double mib = 4.0 / (1024 * 1024), total = cn_exec_planned_bytes(&g, 1) / 1048576.0;
    double inference = cn_exec_planned_bytes(&g, 0) / 1048576.0;

    if (json) {
        printf("{\"input\": [%d, %d, %d, %d], \"input_skip\": \"%s\", \"parameters\": %zu, \"forward_gflop\": %.4f, "
               "\"training_memory_mib\": {\"parameters_and_optimizer\": %.1f, \"activations\": %.1f, "
               "\"gradients_peak\": %.1f, \"total\": %.1f}, \"inference_memory_mib\": %.1f, \"layers\": [",
               cfg.batch, cfg.in_channels, cfg.height, cfg.width, cn_input_skip_name(cfg.input_skip), g.trainable_count,
               gflop, params * mib, acts * mib, grads * mib, total, inference);
        for (int i = 0; i < g.node_count; i++) {
            const cn_node *n = &g.nodes[i];
            cn_shape s = g.values[n->out].shape;
            printf("%s\n  {\"index\": %d, \"block\": ", i ? "," : "", i);
            cli_json_string(stdout, n->label);
            printf(", \"op\": \"%s\", \"output\": [%d, %d, %d, %d], \"parameters\": %zu}", cn_op_name(n->op), s.n,
                   s.c, s.h, s.w, node_params(&g, n));
        }
        printf("\n]}\n");
    } else {
        printf("U-Net, EfficientNet-B0 encoder%s%s; input (N,C,H,W) = (%d,%d,%d,%d)\n\n",
               cfg.input_skip ? ", input skip " : " (the seed's)", cfg.input_skip ? cn_input_skip_name(cfg.input_skip) : "",
               cfg.batch, cfg.in_channels, cfg.height, cfg.width);
        printf("%4s  %-22s %-16s %-18s %-24s %10s\n", "#", "block", "op", "details", "output (N,C,H,W)", "params");
        for (int i = 0; i < g.node_count; i++) {
            const cn_node *n = &g.nodes[i];
            cn_shape s = g.values[n->out].shape;
            char shape[48], details[48] = "";
            snprintf(shape, sizeof shape, "(%d,%d,%d,%d)", s.n, s.c, s.h, s.w);
            if (n->op == CN_OP_CONV) describe_conv(n, details, sizeof details);
            printf("%4d  %-22s %-16s %-18s %-24s %10zu\n", i, n->label, cn_op_name(n->op), details, shape,
                   node_params(&g, n));
        }
        printf("\ntrainable parameters: %zu (BN running statistics: %zu floats)\n", g.trainable_count,
               g.state_floats);
        printf("forward: %.2f GFLOP at %dx%d per batch of %d (a training step is about 3x)\n", gflop, cfg.height,
               cfg.width, cfg.batch);
        printf("training memory plan at batch %d: parameters+gradients+Adam %.1f MiB, activations %.1f MiB, "
               "gradient buffers (peak) %.1f MiB; with scratch and batch buffers %.1f MiB\n",
               cfg.batch, params * mib, acts * mib, grads * mib, total);
        printf("inference memory plan at batch %d: %.1f MiB (activations reuse memory once read)\n", cfg.batch,
               inference);
    }
    cn_graph_free(&g);
    return 0;
}
