/* cmd_train.c - `clunet train`: trains the U-Net and writes checkpoints, metrics.csv and curves. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "train/train.h"

static volatile sig_atomic_t stop_requested, stop_signal, stepped;
static int stopped_early;

/*
 * The first Ctrl-C (or SIGTERM) stops the run after its step, with a checkpoint; a second one stops it at once,
 * as the signal would (checkpoints are written atomically: nothing already saved is lost). Before this process
 * has finished a step there is nothing to save, and setting up can take minutes on a cold kernel cache: the
 * first one stops it at once. A run stopped early ends by the signal that stopped it, once saved, so that a
 * shell script or batch scheduler sees an interrupted job, not a finished one.
 */
static void on_sigint(int sig)
{
    if (stop_requested || !stepped) {
        static const char early[] = "\nclunet: train: stopped before the first step (nothing to save yet)\n";
        if (!stepped) {
            ssize_t ignored = write(STDERR_FILENO, early, sizeof early - 1);
            (void)ignored;
        }
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_signal = sig; /* before stop_requested, which the main thread may see first */
    stop_requested = 1;
    static const char note[] = "\nclunet: train: stopping after this step, with a checkpoint (again to stop at once)\n";
    ssize_t ignored = write(STDERR_FILENO, note, sizeof note - 1);
    (void)ignored;
}

static int usage(FILE *f, int status)
{
    cn_train_config d;
    cn_train_default_config(&d);
    fprintf(f,
            "usage: clunet train [--data DIR --dataset NAME | --synthetic N] [options]\n\n"
            "Trains the U-Net (EfficientNet-B0 encoder) with the focal Dice loss and Adam. Each epoch ends\n"
            "with validation on held-out images (metrics at field-of-view pixels), a row in\n"
            "OUT/metrics.csv, learning curves OUT/curve_*.png and OUT/last.safetensors;\n"
            "OUT/best.safetensors keeps the best validation F1 (`clunet report OUT` draws predictions).\n"
            "Ctrl-C (or SIGTERM) finishes the current step, writes OUT/last.safetensors and, unless\n"
            "that was the run's last step, ends as interrupted (by that signal: status 130, or 143);\n"
            "--resume continues exactly where it stopped. A second Ctrl-C, or one before the first\n"
            "step, stops at once.\n\n"
            "data:\n"
            "  --data DIR --dataset NAME  a dataset laid out as its archive unpacks (see `clunet data list`)\n"
            "  --datasets FILE            another datasets.txt than the built-in one\n"
            "  --synthetic N              N built-in synthetic retinas (default when no --data: %d)\n"
            "  --val N                    training images held out for validation, whole subjects (both\n"
            "                             eyes of a person; default: a tenth; synthetic: N/4, at least 2)\n"
            "  --fold K/N                 k-fold validation instead: the subjects dealt into N folds (by\n"
            "                             --val-seed, which defaults to --seed), fold K held out; runs of\n"
            "                             K = 1..N together validate on every training image once\n"
            "  --no-augment               no flips, rotations, zoom or colour jitter\n"
            "  --preprocess P             clahe-green (default): CLAHE of the green channel, where\n"
            "                             vessels contrast best; or rgb (kept in the checkpoint)\n"
            "model and optimisation:\n"
            "  --input-skip M    off (default): the seed's U-Net; on: its last decoder block, at full\n"
            "                    resolution, also sees the input image, as the others see encoder\n"
            "                    features (the encoder starts at half resolution); conv: it sees\n"
            "                    features of the image from two 3x3 conv-BN-swish layers at full\n"
            "                    resolution, 16 channels (kept in the checkpoint)\n"
            "  --size S          patch size, a multiple of 32 (default %d)\n"
            "  --input-scale F   resize the images by F in [0.25, 4] for training and validation,\n"
            "                    so that thin vessels span more pixels (default 1; kept in the\n"
            "                    checkpoint: eval, predict and report resize by it, and their\n"
            "                    --scales act on top of it); an epoch grows with F^2\n"
            "  --batch B         batch size (default %d)\n"
            "  --epochs E        epochs (default %d)\n"
            "  --steps N         steps per epoch (default: about one pass over the training pixels)\n"
            "  --lr LR           Adam learning rate (default %g)\n"
            "  --schedule S      cosine (default: linear warm-up from lr/100, then a cosine decay to lr/100)\n"
            "                    or constant\n"
            "  --warmup E        epochs of warm-up of the cosine schedule (default %g)\n"
            "  --weight-decay W  decoupled weight decay (default 0)\n"
            "  --drop-connect P  stochastic depth in the encoder: in training, each residual\n"
            "                    block skips its branch for a patch with a probability that grows\n"
            "                    with depth towards P (EfficientNet's drop connect, 0.2 in the seed's\n"
            "                    Keras encoder; default 0: never)\n"
            "  --ema D           validate, checkpoint and predict with a running average of the\n"
            "                    weights, moved by 1-D each step (e.g. 0.999; default 0: the\n"
            "                    weights themselves); training steps the weights as before\n"
            "  --loss-lambda L   loss = L*focal + (1-L)*dice (default: focal + dice)\n"
            "  --focal-alpha A   the focal term's weight of vessel pixels (default 0.25)\n"
            "  --focal-gamma G   the focal term's exponent, 0 or in [1, 8] (default 2); with\n"
            "                    --focal-alpha 0.5, gamma 0 makes it half the binary cross-entropy\n"
            "  --bn-eps E        batch-norm epsilon (default %g)\n"
            "  --threshold T     probability threshold for F1 and the counts (default %g)\n"
            "  --seed K          seed of weights, data order and augmentation (default %llu)\n"
            "  --val-seed K      seed of the choice of validation images (default: --seed), to\n"
            "                    compare runs of several --seed on the same validation images\n"
            "  --encoder-weights FILE  encoder.* tensors (e.g. an ImageNet EfficientNet-B0) to start from\n"
            "                          (not with --resume)\n"
            "  --resume CKPT     continue a run from its checkpoint (bit-exact)\n"
            "run:\n"
            "  --out DIR         where checkpoints and metrics go (default %s; a folder that\n"
            "                    already holds a run is refused: --resume continues it)\n"
            "  --device D        OpenCL device: index, gpu, cpu, or part of its name\n"
            "  --memory-cap MIB  refuse to use more device memory than this\n",
            d.synthetic, d.size, d.batch, d.epochs, d.lr, d.warmup_epochs, d.bn_eps, d.threshold, (unsigned long long)d.seed,
            d.out_dir);
    return status;
}

static void format_eta(double s, char *out, size_t n)
{
    long t = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    snprintf(out, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

static void progress(const cn_train_progress *p, void *user)
{
    (void)user;
    char eta[32];
    switch (p->event) {
    case CN_TRAIN_SETUP: printf("%s\n", p->message); break;
    case CN_TRAIN_STEP:
        stepped = 1;
        format_eta(p->eta_seconds, eta, sizeof eta);
        printf("epoch %d/%d  step %d/%d  loss %.4f (focal %.4f, dice %.4f)  lr %.3g  %.2f img/s  ETA %s\n", p->epoch,
               p->epochs, p->step, p->steps, p->loss, p->focal, p->dice, p->lr, p->images_per_second, eta);
        break;
    case CN_TRAIN_EPOCH:
        format_eta(p->eta_seconds, eta, sizeof eta);
        if (isnan(p->val.loss)) /* --val 0 (with images, a NaN loss stops the run before this) */
            printf("epoch %d/%d done: train loss %.4f F1 %.4f | no validation images  ETA %s\n", p->epoch, p->epochs,
                   p->loss, p->train.f1, eta);
        else
            printf("epoch %d/%d done: train loss %.4f F1 %.4f | validation (FOV pixels) loss %.4f F1 %.4f AUC %.4f "
                   "acc %.4f MCC %.4f; best F1 %.4f at threshold %.3f%s  ETA %s\n",
                   p->epoch, p->epochs, p->loss, p->train.f1, p->val.loss, p->val.f1, p->val.auc, p->val.accuracy,
                   p->val.mcc, p->val_best_f1, p->val_threshold, p->best ? "  (best)" : "", eta);
        break;
    case CN_TRAIN_STOPPED:
        stopped_early = 1;
        if (p->step) printf("stopped at epoch %d step %d", p->epoch, p->step);
        else printf("stopped after epoch %d", p->epoch - 1);
        printf("; continue with --resume on last.safetensors\n");
        break;
    }
    fflush(stdout);
}

/* A finite number: no setting here means anything by NaN or infinity. */
static int parse_double(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    /* decimal only: strtod also reads hexadecimal ("0x10" would be 16) and "inf"/"nan" */
    if (end == s || *end || !isfinite(v) || strpbrk(s, "xX")) return 0;
    *out = v;
    return 1;
}

int cmd_train(int argc, char **argv)
{
    cn_train_config cfg;
    cn_train_default_config(&cfg);
    int synthetic_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
        int n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        if (!strcmp(a, "--no-augment")) {
            cfg.augment = 0;
            continue;
        }
        if (!v) {
            fprintf(stderr, "clunet train: unknown or incomplete option '%s' (see --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--data")) cfg.data_dir = v;
        else if (!strcmp(a, "--dataset")) cfg.dataset = v;
        else if (!strcmp(a, "--datasets")) cfg.datasets_file = v;
        else if (!strcmp(a, "--out")) cfg.out_dir = v;
        else if (!strcmp(a, "--device")) cfg.device = v;
        else if (!strcmp(a, "--resume")) cfg.resume = v;
        else if (!strcmp(a, "--encoder-weights")) cfg.encoder_weights = v;
        else if (!strcmp(a, "--input-skip")) {
            if (!cn_input_skip_from_name(v, &cfg.input_skip)) return cli_bad_value(a, v);
            cfg.input_skip_given = 1;
        } else if (!strcmp(a, "--preprocess")) {
            if (!cn_preprocess_from_name(v, &cfg.preprocess)) return cli_bad_value(a, v);
            cfg.preprocess_given = 1;
        }
        else if (!strcmp(a, "--synthetic")) {
            if (!cli_parse_int(v, 1, 100000, &cfg.synthetic)) return cli_bad_value(a, v);
            synthetic_given = 1;
        } else if (!strcmp(a, "--val")) {
            if (!cli_parse_int(v, 0, 100000, &cfg.val_count)) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--fold")) {
            char k[16];
            const char *slash = strchr(v, '/');
            if (!slash || slash - v >= (long)sizeof k) return cli_bad_value(a, v);
            snprintf(k, sizeof k, "%.*s", (int)(slash - v), v);
            if (!cli_parse_int(k, 1, 1000, &cfg.fold) || !cli_parse_int(slash + 1, 2, 1000, &cfg.folds) ||
                cfg.fold > cfg.folds)
                return cli_bad_value(a, v);
        } else if (!strcmp(a, "--size")) {
            if (!cli_parse_int(v, 32, 8192, &cfg.size) || cfg.size % 32) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--batch")) {
            if (!cli_parse_int(v, 1, 1024, &cfg.batch)) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--epochs")) {
            if (!cli_parse_int(v, 1, 1000000, &cfg.epochs)) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--steps")) {
            if (!cli_parse_int(v, 1, 100000000, &cfg.steps_per_epoch)) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--memory-cap")) {
            if (!cli_parse_int(v, 1, 1 << 30, &n)) return cli_bad_value(a, v);
            cfg.memory_cap = (uint64_t)n << 20;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_parse_int(v, 0, 2147483647, &n)) return cli_bad_value(a, v);
            cfg.seed = (uint64_t)n;
        } else if (!strcmp(a, "--val-seed")) {
            if (!cli_parse_int(v, 0, 2147483647, &n)) return cli_bad_value(a, v);
            cfg.val_seed = n;
        } else if (!strcmp(a, "--lr")) {
            if (!parse_double(v, &cfg.lr) || !(cfg.lr > 0)) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--schedule")) {
            if (!strcmp(v, "cosine")) cfg.schedule = CN_LR_COSINE;
            else if (!strcmp(v, "constant")) cfg.schedule = CN_LR_CONSTANT;
            else return cli_bad_value(a, v);
        } else if (!strcmp(a, "--warmup")) {
            if (!parse_double(v, &cfg.warmup_epochs) || cfg.warmup_epochs < 0) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--weight-decay")) {
            if (!parse_double(v, &cfg.weight_decay) || cfg.weight_decay < 0) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--input-scale")) {
            if (!parse_double(v, &cfg.input_scale) ||
                !(cfg.input_scale >= CN_INPUT_SCALE_MIN && cfg.input_scale <= CN_INPUT_SCALE_MAX))
                return cli_bad_value(a, v);
        } else if (!strcmp(a, "--drop-connect")) {
            if (!parse_double(v, &cfg.drop_connect) || !(cfg.drop_connect >= 0 && cfg.drop_connect < 1))
                return cli_bad_value(a, v);
        } else if (!strcmp(a, "--ema")) {
            if (!parse_double(v, &cfg.ema) || cfg.ema < 0 || cfg.ema >= 1) return cli_bad_value(a, v);
        } else if (!strcmp(a, "--loss-lambda")) {
            if (!parse_double(v, &cfg.loss_lambda) || cfg.loss_lambda < 0 || cfg.loss_lambda > 1)
                return cli_bad_value(a, v);
        } else if (!strcmp(a, "--focal-alpha")) {
            if (!parse_double(v, &cfg.focal_alpha) || !(cfg.focal_alpha >= 0 && cfg.focal_alpha <= 1))
                return cli_bad_value(a, v);
        } else if (!strcmp(a, "--focal-gamma")) {
            if (!parse_double(v, &cfg.focal_gamma) || !(cfg.focal_gamma == 0 || (cfg.focal_gamma >= 1 && cfg.focal_gamma <= 8)))
                return cli_bad_value(a, v);
        } else if (!strcmp(a, "--bn-eps")) {
            if (!parse_double(v, &cfg.bn_eps) || !(cfg.bn_eps > 0 && cfg.bn_eps < CN_BN_EPS_MAX))
                return cli_bad_value(a, v);
            cfg.bn_eps_given = 1;
        } else if (!strcmp(a, "--threshold")) {
            if (!parse_double(v, &d) || !(d > 0 && d < 1)) return cli_bad_value(a, v);
            cfg.threshold = (float)d;
        } else {
            fprintf(stderr, "clunet train: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (cfg.dataset && !cfg.data_dir) {
        fprintf(stderr, "clunet train: --dataset needs --data DIR\n");
        return 2;
    }
    if (cfg.data_dir && !cfg.dataset) {
        fprintf(stderr, "clunet train: --data needs --dataset NAME (see `clunet data list`)\n");
        return 2;
    }
    if (cfg.folds && !cfg.data_dir) {
        fprintf(stderr, "clunet train: --fold needs --data (synthetic validation retinas are drawn apart)\n");
        return 2;
    }
    if (cfg.folds && cfg.val_count >= 0) {
        fprintf(stderr, "clunet train: --fold and --val exclude each other\n");
        return 2;
    }
    if (cfg.data_dir && synthetic_given) {
        fprintf(stderr, "clunet train: --synthetic and --data exclude each other\n");
        return 2;
    }
    if (cfg.resume && cfg.encoder_weights) { /* a resumed run continues from its checkpoint's weights */
        fprintf(stderr, "clunet train: --resume and --encoder-weights exclude each other\n");
        return 2;
    }
    cfg.stop = &stop_requested;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* `clunet train | tee log` and Ctrl-C: tee dies too, and the next progress line must not kill the run
     * before its checkpoint (lines to a closed pipe are lost, the run goes on) */
    signal(SIGPIPE, SIG_IGN);
    clunet_status st = cn_train(&cfg, progress, NULL);
    signal(SIGINT, SIG_DFL); /* a signal now has no step to finish */
    signal(SIGTERM, SIG_DFL);
    if (st != CLUNET_OK) return cli_fail("train");
    if (stopped_early) {
        fflush(stdout);
        signal(stop_signal, SIG_DFL);
        raise(stop_signal);
        return 128 + stop_signal; /* only if the signal is blocked */
    }
    return 0;
}
