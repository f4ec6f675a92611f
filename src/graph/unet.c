/*
 * unet.c - the seed network: a U-Net whose encoder is EfficientNet-B0, as
 * Python segmentation_models' Unet('efficientnetb0') builds it, with tensor
 * names that follow torchvision's efficientnet_b0().features so a torchvision
 * encoder exported to safetensors loads as ours.
 *
 * Shape letters: N batch, C channels, H height, W width.
 */
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "graph/graph.h"

void cn_unet_default_config(cn_unet_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->batch = 1;
    cfg->height = cfg->width = 512;
    cfg->in_channels = 3;
    cfg->bn_eps = 1e-5;
    cfg->bn_momentum = 0.1;
}

static const char *const input_skip_names[CN_INPUT_SKIP_COUNT] = {"off", "on", "conv"};

const char *cn_input_skip_name(int mode)
{
    return mode >= 0 && mode < CN_INPUT_SKIP_COUNT ? input_skip_names[mode] : NULL;
}

int cn_input_skip_from_name(const char *name, int *mode)
{
    for (int i = 0; i < CN_INPUT_SKIP_COUNT; i++)
        if (!strcmp(name, input_skip_names[i])) {
            *mode = i;
            return 1;
        }
    return 0;
}

typedef struct builder {
    cn_graph *g;
    const cn_unet_config *cfg;
    int failed;
} builder;

static cn_shape shape_of(builder *b, int v) { return b->g->values[v].shape; }

static int check(builder *b, int id)
{
    if (id < 0) b->failed = 1;
    return id;
}

/* Padding for kernel k and stride s on an input of size n, on the two sides. */
static void padding(const builder *b, int n, int k, int s, int *before, int *after)
{
    if (b->cfg->same_padding) {
        /* TensorFlow 'same': out = ceil(n / s); any odd extra pad goes after. */
        int out = (n + s - 1) / s;
        int total = (out - 1) * s + k - n;
        if (total < 0) total = 0;
        *before = total / 2;
        *after = total - *before;
    } else {
        *before = *after = (k - 1) / 2;
    }
}

/* conv2d named `name` (weight `name.weight`, bias `name.bias`) */
static int conv(builder *b, int x, int cout, int k, int stride, int groups, int bias, const char *name,
                const char *label)
{
    if (b->failed) return -1;
    cn_shape in = shape_of(b, x);
    cn_conv_attr a = {k, stride, 0, 0, 0, 0, groups, bias};
    padding(b, in.h, k, stride, &a.pad_t, &a.pad_b);
    padding(b, in.w, k, stride, &a.pad_l, &a.pad_r);
    int node = check(b, cn_graph_add_node(b->g, CN_OP_CONV, x, -1, cn_conv_out_shape(in, cout, &a), label));
    if (node < 0) return -1;
    char pname[96];
    int wdims[4] = {cout, in.c / groups, k, k};
    snprintf(pname, sizeof pname, "%s.weight", name);
    b->g->nodes[node].conv = a;
    b->g->nodes[node].param[0] = check(b, cn_graph_add_param(b->g, pname, 4, wdims, 1));
    if (bias) {
        snprintf(pname, sizeof pname, "%s.bias", name);
        b->g->nodes[node].param[1] = check(b, cn_graph_add_param(b->g, pname, 1, &cout, 1));
    }
    return b->g->nodes[node].out;
}

static int batchnorm(builder *b, int x, const char *name, const char *label)
{
    if (b->failed) return -1;
    static const char *const suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    int c = shape_of(b, x).c;
    int node = check(b, cn_graph_add_node(b->g, CN_OP_BN, x, -1, shape_of(b, x), label));
    if (node < 0) return -1;
    for (int i = 0; i < 4; i++) {
        char pname[96];
        snprintf(pname, sizeof pname, "%s.%s", name, suffix[i]);
        b->g->nodes[node].param[i] = check(b, cn_graph_add_param(b->g, pname, 1, &c, i < 2));
    }
    return b->g->nodes[node].out;
}

static int unary(builder *b, cn_op op, int x, const char *label)
{
    if (b->failed) return -1;
    int node = check(b, cn_graph_add_node(b->g, op, x, -1, shape_of(b, x), label));
    return node < 0 ? -1 : b->g->nodes[node].out;
}

static int binary(builder *b, cn_op op, int x, int y, cn_shape out, const char *label)
{
    if (b->failed) return -1;
    int node = check(b, cn_graph_add_node(b->g, op, x, y, out, label));
    return node < 0 ? -1 : b->g->nodes[node].out;
}

/* conv, BN and optionally an activation: torchvision's Conv2dNormActivation `name`.{0,1} */
static int conv_bn_act(builder *b, int x, int cout, int k, int stride, int groups, cn_op act, const char *name,
                       const char *label)
{
    char cname[72], bname[72];
    snprintf(cname, sizeof cname, "%s.0", name);
    snprintf(bname, sizeof bname, "%s.1", name);
    int y = batchnorm(b, conv(b, x, cout, k, stride, groups, 0, cname, label), bname, label);
    return act == CN_OP_INPUT ? y : unary(b, act, y, label);
}

/*
 * One MBConv block `encoder.S.B`: expand 1x1 (unless ratio 1), depthwise kxk,
 * squeeze-excitation, project 1x1, residual when the shape is kept.
 * *expanded receives the expand activation (the U-Net's skip source).
 */
static int mbconv(builder *b, int x, int stage, int block, int expand, int k, int cout, int stride, float drop,
                  int *expanded)
{
    if (b->failed) return -1;
    int cin = shape_of(b, x).c, ch = cin * expand, j = 0;
    char name[64], label[48];
    snprintf(label, sizeof label, "encoder.%d.%d", stage, block);
    int h = x;
    if (expand != 1) {
        snprintf(name, sizeof name, "encoder.%d.%d.block.%d", stage, block, j++);
        h = conv_bn_act(b, h, ch, 1, 1, 1, CN_OP_SWISH, name, label);
    }
    if (expanded) *expanded = h;
    snprintf(name, sizeof name, "encoder.%d.%d.block.%d", stage, block, j++);
    h = conv_bn_act(b, h, ch, k, stride, ch, CN_OP_SWISH, name, label);

    /* Squeeze-excitation: the squeeze width is a quarter of the block's input channels. */
    int squeeze = cin / 4 > 1 ? cin / 4 : 1;
    if (b->failed) return -1;
    cn_shape hs = shape_of(b, h);
    cn_shape pooled = {hs.n, hs.c, 1, 1};
    int s = binary(b, CN_OP_AVGPOOL, h, -1, pooled, label);
    snprintf(name, sizeof name, "encoder.%d.%d.block.%d.fc1", stage, block, j);
    s = unary(b, CN_OP_SWISH, conv(b, s, squeeze, 1, 1, 1, 1, name, label), label);
    snprintf(name, sizeof name, "encoder.%d.%d.block.%d.fc2", stage, block, j++);
    s = unary(b, CN_OP_SIGMOID, conv(b, s, ch, 1, 1, 1, 1, name, label), label);
    h = binary(b, CN_OP_CHSCALE, h, s, hs, label);

    snprintf(name, sizeof name, "encoder.%d.%d.block.%d", stage, block, j);
    h = conv_bn_act(b, h, cout, 1, 1, 1, CN_OP_INPUT, name, label);
    if (stride == 1 && cin == cout) {
        h = binary(b, CN_OP_ADD, h, x, shape_of(b, h), label);
        if (!b->failed) b->g->nodes[b->g->node_count - 1].drop = drop;
    }
    return h;
}

static int decoder_block(builder *b, int x, int skip, int cout, int i)
{
    if (b->failed) return -1;
    char name[64], label[48];
    snprintf(label, sizeof label, "decoder.%d", i);
    cn_shape xs = shape_of(b, x);
    cn_shape up = {xs.n, xs.c + (skip >= 0 ? shape_of(b, skip).c : 0), xs.h * 2, xs.w * 2};
    int h = binary(b, CN_OP_UPCAT, x, skip, up, label);
    for (int r = 1; r <= 2; r++) {
        snprintf(name, sizeof name, "decoder.%d.conv%d", i, r);
        h = conv(b, h, cout, 3, 1, 1, 0, name, label);
        snprintf(name, sizeof name, "decoder.%d.bn%d", i, r);
        h = unary(b, CN_OP_RELU, batchnorm(b, h, name, label), label);
    }
    return h;
}

clunet_status cn_unet_build(const cn_unet_config *cfg, cn_graph *g)
{
    memset(g, 0, sizeof *g);
    if (cfg->batch < 1 || cfg->height < 32 || cfg->width < 32 || cfg->height % 32 || cfg->width % 32)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                       "network input %dx%d (batch %d): height and width must be positive multiples of 32",
                       cfg->height, cfg->width, cfg->batch);
    if (cfg->in_channels < 1) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "input channels must be positive");
    if (!(cfg->drop_connect >= 0 && cfg->drop_connect < 1))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "drop connect %g: must be in [0, 1)", cfg->drop_connect);
    if (!cn_input_skip_name(cfg->input_skip))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "input skip %d: not one of 0 (off), 1 (on), 2 (conv)", cfg->input_skip);
    builder b = {g, cfg, 0};
    g->bn_eps = cfg->bn_eps;
    g->bn_momentum = cfg->bn_momentum;

    cn_shape in = {cfg->batch, cfg->in_channels, cfg->height, cfg->width};
    g->input = cn_graph_add_value(g, in);
    if (g->input < 0) return CLUNET_ERR_OUT_OF_MEMORY;

    int x = conv_bn_act(&b, g->input, 32, 3, 2, 1, CN_OP_SWISH, "encoder.0", "encoder.0 stem");

    /* EfficientNet-B0 stages: expand ratio, kernel, output channels, repeats, first stride. */
    static const int stages[7][5] = {{1, 3, 16, 1, 1},  {6, 3, 24, 2, 2},  {6, 5, 40, 2, 2},  {6, 3, 80, 3, 2},
                                     {6, 5, 112, 3, 1}, {6, 5, 192, 4, 2}, {6, 3, 320, 1, 1}};
    int skips[4] = {-1, -1, -1, -1}; /* stages 2, 3, 4, 6: strides 2, 4, 8, 16 */
    int blocks = 0, id = 0;
    for (int s = 0; s < 7; s++) blocks += stages[s][3];
    for (int s = 0; s < 7; s++) {
        for (int r = 0; r < stages[s][3]; r++) {
            int stage = s + 1, *expanded = NULL;
            if (r == 0 && (stage == 2 || stage == 3 || stage == 4)) expanded = &skips[stage - 2];
            if (r == 0 && stage == 6) expanded = &skips[3];
            /* stochastic depth grows linearly with depth, as in EfficientNet */
            float drop = (float)(cfg->drop_connect * id++ / blocks);
            x = mbconv(&b, x, stage, r, stages[s][0], stages[s][1], stages[s][2], r == 0 ? stages[s][4] : 1, drop,
                       expanded);
        }
    }
    x = conv_bn_act(&b, x, 1280, 1, 1, 1, CN_OP_SWISH, "encoder.8", "encoder.8 top");

    static const int widths[5] = {256, 128, 64, 32, 16};
    for (int i = 0; i < 4; i++) x = decoder_block(&b, x, skips[3 - i], widths[i], i);
    int last_skip = -1;
    if (cfg->input_skip == CN_INPUT_SKIP_IMAGE) last_skip = g->input;
    if (cfg->input_skip == CN_INPUT_SKIP_CONV) {
        /* built next to decoder.4, its only reader, so that inference reuses its buffers right after */
        int h = conv_bn_act(&b, g->input, 16, 3, 1, 1, CN_OP_SWISH, "fullres.0", "fullres");
        last_skip = conv_bn_act(&b, h, 16, 3, 1, 1, CN_OP_SWISH, "fullres.1", "fullres");
    }
    x = decoder_block(&b, x, last_skip, widths[4], 4);
    g->output = conv(&b, x, 1, 3, 1, 1, 1, "head", "head");
    if (b.failed) {
        cn_graph_free(g);
        return CLUNET_ERR_OUT_OF_MEMORY;
    }
    return CLUNET_OK;
}
