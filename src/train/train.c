/* train.c - the training run (see train.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/dirs.h"
#include "common/error.h"
#include "common/files.h"
#include "data/pipeline.h"
#include "report/report.h"
#include "train/checkpoint.h"
#include "train/infer.h"
#include "train/train.h"

void cn_train_default_config(cn_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->synthetic = 32;
    cfg->size = 256;
    cfg->batch = 4;
    cfg->epochs = 70;
    cfg->val_count = -1;
    cfg->lr = 1e-3;
    cfg->schedule = CN_LR_COSINE;
    cfg->warmup_epochs = 1;
    cfg->loss_lambda = -1;
    cfg->focal_alpha = 0.25;
    cfg->focal_gamma = 2;
    cfg->bn_eps = 1e-5;
    cfg->augment = 1;
    cfg->input_scale = 1.0;
    cfg->preprocess = CN_PREPROCESS_CLAHE_GREEN;
    cfg->threshold = 0.5f;
    cfg->seed = 1;
    cfg->val_seed = -1;
    cfg->out_dir = "runs/latest";
}

typedef struct run {
    const cn_train_config *cfg;
    cn_train_callback cb;
    void *user;
    clunet_context *ctx;
    cn_graph graph;
    cn_exec exec;
    cn_infer infer;
    cn_sample_set train, val;
    cn_batch_spec spec;
    cn_batch_worker worker;
    cn_batch batch;
    cn_checkpoint_info info;
    char last_path[1024], best_path[1024], csv_path[1024];
    int out_lock; /* --out, open and locked while the run writes there (-1: none) */
    int steps; /* per epoch */
    float *prob;
} run;

static void notify(run *r, cn_train_progress *p)
{
    if (r->cb) r->cb(p, r->user);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void say(run *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cn_train_progress p = {.event = CN_TRAIN_SETUP, .message = msg};
    notify(r, &p);
}

/* Kernel choices timed while other programs kept the CPUs busy, once each (see cn_tuning_busy_note). */
static void note_busy(run *r)
{
    char note[256];
    if (cn_tuning_busy_note(r->ctx, note, sizeof note)) say(r, "%s", note);
}

static clunet_status make_dir(const char *path)
{
    char buf[1024];
    if (strlen(path) + sizeof "/last.safetensors.tmp-XXXXXX" > sizeof buf) /* the run's file names must fit too */
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--out: a path of %zu characters is too long (at most %zu)",
                       strlen(path), sizeof buf - sizeof "/last.safetensors.tmp-XXXXXX");
    snprintf(buf, sizeof buf, "%s", path);
    if (!cn_make_dirs(buf)) {
        const char *why = strerror(errno);
        if (!strcmp(buf, path)) return cn_fail(CLUNET_ERR_IO, "--out %s: cannot create it: %s", path, why);
        return cn_fail(CLUNET_ERR_IO, "--out %s: cannot create %s: %s", path, buf, why);
    }
    struct stat st;
    if (stat(buf, &st) || !S_ISDIR(st.st_mode))
        return cn_fail(CLUNET_ERR_IO, "--out %s: exists and is not a directory", path);
    return CLUNET_OK;
}

/* Whether the checkpoint at path lies in the folder dir (the same folder by device and inode: links count). */
static int in_folder(const char *path, const char *dir)
{
    char parent[1024];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(parent, sizeof parent, ".");
    else snprintf(parent, sizeof parent, "%.*s", slash == path ? 1 : (int)(slash - path), path); /* "/x": "/" */
    return cn_same_file(parent, dir);
}

/*
 * A new run into a folder that holds another run would leave that run's best.safetensors (which report and
 * eval would take for this run's) beside the new files: refused, pointing at --resume. A best.safetensors
 * alone is a first epoch killed between its two checkpoints; the new run's first epoch replaces it. A resumed
 * run writes into its checkpoint's own folder or one without a run: elsewhere it would write over that
 * folder's checkpoints and add its rows to that run's metrics.csv.
 */
static clunet_status check_no_run(const run *r)
{
    const cn_train_config *cfg = r->cfg;
    if (access(r->last_path, F_OK) != 0 || (cfg->resume && in_folder(cfg->resume, cfg->out_dir))) return CLUNET_OK;
    if (cfg->resume)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                       "--out %s already holds a run, not that of --resume %s: resume into the checkpoint's own "
                       "folder or a new one", cfg->out_dir, cfg->resume);
    return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                   "--out %s already holds a run: continue it with --resume %s, or give another --out",
                   cfg->out_dir, r->last_path);
}

/*
 * One run at a time in a folder: a second would remove the first's temporary files, write its own
 * checkpoints over the first's and mix their rows in metrics.csv. Where the file system has no locks,
 * runs go on without one.
 */
static clunet_status lock_out(run *r)
{
    r->out_lock = open(r->cfg->out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* no child (PoCL's compiler) keeps it */
    if (r->out_lock < 0) return cn_fail(CLUNET_ERR_IO, "--out %s: cannot open it: %s", r->cfg->out_dir, strerror(errno));
    if (flock(r->out_lock, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) return CLUNET_OK;
    return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--out %s: another clunet train is writing there", r->cfg->out_dir);
}

/* A crash while a checkpoint was being written leaves its temporary file: remove those. */
static void remove_stale_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    char path[2048];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strstr(e->d_name, ".safetensors.tmp-")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* metrics.csv's first line: the columns of append_csv's rows. */
static const char CSV_HEADER[] = "epoch,train_loss,train_focal,train_dice,train_f1,train_accuracy,val_loss,val_accuracy,"
                                 "val_f1,val_iou,val_mcc,val_precision,val_recall,val_specificity,val_auc,val_threshold,"
                                 "val_best_f1,lr,seconds\n";

/*
 * On resume, metrics.csv keeps only the epochs the checkpoint has (a crash may have written one more row); a new
 * run keeps none. A file of other columns (corrupt, or not train's) is refused: rows added to it would make a
 * table that report cannot read.
 */
static clunet_status trim_csv(const char *path, int epochs)
{
    FILE *in;
    clunet_status st = cn_open_read(path, &in);
    if (st != CLUNET_OK) return errno == ENOENT ? CLUNET_OK : st; /* none yet: nothing to trim */
    char tmp[1100], line[4096];
    if (fgets(line, sizeof line, in) && strcmp(line, CSV_HEADER)) {
        fclose(in);
        return cn_fail(CLUNET_ERR_FORMAT, "%s: its first line is not the header clunet train writes: move the file "
                       "away, or give another --out", path);
    }
    rewind(in);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        return cn_fail(CLUNET_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    }
    for (int row = 0; fgets(line, sizeof line, in); row++)
        if (row == 0 || atoi(line) <= epochs) fputs(line, out);
    fclose(in);
    int bad = ferror(out);
    if (fclose(out) || bad || rename(tmp, path)) {
        unlink(tmp);
        return cn_fail(CLUNET_ERR_IO, "%s: cannot rewrite it", path);
    }
    return CLUNET_OK;
}

/* Validation picks thresholds and checkpoints, which a tenth of the images does well; the rest train. */
static int default_val_count(int train_images) { return train_images / 10 > 1 ? train_images / 10 : 1; }

static uint64_t val_seed(const cn_train_config *cfg)
{
    return cfg->val_seed >= 0 ? (uint64_t)cfg->val_seed : cfg->seed;
}

static clunet_status load_data(run *r)
{
    const cn_train_config *cfg = r->cfg;
    if (!cfg->data_dir) {
        int nval = cfg->val_count >= 0 ? cfg->val_count : (cfg->synthetic / 4 > 2 ? cfg->synthetic / 4 : 2);
        /* Validation retinas come from a far part of the same stream: never seen in training. */
        CN_TRY(cn_sample_set_synthetic(&r->train, cfg->seed, 0, cfg->synthetic, cfg->size));
        CN_TRY(cn_sample_set_synthetic(&r->val, val_seed(cfg), 1000000, nval, cfg->size));
        say(r, "data: %d synthetic retinas for training, %d for validation%s, %dx%d (seed %llu, validation seed %llu)",
            r->train.count, r->val.count, r->val.count ? "" : " (so no best.safetensors)", cfg->size, cfg->size,
            (unsigned long long)cfg->seed, (unsigned long long)val_seed(cfg));
        return CLUNET_OK;
    }
    if (!cfg->dataset) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--data needs --dataset NAME (see `clunet data list`)");
    cn_catalog cat;
    CN_TRY(cn_catalog_load(cfg->datasets_file, &cat));
    const cn_dataset *set = cn_catalog_find(&cat, cfg->dataset);
    if (!set) {
        cn_catalog_free(&cat);
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--dataset %s: not in datasets.txt (see `clunet data list`)",
                       cfg->dataset);
    }
    cn_sample_list list;
    clunet_status st = cn_dataset_scan(set, cfg->data_dir, &list);
    if (st == CLUNET_OK) {
        st = cn_sample_set_load(&r->train, &list, CN_SPLIT_TRAIN, 1);
        cn_sample_list_free(&list);
    }
    cn_catalog_free(&cat);
    CN_TRY(st);
    if (cfg->folds) {
        CN_TRY(cn_sample_set_fold(&r->train, cfg->folds, cfg->fold - 1, val_seed(cfg), &r->val));
    } else {
        int nval = cfg->val_count >= 0 ? cfg->val_count : default_val_count(r->train.count);
        if (r->train.count - nval < 1)
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                           "%s: %d training images are too few to hold out %d for validation", cfg->data_dir,
                           r->train.count, nval);
        CN_TRY(cn_sample_set_split(&r->train, nval, val_seed(cfg), &r->val));
    }
    char names[200] = "";
    for (int i = 0, at = 0; i < r->val.count && at < (int)sizeof names; i++)
        at += snprintf(names + at, sizeof names - at, "%s%s", i ? " " : ": ", r->val.items[i].name);
    say(r, "data: %s from %s: %d training images, %d held out for validation%s%s", cfg->dataset, cfg->data_dir,
        r->train.count, r->val.count, r->val.count ? "" : " (so no best.safetensors)", names);
    return CLUNET_OK;
}

static int steps_per_epoch(const run *r)
{
    const cn_train_config *cfg = r->cfg;
    if (cfg->steps_per_epoch > 0) return cfg->steps_per_epoch;
    /* About one pass over the training pixels as the network sees them (resized), at least one image per slot. */
    double pixels = 0;
    for (int i = 0; i < r->train.count; i++) pixels += (double)r->train.items[i].width * r->train.items[i].height;
    pixels *= cfg->input_scale * cfg->input_scale;
    double patches = pixels / ((double)cfg->size * cfg->size);
    if (patches < r->train.count) patches = r->train.count;
    int steps = (int)ceil(patches / cfg->batch);
    return steps > 0 ? steps : 1;
}

/*
 * A resumed run must keep its learning rate, schedule and warm-up (checkpoints
 * from before schedules existed ran at a constant rate); --epochs may change,
 * which stretches or shortens a cosine decay from here on.
 */
static clunet_status check_resume_schedule(const cn_train_config *cfg, const cn_checkpoint_info *got)
{
    char sched[16];
    const char *lr = cn_checkpoint_config_value(got, "lr"), *warm = cn_checkpoint_config_value(got, "warmup_epochs");
    double was_lr = lr ? atof(lr) : cfg->lr, was_warm = warm ? atof(warm) : 0;
    int was_cosine = cn_checkpoint_config_string(got, "schedule", sched, sizeof sched) && !strcmp(sched, "cosine");
    int cosine = cfg->schedule == CN_LR_COSINE;
    if (fabs(was_lr - cfg->lr) <= 1e-6 * cfg->lr && was_cosine == cosine && (!cosine || was_warm == cfg->warmup_epochs))
        return CLUNET_OK;
    char warmup[48] = "";
    if (was_cosine) snprintf(warmup, sizeof warmup, " --warmup %g", was_warm);
    return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--resume %s: the run was trained with --lr %g --schedule %s%s; resume with the same",
                   cfg->resume, was_lr, was_cosine ? "cosine" : "constant", warmup);
}

/* The loss a run was trained with stays for its resumed part (checkpoints from before its options: the defaults). */
static clunet_status check_resume_loss(const cn_train_config *cfg, const cn_checkpoint_info *got)
{
    cn_train_config d;
    cn_train_default_config(&d);
    const char *keys[3] = {"loss_lambda", "focal_alpha", "focal_gamma"};
    double now[3] = {cfg->loss_lambda, cfg->focal_alpha, cfg->focal_gamma};
    double was[3] = {d.loss_lambda, d.focal_alpha, d.focal_gamma};
    int same = 1;
    for (int i = 0; i < 3; i++) {
        const char *v = cn_checkpoint_config_value(got, keys[i]);
        if (v) was[i] = atof(v);
        same &= fabs(was[i] - now[i]) <= 1e-6;
    }
    if (same) return CLUNET_OK;
    char lambda[40] = " and no --loss-lambda";
    if (was[0] >= 0) snprintf(lambda, sizeof lambda, " --loss-lambda %g", was[0]);
    return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                   "--resume %s: the run was trained with --focal-alpha %g --focal-gamma %g%s; resume with the same",
                   cfg->resume, was[1], was[2], lambda);
}

/*
 * A setting of the run's training that its resumed part must keep: `key` in
 * the checkpoint's config, `absent` in checkpoints that predate it. The config
 * keeps 6 significant digits (%g): equal to that precision is the same.
 */
static clunet_status check_resume_same(const cn_train_config *cfg, const cn_checkpoint_info *got, const char *key,
                                       const char *option, double now, double absent)
{
    const char *v = cn_checkpoint_config_value(got, key);
    double was = v ? atof(v) : absent;
    if (fabs(was - now) <= 1e-5 * fmax(fabs(was), fabs(now))) return CLUNET_OK;
    return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--resume %s: the run was trained with %s %g; resume with the same",
                   cfg->resume, option, was);
}

/* The data and how it is drawn: the same dataset, batch, steps an epoch, validation split and augmentation. */
static clunet_status check_resume_data(const run *r, const cn_checkpoint_info *got)
{
    const cn_train_config *cfg = r->cfg;
    char was[64];
    const char *now = cfg->data_dir && cfg->dataset ? cfg->dataset : "synthetic";
    if (cn_checkpoint_config_string(got, "dataset", was, sizeof was) && strcasecmp(was, now))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--resume %s: the run was trained on %s data, not %s; resume with the same",
                       cfg->resume, was, now);
    if (!cfg->data_dir) CN_TRY(check_resume_same(cfg, got, "synthetic", "--synthetic", cfg->synthetic, cfg->synthetic));
    CN_TRY(check_resume_same(cfg, got, "batch", "--batch", cfg->batch, cfg->batch));
    /* before --val: a fold may hold out as many images as another split */
    const char *folds = cn_checkpoint_config_value(got, "val_folds"), *fold = cn_checkpoint_config_value(got, "val_fold");
    int was_folds = folds ? atoi(folds) : 0, was_fold = fold ? atoi(fold) : 0;
    if (was_folds != cfg->folds || was_fold != cfg->fold)
        return was_folds ? cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--resume %s: the run validated on --fold %d/%d; resume "
                                   "with the same", cfg->resume, was_fold, was_folds)
                         : cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--resume %s: the run validated without --fold; resume "
                                   "without it", cfg->resume);
    CN_TRY(check_resume_same(cfg, got, "val", "--val", r->val.count, r->val.count));
    /* after --val: the default steps depend on the images left for training */
    CN_TRY(check_resume_same(cfg, got, "steps", "--steps", steps_per_epoch(r), steps_per_epoch(r)));
    const char *aug = cn_checkpoint_config_value(got, "augment");
    if (!aug || atoi(aug) == cfg->augment) return CLUNET_OK;
    return cfg->augment ? cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                                  "--resume %s: the run was trained with --no-augment; resume with it", cfg->resume)
                        : cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                                  "--resume %s: the run was trained with augmentation; resume without --no-augment",
                                  cfg->resume);
}

/* --epochs is the total: a run resumed with no more than it has done would do nothing. */
static clunet_status check_resume_epochs(const cn_train_config *cfg, const cn_checkpoint_info *got)
{
    if (got->epoch < cfg->epochs) return CLUNET_OK;
    return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                   "--resume %s: %d epoch%s done already, and --epochs %d asks for no more: give the total wanted, "
                   "more than %d", cfg->resume, got->epoch, got->epoch == 1 ? "" : "s", cfg->epochs, got->epoch);
}

/* The seeds decide the data order, the augmentation and the validation images: a resumed run keeps them. */
static clunet_status check_resume_seeds(const cn_train_config *cfg, const cn_checkpoint_info *got)
{
    if (got->seed != cfg->seed)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--resume %s: the run was trained with --seed %llu; resume with the same",
                       cfg->resume, (unsigned long long)got->seed);
    if (cn_checkpoint_val_seed(got) != val_seed(cfg))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                       "--resume %s: the run held out validation images by --val-seed %llu; resume with the same",
                       cfg->resume, (unsigned long long)cn_checkpoint_val_seed(got));
    return CLUNET_OK;
}

static clunet_status setup_model(run *r)
{
    const cn_train_config *cfg = r->cfg;
    cn_unet_config ucfg;
    cn_unet_default_config(&ucfg);
    ucfg.batch = cfg->batch;
    ucfg.height = ucfg.width = cfg->size;
    ucfg.bn_eps = cfg->bn_eps;
    ucfg.input_skip = cfg->input_skip;
    ucfg.drop_connect = cfg->drop_connect;
    if (cfg->resume) {
        cn_checkpoint_info peek;
        CN_TRY(cn_checkpoint_peek(cfg->resume, &peek));
        /* before loading: with and without an average, a checkpoint holds different tensors */
        const char *ema = cn_checkpoint_config_value(&peek, "ema");
        double was_ema = ema ? atof(ema) : 0;
        if (fabs(was_ema - cfg->ema) > 1e-9)
            return was_ema > 0 ? cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                                         "--resume %s: the run was trained with --ema %g; resume with the same",
                                         cfg->resume, was_ema)
                               : cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                                         "--resume %s: the run was trained without --ema; resume without it", cfg->resume);
        /* kept from the checkpoint when not given; given, they must agree */
        if (cfg->input_skip_given && cfg->input_skip != peek.input_skip)
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                           "--resume %s: the run was trained with --input-skip %s; resume with the same or without it",
                           cfg->resume, cn_input_skip_name(peek.input_skip));
        if (cfg->preprocess_given && cfg->preprocess != peek.preprocess)
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                           "--resume %s: the run was trained with --preprocess %s; resume with the same or without it",
                           cfg->resume, cn_preprocess_name(peek.preprocess));
        if (cfg->bn_eps_given && fabs(cfg->bn_eps - peek.bn_eps) > 1e-9 * peek.bn_eps)
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                           "--resume %s: the run was trained with --bn-eps %g; resume with the same or without it",
                           cfg->resume, peek.bn_eps);
        ucfg.bn_eps = peek.bn_eps;
        ucfg.bn_momentum = peek.bn_momentum;
        ucfg.same_padding = peek.same_padding;
        ucfg.input_skip = peek.input_skip;
    }
    CN_TRY(cn_unet_build(&ucfg, &r->graph));
    int plan = cfg->ema > 0 ? CN_EXEC_TRAINING_EMA : 1;
    clunet_status st = cn_exec_create(r->ctx, &r->graph, plan, &r->exec);
    if (st == CLUNET_ERR_OUT_OF_MEMORY) {
        size_t need = cn_exec_planned_bytes(&r->graph, plan);
        return cn_fail(st, "%s; training at batch %d and %dx%d needs about %.0f MiB: try a smaller --batch or --size",
                       clunet_last_error(), cfg->batch, cfg->size, cfg->size, need / 1048576.0);
    }
    CN_TRY(st);
    r->exec.adam.lr = (float)cfg->lr;
    r->exec.adam.weight_decay = (float)cfg->weight_decay;
    r->exec.drop_seed = cfg->seed;
    if (cfg->ema > 0) CN_TRY(cn_exec_ema_enable(&r->exec, (float)cfg->ema));
    r->exec.loss.lambda = (float)cfg->loss_lambda;
    r->exec.loss.alpha = (float)cfg->focal_alpha;
    r->exec.loss.gamma = (float)cfg->focal_gamma;

    r->info.seed = cfg->seed;
    r->info.preprocess = cfg->preprocess;
    r->info.size = cfg->size;
    r->info.best_f1 = -1;
    r->info.bn_eps = ucfg.bn_eps;
    r->info.bn_momentum = ucfg.bn_momentum;
    r->info.same_padding = ucfg.same_padding;
    r->info.input_skip = ucfg.input_skip;
    r->info.input_scale = cfg->input_scale;
    snprintf(r->info.config, sizeof r->info.config,
             "{\"batch\": %d, \"epochs\": %d, \"steps\": %d, \"lr\": %g, \"schedule\": \"%s\", \"warmup_epochs\": %g, "
             "\"weight_decay\": %g, \"ema\": %g, \"loss_lambda\": %g, \"focal_alpha\": %g, \"focal_gamma\": %g, "
             "\"drop_connect\": %g, \"augment\": %d, "
             "\"synthetic\": %d, \"val\": %d, %s\"val_seed\": %llu, \"val_folds\": %d, \"val_fold\": %d, "
             "\"dataset\": \"%s\"}",
             cfg->batch, cfg->epochs, steps_per_epoch(r), cfg->lr, cfg->schedule == CN_LR_COSINE ? "cosine" : "constant",
             cfg->warmup_epochs, cfg->weight_decay, cfg->ema, cfg->loss_lambda, cfg->focal_alpha, cfg->focal_gamma,
             cfg->drop_connect, cfg->augment,
             /* without val_by_subject, clunets before --fold refuse to rebuild a fold's split by its count */
             cfg->data_dir ? 0 : cfg->synthetic, r->val.count, cfg->folds ? "" : "\"val_by_subject\": 1, ",
             (unsigned long long)val_seed(cfg), cfg->folds, cfg->fold,
             cfg->data_dir && cfg->dataset ? cfg->dataset : "synthetic");
    if (cfg->resume) {
        cn_checkpoint_info got;
        CN_TRY(cn_checkpoint_load(cfg->resume, &r->exec, &got, 1));
        if (got.size != cfg->size)
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--resume %s: was trained at --size %d, not %d", cfg->resume,
                           got.size, cfg->size);
        CN_TRY(check_resume_schedule(cfg, &got));
        CN_TRY(check_resume_loss(cfg, &got));
        /* stochastic depth and weight decay: 0 in checkpoints that predate them */
        CN_TRY(check_resume_same(cfg, &got, "drop_connect", "--drop-connect", cfg->drop_connect, 0));
        CN_TRY(check_resume_same(cfg, &got, "weight_decay", "--weight-decay", cfg->weight_decay, 0));
        if (fabs(got.input_scale - cfg->input_scale) > 1e-9)
            return cn_fail(CLUNET_ERR_INVALID_ARGUMENT,
                           "--resume %s: the run was trained with --input-scale %g; resume with the same", cfg->resume,
                           got.input_scale);
        CN_TRY(check_resume_data(r, &got)); /* after --input-scale: the default steps depend on it */
        CN_TRY(check_resume_epochs(cfg, &got));
        r->info.epoch = got.epoch;
        r->info.epoch_step = got.epoch_step;
        memcpy(r->info.partial_loss, got.partial_loss, sizeof got.partial_loss);
        memcpy(r->info.partial_counts, got.partial_counts, sizeof got.partial_counts);
        r->info.best_f1 = got.best_f1;
        r->info.threshold = got.threshold;
        r->info.preprocess = got.preprocess;
        memcpy(r->info.input_mean, got.input_mean, sizeof got.input_mean);
        memcpy(r->info.input_std, got.input_std, sizeof got.input_std);
        say(r, "resumed from %s: %d epochs and %d steps done (Adam step %d); it keeps its --preprocess %s and "
            "--input-skip %s", cfg->resume, got.epoch, got.epoch_step, r->exec.step, cn_preprocess_name(got.preprocess),
            cn_input_skip_name(ucfg.input_skip));
        return cn_sample_set_preprocess(&r->train, r->info.preprocess);
    }
    float *params = malloc(r->graph.trainable_floats * sizeof(float));
    float *state = malloc((r->graph.state_floats ? r->graph.state_floats : 1) * sizeof(float));
    st = params && state ? CLUNET_OK : cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    if (!st) {
        cn_graph_init_params(&r->graph, cfg->seed, params, state);
        st = cn_buffer_write(r->ctx, r->exec.params, 0, r->graph.trainable_floats * sizeof(float), params);
    }
    if (!st && r->graph.state_floats)
        st = cn_buffer_write(r->ctx, r->exec.state, 0, r->graph.state_floats * sizeof(float), state);
    free(params);
    free(state);
    CN_TRY(st);
    if (cfg->encoder_weights) {
        CN_TRY(cn_checkpoint_load_encoder(cfg->encoder_weights, &r->exec));
        say(r, "encoder weights from %s", cfg->encoder_weights);
    }
    CN_TRY(cn_exec_ema_reset(&r->exec));
    CN_TRY(cn_sample_set_preprocess(&r->train, r->info.preprocess));
    cn_sample_set_stats(&r->train, r->info.input_mean, r->info.input_std);
    return CLUNET_OK;
}

double cn_train_lr(const cn_train_config *cfg, long step, long total, long warmup_steps)
{
    if (cfg->schedule == CN_LR_CONSTANT) return cfg->lr;
    const double low = 0.01; /* of lr, at both ends: the first steps and the last move the weights a little */
    if (step < warmup_steps) return cfg->lr * (low + (1 - low) * (double)(step + 1) / warmup_steps);
    double span = (double)(total - warmup_steps), t = span > 1 ? (step - warmup_steps) / (span - 1) : 0;
    return cfg->lr * (low + (1 - low) * 0.5 * (1 + cos(3.14159265358979323846 * t)));
}

/* For the messages that stop a run: where its last good weights are, if this run wrote any. */
static const char *last_good(const run *r, char *text, size_t size)
{
    if (access(r->last_path, F_OK) == 0) snprintf(text, size, "the last good checkpoint is %s", r->last_path);
    else snprintf(text, size, "no checkpoint had been written");
    return text;
}

/* s: scores at the configured threshold; *threshold and *best_f1: the best-F1 threshold and its F1. */
static clunet_status validate(run *r, int epoch, cn_scores *s, float *threshold, double *best_f1)
{
    *threshold = 0, *best_f1 = NAN;
    if (r->val.count == 0) {
        cn_scores_from_counts(0, 0, 0, 0, s);
        s->f1 = NAN;
        return CLUNET_OK;
    }
    cn_eval_acc *acc = malloc(sizeof *acc);
    if (!acc) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    cn_eval_reset(acc, r->cfg->threshold);
    clunet_status st = CLUNET_OK;
    for (int i = 0; i < r->val.count && st == CLUNET_OK; i++) {
        const cn_sample_image *im = &r->val.items[i];
        st = cn_infer_image(&r->infer, im, r->prob);
        if (st == CLUNET_OK) cn_eval_add(acc, r->prob, im->label, im->mask, (size_t)im->width * im->height);
    }
    if (st == CLUNET_OK) {
        cn_eval_scores(acc, s);
        *threshold = cn_eval_best_threshold(acc, best_f1);
    }
    free(acc);
    if (st == CLUNET_OK && !isfinite(s->loss)) {
        char good[1100];
        st = cn_fail(CLUNET_ERR_NUMERIC, "the validation loss is %g after epoch %d, step %d: training stopped; %s",
                     s->loss, epoch, r->steps, last_good(r, good, sizeof good));
    }
    return st;
}

static clunet_status append_csv(run *r, int epoch, const cn_train_progress *p, double seconds)
{
    FILE *f = fopen(r->csv_path, "a+");
    if (!f) return cn_fail(CLUNET_ERR_IO, "%s: cannot open for writing: %s", r->csv_path, strerror(errno));
    fseek(f, 0, SEEK_END);
    if (ftell(f) == 0) fputs(CSV_HEADER, f);
    const cn_scores *t = &p->train, *v = &p->val;
    fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f,%.6f,", epoch, p->loss, p->focal, p->dice, t->f1, t->accuracy);
    if (r->val.count > 0)
        fprintf(f, "%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.4f,%.6f,", v->loss, v->accuracy, v->f1, v->iou, v->mcc,
                v->precision, v->recall, v->specificity, v->auc, p->val_threshold, p->val_best_f1);
    else
        fputs(",,,,,,,,,,,", f); /* --val 0: no validation columns to report, not zeros */
    fprintf(f, "%.6g,%.1f\n", p->lr, seconds);
    int bad = ferror(f);
    if (fclose(f) || bad) return cn_fail(CLUNET_ERR_IO, "%s: write failed", r->csv_path);
    return CLUNET_OK;
}

/* Saves with `epoch` epochs and `epoch_step` steps of the next done; `sum` holds those steps' losses. */
static clunet_status save(run *r, const char *path, int epoch, int epoch_step, const double sum[3])
{
    r->info.epoch = epoch;
    r->info.epoch_step = epoch_step;
    memset(r->info.partial_loss, 0, sizeof r->info.partial_loss);
    memset(r->info.partial_counts, 0, sizeof r->info.partial_counts);
    if (epoch_step > 0) {
        uint32_t *hist = malloc(2 * CN_EXEC_BINS * sizeof *hist);
        if (!hist) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
        clunet_status st = cn_exec_metrics_read(&r->exec, r->info.partial_counts, hist);
        free(hist);
        CN_TRY(st);
        memcpy(r->info.partial_loss, sum, sizeof r->info.partial_loss);
    }
    clunet_status st = cn_checkpoint_save(path, &r->exec, &r->info, 1);
    if (st == CLUNET_ERR_NUMERIC) {
        char good[1100];
        st = cn_fail(st, "%s: training stopped at epoch %d, step %d; %s", clunet_last_error(),
                     epoch + (epoch_step > 0), epoch_step > 0 ? epoch_step : r->steps, last_good(r, good, sizeof good));
    }
    return st;
}

static clunet_status train_epochs(run *r)
{
    const cn_train_config *cfg = r->cfg;
    int steps = r->steps = steps_per_epoch(r), first_epoch = r->info.epoch, first_step = r->info.epoch_step;
    if (first_step >= steps)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--resume: the checkpoint stopped at step %d of an epoch of %d steps: "
                       "resume with the same --steps, --batch and data", first_step, steps);
    long run_steps = (long)cfg->epochs * steps, warmup = (long)ceil(cfg->warmup_epochs * steps);
    /* --warmup may equal --epochs (the default 1 with --epochs 1): leave half the run for the decay */
    if (warmup >= run_steps) warmup = run_steps / 2;
    char scaled[48] = "";
    if (cfg->input_scale != 1) snprintf(scaled, sizeof scaled, " of the images resized by %g", cfg->input_scale);
    say(r, "training: %d epoch%s x %d steps of batch %d at %dx%d%s, Adam lr %g%s; checkpoints in %s", cfg->epochs,
        cfg->epochs == 1 ? "" : "s", steps, cfg->batch, cfg->size, cfg->size, scaled, cfg->lr,
        cfg->schedule == CN_LR_COSINE ? " (warm-up, then cosine decay)" : "", cfg->out_dir);
    cn_batch_worker_request(&r->worker, first_epoch, first_step);
    double t_start = cn_seconds(), t_first = 0; /* t_first: the end of the first step */
    double t_val = 0, val_last = 0;             /* validations and saves since t_first, and the latest one */
    double per_step = 0;                        /* seconds per training step, as of the latest one */
    long done = 0, total = (long)(cfg->epochs - first_epoch) * steps - first_step;
    for (int epoch = first_epoch; epoch < cfg->epochs; epoch++) {
        double t_epoch = cn_seconds(), sum[3] = {0};
        int first = epoch == first_epoch ? first_step : 0;
        CN_TRY(cn_exec_metrics_reset(&r->exec));
        if (first > 0) {
            /* A run stopped mid-epoch: carry on with that epoch's sums and training counts. */
            memcpy(sum, r->info.partial_loss, sizeof sum);
            CN_TRY(cn_buffer_write(r->ctx, r->exec.metric_counts, 0, sizeof r->info.partial_counts,
                                   r->info.partial_counts));
        }
        for (int step = first; step < steps; step++) {
            cn_batch_worker_take(&r->worker, &r->batch);
            if (step + 1 < steps) cn_batch_worker_request(&r->worker, epoch, step + 1);
            else if (epoch + 1 < cfg->epochs) cn_batch_worker_request(&r->worker, epoch + 1, 0);
            float loss[3];
            double lr = cn_train_lr(cfg, (long)epoch * steps + step, run_steps, warmup);
            r->exec.adam.lr = (float)lr;
            CN_TRY(cn_exec_set_batch(&r->exec, r->batch.images, r->batch.labels, r->batch.masks));
            CN_TRY(cn_exec_forward(&r->exec, 1));
            CN_TRY(cn_exec_loss(&r->exec, 1));
            CN_TRY(cn_exec_read_loss(&r->exec, loss));
            if (!isfinite(loss[0])) {
                char good[1100];
                return cn_fail(CLUNET_ERR_NUMERIC, "the loss is %g at epoch %d, step %d: training stopped; %s",
                               loss[0], epoch + 1, step + 1, last_good(r, good, sizeof good));
            }
            CN_TRY(cn_exec_backward(&r->exec));
            CN_TRY(cn_exec_adam(&r->exec));
            CN_TRY(cn_exec_ema_update(&r->exec));
            CN_TRY(cn_exec_metrics(&r->exec, cfg->threshold));
            for (int k = 0; k < 3; k++) sum[k] += loss[k];
            double now = cn_seconds();
            if (++done == 1) t_first = now;
            /*
             * Seconds per training step from the end of the first, which also builds the kernels; the
             * validations left each cost the latest one.
             */
            per_step = done > 1 ? (now - t_first - t_val) / (double)(done - 1) : now - t_start;
            cn_train_progress p = {.event = CN_TRAIN_STEP, .epoch = epoch + 1, .epochs = cfg->epochs,
                                   .step = step + 1, .steps = steps, .loss = loss[0], .focal = loss[1],
                                   .dice = loss[2], .lr = lr, .images_per_second = cfg->batch / per_step,
                                   .eta_seconds = per_step * (total - done) + val_last * (cfg->epochs - epoch)};
            notify(r, &p);
            if (done == 1) note_busy(r);
            /* Ctrl-C: stop here, unless this is the epoch's last step (then after its validation and save). */
            if (cfg->stop && *cfg->stop && step + 1 < steps) {
                CN_TRY(save(r, r->last_path, epoch, step + 1, sum));
                cn_train_progress s = {.event = CN_TRAIN_STOPPED, .epoch = epoch + 1, .step = step + 1};
                notify(r, &s);
                return CLUNET_OK;
            }
        }
        uint32_t counts[4], *hist = malloc(2 * CN_EXEC_BINS * sizeof *hist);
        if (!hist) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
        clunet_status st = cn_exec_metrics_read(&r->exec, counts, hist);
        free(hist);
        CN_TRY(st);
        cn_train_progress p = {.event = CN_TRAIN_EPOCH, .epoch = epoch + 1, .epochs = cfg->epochs,
                               .steps = steps, .loss = (float)(sum[0] / steps), .focal = (float)(sum[1] / steps),
                               .dice = (float)(sum[2] / steps),
                               .lr = cn_train_lr(cfg, (long)(epoch + 1) * steps - 1, run_steps, warmup)};
        cn_scores_from_counts(counts[0], counts[1], counts[2], counts[3], &p.train);
        double t_val0 = cn_seconds();
        cn_exec_ema_swap(&r->exec); /* validation scores the average (a no-op without one) */
        st = validate(r, epoch + 1, &p.val, &p.val_threshold, &p.val_best_f1);
        cn_exec_ema_swap(&r->exec);
        CN_TRY(st);
        /* ReLU turns NaN into 0, so weights gone non-finite can leave every loss finite: stop before their row. */
        st = cn_checkpoint_check(&r->exec);
        if (st == CLUNET_ERR_NUMERIC) {
            char good[1100];
            st = cn_fail(st, "%s after epoch %d: training stopped; %s", clunet_last_error(), epoch + 1,
                         last_good(r, good, sizeof good));
        }
        CN_TRY(st);
        p.best = r->val.count > 0 && p.val_best_f1 > r->info.best_f1;
        if (p.best) r->info.best_f1 = p.val_best_f1;
        if (r->val.count > 0) r->info.threshold = p.val_threshold; /* each checkpoint: its own weights' choice */
        CN_TRY(append_csv(r, epoch + 1, &p, cn_seconds() - t_epoch));
        /* Curves are a convenience: failing to draw them must not stop a long run. */
        if (cn_report_curves(r->csv_path, cfg->out_dir) != CLUNET_OK)
            say(r, "learning curves not drawn: %s", clunet_last_error());
        /* best before last: a crash between the two must not leave last claiming a best that isn't on disk */
        if (p.best) CN_TRY(save(r, r->best_path, epoch + 1, 0, sum));
        CN_TRY(save(r, r->last_path, epoch + 1, 0, sum));
        val_last = cn_seconds() - t_val0;
        if (done > 0) t_val += val_last;
        p.eta_seconds = per_step * (total - done) + val_last * (cfg->epochs - epoch - 1);
        notify(r, &p);
        note_busy(r); /* the validation's shapes are timed at the first */
        if (cfg->stop && *cfg->stop && epoch + 1 < cfg->epochs) {
            cn_train_progress s = {.event = CN_TRAIN_STOPPED, .epoch = epoch + 2, .step = 0};
            notify(r, &s);
            return CLUNET_OK;
        }
    }
    return CLUNET_OK;
}

static clunet_status check_config(const cn_train_config *cfg)
{
    if (cfg->size < 32 || cfg->size > 8192 || cfg->size % 32) /* 8192: what a checkpoint may record */
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--size %d: must be a multiple of 32 up to 8192", cfg->size);
    if (cfg->batch < 1) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--batch %d: must be at least 1", cfg->batch);
    if (cfg->epochs < 1) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--epochs %d: must be at least 1", cfg->epochs);
    if (!(cfg->lr > 0) || !isfinite(cfg->lr))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--lr %g: must be positive", cfg->lr);
    if (!(cfg->warmup_epochs >= 0) || cfg->warmup_epochs > cfg->epochs)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--warmup %g: must be between 0 and --epochs", cfg->warmup_epochs);
    if (cfg->loss_lambda > 1) return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--loss-lambda %g: must be in [0, 1]", cfg->loss_lambda);
    if (!(cfg->focal_alpha >= 0 && cfg->focal_alpha <= 1))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--focal-alpha %g: must be in [0, 1]", cfg->focal_alpha);
    if (!(cfg->focal_gamma == 0 || (cfg->focal_gamma >= 1 && cfg->focal_gamma <= 8)))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--focal-gamma %g: must be 0 or in [1, 8]", cfg->focal_gamma);
    if (!(cfg->bn_eps > 0 && cfg->bn_eps < CN_BN_EPS_MAX))
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--bn-eps %g: must be in (0, %g)", cfg->bn_eps, CN_BN_EPS_MAX);
    if (!cfg->data_dir && cfg->synthetic < 1)
        return cn_fail(CLUNET_ERR_INVALID_ARGUMENT, "--synthetic %d: must be at least 1", cfg->synthetic);
    return CLUNET_OK;
}

clunet_status cn_train(const cn_train_config *cfg, cn_train_callback cb, void *user)
{
    CN_TRY(check_config(cfg));
    run *r = calloc(1, sizeof *r);
    if (!r) return cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    r->cfg = cfg;
    r->cb = cb;
    r->user = user;
    r->out_lock = -1;
    snprintf(r->last_path, sizeof r->last_path, "%s/last.safetensors", cfg->out_dir);
    snprintf(r->best_path, sizeof r->best_path, "%s/best.safetensors", cfg->out_dir);
    snprintf(r->csv_path, sizeof r->csv_path, "%s/metrics.csv", cfg->out_dir);

    clunet_settings s;
    clunet_default_settings(&s);
    s.device = cfg->device;
    s.memory_cap_bytes = cfg->memory_cap;
    struct stat out_stat;
    int out_existed = stat(cfg->out_dir, &out_stat) == 0;
    clunet_status st = make_dir(cfg->out_dir);
    if (!st) st = lock_out(r);
    if (!st) remove_stale_temporaries(cfg->out_dir);
    if (!st) st = check_no_run(r);
    if (!st) {
        /* metrics.csv holds this run's epochs: those of the checkpoint when resuming, else none yet. */
        cn_checkpoint_info peek = {0};
        if (cfg->resume) st = cn_checkpoint_peek(cfg->resume, &peek);
        if (!st && cfg->resume) st = check_resume_seeds(cfg, &peek);
        if (!st) st = trim_csv(r->csv_path, peek.epoch);
    }
    if (!st) st = clunet_context_create(&s, &r->ctx);
    if (!st) say(r, "device: %s (%s)", r->ctx->info.name, r->ctx->info.platform);
    if (!st) st = load_data(r);
    char note[1280]; /* after the data: bad data is refused without minutes of compiling announced first */
    if (!st && cn_first_run_note(r->ctx, note, sizeof note)) say(r, "%s", note);
    if (!st) st = setup_model(r);
    if (!st) {
        r->spec.batch = cfg->batch;
        r->spec.size = cfg->size;
        r->spec.seed = cfg->seed;
        r->spec.input_scale = (float)r->info.input_scale;
        memcpy(r->spec.mean, r->info.input_mean, sizeof r->spec.mean);
        memcpy(r->spec.std, r->info.input_std, sizeof r->spec.std);
        cn_augment_default(&r->spec.aug);
        r->spec.aug.enabled = cfg->augment;
        size_t most = 1;
        for (int i = 0; i < r->val.count; i++)
            if ((size_t)r->val.items[i].width * r->val.items[i].height > most)
                most = (size_t)r->val.items[i].width * r->val.items[i].height;
        r->prob = malloc(most * sizeof *r->prob);
        if (!r->prob) st = cn_fail(CLUNET_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    if (!st) st = cn_infer_init(&r->infer, &r->exec, r->info.input_mean, r->info.input_std);
    if (!st) r->infer.preprocess = r->info.preprocess;
    if (!st) r->infer.input_scale = (float)r->info.input_scale;
    if (!st) st = cn_batch_alloc(&r->batch, cfg->batch, cfg->size);
    if (!st) st = cn_batch_worker_start(&r->worker, &r->train, &r->spec);
    if (!st) st = train_epochs(r);

    cn_batch_worker_stop(&r->worker);
    cn_batch_free(&r->batch);
    cn_infer_free(&r->infer);
    free(r->prob);
    cn_exec_destroy(&r->exec);
    cn_graph_free(&r->graph);
    cn_sample_set_free(&r->train);
    cn_sample_set_free(&r->val);
    if (r->ctx) clunet_context_destroy(r->ctx);
    if (r->out_lock >= 0) close(r->out_lock); /* closing releases the lock */
    if (st && !out_existed) rmdir(cfg->out_dir); /* a failed run leaves no empty folder (rmdir: only if empty) */
    free(r);
    return st;
}
