#!/usr/bin/python3
"""test_resume.py CLUNET - `clunet train --resume` is bit-exact.

N epochs in one run must equal k epochs then --resume to N, and runs stopped by SIGINT or
SIGTERM (mid-epoch, in the last step of an epoch, during a checkpoint write) must write
last.safetensors, end by that signal (so that a shell or scheduler sees an interrupted job)
and, resumed, equal the uninterrupted run: metrics.csv rows (all columns but the wall-clock
seconds), checkpoint tensors byte for byte, metadata.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
import rel  # noqa: E402

EPOCHS, STEPS = 2, 3


def train_cmd(clunet, out, epochs=EPOCHS, resume=False, steps=STEPS, extra=()):
    cmd = [clunet, 'train'] + rel.TINY + ['--steps', str(steps), '--epochs', str(epochs), '--seed', '5', '--out', out]
    return cmd + list(extra) + (['--resume', os.path.join(out, 'last.safetensors')] if resume else [])


def split_and_resume(t, clunet, work, full, extra, without):
    """The run `full` again as 1 epoch with `extra` (its last two items an option and its value), then a
    resume with `without` instead (refused in one line naming the option and value), then a resume with
    `extra` to epoch EPOCHS, which must equal `full` bit for bit. Returns the split run's folder."""
    option = ' '.join(extra[-2:])
    split = os.path.join(work, 'split-' + extra[-2].lstrip('-'))
    r = rel.run(train_cmd(clunet, split, epochs=1, extra=extra), 180)
    t.check(r.rc == 0, '%s: first 1 epoch of %d' % (option, EPOCHS), rel.describe(r))
    r = rel.run(train_cmd(clunet, split, resume=True, extra=without), 60)
    t.check(r.rc not in (0, None) and option in r.err and len(r.err_lines()) == 1,
            '%s: resuming without it is refused in one line naming it' % option, rel.describe(r))
    r = rel.run(train_cmd(clunet, split, resume=True, extra=extra), 180)
    t.check(r.rc == 0 and 'resumed from' in r.out, '%s: --resume to epoch %d' % (option, EPOCHS), rel.describe(r))
    rel.compare_runs(t, '%s: 1 + %d epochs vs %d' % (option, EPOCHS - 1, EPOCHS), full, split, ignore_meta=('config',))
    return split


def interrupted(clunet, out, trigger, steps, sig, timeout=120):
    """Runs training and sends `sig` once `trigger(line)` holds for a line of its output (or,
    with trigger 'write', once a checkpoint write is under way). Returns (rc, output, sent)."""
    p = subprocess.Popen(train_cmd(clunet, out, steps=steps), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, errors='replace')
    sent = threading.Event()
    if trigger == 'write':
        def watch():
            while p.poll() is None and not sent.is_set():
                if os.path.isdir(out) and rel.temp_files(out):
                    p.send_signal(sig)
                    sent.set()
                time.sleep(0.002)
        threading.Thread(target=watch, daemon=True).start()
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    lines = []
    for line in p.stdout:
        lines.append(line)
        if trigger != 'write' and not sent.is_set() and trigger(line):
            p.send_signal(sig)
            sent.set()
    rc = p.wait()
    timer.cancel()
    return rc, ''.join(lines), sent.is_set()


def main():
    clunet, = rel.args_or_usage(1, 'test_resume.py CLUNET')
    t = rel.Tally('resume', budget_s=240)
    work = rel.workdir('resume')
    full = os.path.join(work, 'full')

    r = rel.run(train_cmd(clunet, full), 180)
    if not t.check(r.rc == 0, 'uninterrupted run: %d epochs x %d steps (%.1f s)' % (EPOCHS, STEPS, r.seconds),
                   rel.describe(r)):
        t.finish()

    # k epochs, then resume to N. Extending a run's --epochs reshapes a cosine schedule from
    # then on, so these two use a constant rate; a best.safetensors written by the first
    # part records its --epochs 1 in "config".
    constant = ('--schedule', 'constant')
    full_constant = os.path.join(work, 'full-constant')
    r = rel.run(train_cmd(clunet, full_constant, extra=constant), 180)
    t.check(r.rc == 0, 'uninterrupted run with a constant rate', rel.describe(r))
    split = os.path.join(work, 'split')
    r = rel.run(train_cmd(clunet, split, epochs=1, extra=constant), 180)
    t.check(r.rc == 0, 'first 1 epoch of %d' % EPOCHS, rel.describe(r))
    # naming the run's own --preprocess, --input-skip and --bn-eps is allowed (others are refused, below)
    same = constant + ('--preprocess', 'clahe-green', '--input-skip', 'off', '--bn-eps', '1e-5')
    r = rel.run(train_cmd(clunet, split, resume=True, extra=same), 180)
    t.check(r.rc == 0 and 'resumed from' in r.out, '--resume to epoch %d' % EPOCHS, rel.describe(r))
    rel.compare_runs(t, '1 + %d epochs vs %d' % (EPOCHS - 1, EPOCHS), full_constant, split, ignore_meta=('config',))
    before = sorted(os.listdir(split))
    r = rel.run(train_cmd(clunet, split, resume=True, extra=constant), 60)
    t.check(r.rc not in (0, None) and '--epochs %d' % EPOCHS in r.err and len(r.err_lines()) == 1,
            'resuming a finished run with the same --epochs is refused in one line naming it', rel.describe(r))
    t.check(sorted(os.listdir(split)) == before, '... and leaves its folder as it was')
    # --resume into the folder of another run would write over its checkpoints and add to its metrics.csv
    other = os.path.join(work, 'full')
    files = lambda d: {n: open(os.path.join(d, n), 'rb').read() for n in sorted(os.listdir(d))}
    kept = files(other)
    r = rel.run(train_cmd(clunet, other, epochs=EPOCHS + 1, extra=constant) +
                ['--resume', os.path.join(split, 'last.safetensors')], 60)
    t.check(r.rc not in (0, None) and 'already holds a run' in r.err and len(r.err_lines()) == 1,
            'resuming into the folder of another run is refused in one line', rel.describe(r))
    t.check(files(other) == kept, '... and leaves that run\'s files as they were')
    moved = os.path.join(work, 'split-moved')
    r = rel.run(train_cmd(clunet, moved, epochs=EPOCHS + 1, extra=constant) +
                ['--resume', os.path.join(split, 'last.safetensors')], 180)
    t.check(r.rc == 0 and rel.epochs_in_csv(os.path.join(moved, 'metrics.csv')) == [EPOCHS + 1],
            'resuming into a new folder still works', rel.describe(r))
    # a metrics.csv that is not train's (here corrupt): rows added to it would make a table report cannot read
    with open(os.path.join(moved, 'metrics.csv'), 'w') as f:
        f.write('xx,yy\n')
    r = rel.run(train_cmd(clunet, moved, epochs=EPOCHS + 2, resume=True, extra=constant), 60)
    t.check(r.rc not in (0, None) and 'metrics.csv' in r.err and len(r.err_lines()) == 1,
            'resuming with a corrupt metrics.csv is refused in one line naming it', rel.describe(r))
    t.check(open(os.path.join(moved, 'metrics.csv')).read() == 'xx,yy\n', '... and leaves it as it was')

    # --ema: training is unchanged (its loss columns equal the run without it), validation and the
    # checkpoints' NAME tensors are the running average, train.NAME the stepped weights, and a
    # resume restores both; resuming without the same --ema is refused.
    ema = constant + ('--ema', '0.9')
    full_ema = os.path.join(work, 'full-ema')
    r = rel.run(train_cmd(clunet, full_ema, extra=ema), 180)
    if t.check(r.rc == 0, 'uninterrupted run with --ema 0.9', rel.describe(r)):
        plain = rel.csv_rows(os.path.join(full_constant, 'metrics.csv'))
        avg = rel.csv_rows(os.path.join(full_ema, 'metrics.csv'))
        train_cols = ('train_loss', 'train_focal', 'train_dice', 'train_f1', 'train_accuracy')
        t.check(len(plain) == len(avg) and all(a[k] == b[k] for a, b in zip(plain, avg) for k in train_cols),
                '--ema: training columns identical to the run without it')
        t.check(any(a['val_loss'] != b['val_loss'] for a, b in zip(plain, avg)),
                '--ema: validation scores the average (val_loss differs)')
        _, digests, _ = rel.st_scan(os.path.join(full_ema, 'last.safetensors'))
        names = [k for k in digests if not k.startswith(('adam.', 'train.'))]
        t.check(all('train.' + k in digests for k in names), '--ema: train.NAME beside every NAME (%d)' % len(names))
        t.check(any(digests[k] != digests.get('train.' + k) for k in names), '--ema: NAME (the average) differs from train.NAME')
        _, ref_digests, _ = rel.st_scan(os.path.join(full_constant, 'last.safetensors'))
        t.check(all(digests.get('train.' + k) == ref_digests[k] for k in names),
                '--ema: train.NAME byte-identical to the weights of the run without it')
    split_ema = split_and_resume(t, clunet, work, full_ema, ema, constant)

    # --drop-connect: the stochastic depth draws follow the step, so a resumed run repeats them bit for bit;
    # they change training (its loss differs from the run without), and resuming without them is refused.
    drop = constant + ('--drop-connect', '0.5')
    full_drop = os.path.join(work, 'full-drop')
    r = rel.run(train_cmd(clunet, full_drop, extra=drop), 180)
    if t.check(r.rc == 0, 'uninterrupted run with --drop-connect 0.5', rel.describe(r)):
        plain = rel.csv_rows(os.path.join(full_constant, 'metrics.csv'))
        dropped = rel.csv_rows(os.path.join(full_drop, 'metrics.csv'))
        t.check(any(a['train_loss'] != b['train_loss'] for a, b in zip(plain, dropped)),
                '--drop-connect: training differs from the run without it')
        meta = rel.st_header(os.path.join(full_drop, 'last.safetensors'))[1]
        t.check('"drop_connect": 0.5' in meta.get('config', ''), '--drop-connect: kept in the checkpoint\'s config',
                meta.get('config', '')[:300])
    split_and_resume(t, clunet, work, full_drop, drop, constant)

    # --input-scale: the images resized for training and validation (kept in the checkpoint's config);
    # resuming without it is refused.
    scaled = constant + ('--input-scale', '1.5')
    full_scaled = os.path.join(work, 'full-scaled')
    r = rel.run(train_cmd(clunet, full_scaled, epochs=1, extra=scaled), 180)
    if t.check(r.rc == 0, 'one epoch with --input-scale 1.5', rel.describe(r)):
        plain = rel.csv_rows(os.path.join(full_constant, 'metrics.csv'))[0]
        row = rel.csv_rows(os.path.join(full_scaled, 'metrics.csv'))[0]
        t.check(row['train_loss'] != plain['train_loss'] and row['val_loss'] != plain['val_loss'],
                '--input-scale: training and validation differ from the run without it')
        meta = rel.st_header(os.path.join(full_scaled, 'last.safetensors'))[1]
        t.check('"input_scale": 1.5' in meta.get('config', ''), '--input-scale: kept in the checkpoint\'s config',
                meta.get('config', '')[:300])
        r = rel.run(train_cmd(clunet, full_scaled, resume=True, extra=constant), 60)
        t.check(r.rc not in (0, None) and '--input-scale 1.5' in r.err and len(r.err_lines()) == 1,
                '--input-scale: resuming without it is refused in one line naming it', rel.describe(r))

    # The seeds pick the data order and the validation images: resuming with others is refused. --val-seed
    # changes the validation images only (synthetic here: retinas of its own stream) and reaches the config.
    # So is the loss (older checkpoints: the default focal term), and so are the data, the batch, the steps
    # an epoch, the validation split, augmentation, weight decay and batch norm's epsilon.
    for extra, names in ((('--seed', '6'), '--seed 5'), (('--val-seed', '9'), '--val-seed 5'),
                         (('--focal-gamma', '0'), '--focal-gamma 2'), (('--preprocess', 'rgb'), '--preprocess clahe-green'),
                         (('--input-skip', 'conv'), '--input-skip off'), (('--batch', '4'), '--batch 2'),
                         (('--synthetic', '8'), '--synthetic 4'), (('--val', '3'), '--val 2'),
                         (('--no-augment',), 'resume without --no-augment'), (('--weight-decay', '0.1'), '--weight-decay 0'),
                         (('--bn-eps', '0.001'), '--bn-eps 1e-05'), (('--steps', str(STEPS + 1)), '--steps %d' % STEPS)):
        r = rel.run(train_cmd(clunet, split_ema, resume=True, extra=ema + extra), 60)
        t.check(r.rc not in (0, None) and names in r.err and len(r.err_lines()) == 1,
                'resuming with %s is refused in one line naming %s' % (' '.join(extra), names), rel.describe(r))
    other_val = os.path.join(work, 'other-val')
    r = rel.run(train_cmd(clunet, other_val, epochs=1, extra=constant + ('--val-seed', '7')), 180)
    if t.check(r.rc == 0 and 'validation seed 7' in r.out, '--val-seed 7: one epoch', rel.describe(r)):
        a = rel.csv_rows(os.path.join(full_constant, 'metrics.csv'))[0]
        b = rel.csv_rows(os.path.join(other_val, 'metrics.csv'))[0]
        t.check(all(a[k] == b[k] for k in ('train_loss', 'train_f1')) and a['val_loss'] != b['val_loss'],
                '--val-seed 7: the same training, other validation images')
        meta = rel.st_header(os.path.join(other_val, 'last.safetensors'))[1]
        t.check('"val_seed": 7' in meta.get('config', ''), '--val-seed 7: kept in the checkpoint\'s config',
                meta.get('config', '')[:300])
        t.check('"focal_alpha": 0.25, "focal_gamma": 2' in meta.get('config', ''),
                'the focal term\'s settings are kept in the checkpoint\'s config', meta.get('config', '')[:300])

    # With one step per epoch, a signal during epoch 1 comes in its last step: the run stops after it.
    full1 = os.path.join(work, 'full1')
    r = rel.run(train_cmd(clunet, full1, steps=1), 180)
    t.check(r.rc == 0, 'uninterrupted run: %d epochs x 1 step (%.1f s)' % (EPOCHS, r.seconds), rel.describe(r))
    cases = [
        ('SIGINT mid-epoch', STEPS, lambda l: l.startswith('epoch 2/%d  step 1/%d ' % (EPOCHS, STEPS)), signal.SIGINT),
        ('SIGTERM mid-epoch', STEPS, lambda l: l.startswith('epoch 1/%d  step 2/%d ' % (EPOCHS, STEPS)), signal.SIGTERM),
        ('SIGINT in the last step of an epoch', 1, lambda l: l.startswith('epoch 1/%d  step 1/1 ' % EPOCHS),
         signal.SIGINT),
        ('SIGINT during a checkpoint write', STEPS, 'write', signal.SIGINT),
    ]
    for i, (what, steps, trigger, sig) in enumerate(cases):
        out = os.path.join(work, 'int%d' % i)
        rc, text, sent = interrupted(clunet, out, trigger, steps, sig)
        t.check(sent, what + ': signal sent')
        m = re.search(r'stopped at epoch (\d+) step (\d+)', text)
        after = re.search(r'stopped after epoch (\d+)', text)
        # Stopped early, it ends by the signal once saved; a run that finished first exits 0.
        want = -sig if m or after else 0
        t.check(rc == want, what + ': exit %d' % want, 'exit %d: %s' % (rc, text.strip().splitlines()[-1:]))
        last = os.path.join(out, 'last.safetensors')
        if after:
            # Stopped in an epoch's last step: that epoch is finished (validated, saved) first.
            e = int(after.group(1))
            print('%s: stopped after epoch %d' % (what, e))
            why = rel.st_check(last)
            if t.check(why is None, what + ': last.safetensors written', str(why)):
                meta, _, _ = rel.st_scan(last)
                at = (meta.get('epoch'), meta.get('epoch_step'))
                t.check(at == (str(e), '0'), what + ': checkpoint says %d epochs done' % e,
                        'epoch %s, epoch_step %s' % at)
        elif m:
            e, s = int(m.group(1)), int(m.group(2))
            print('%s: stopped at epoch %d step %d' % (what, e, s))
            why = rel.st_check(last)
            if t.check(why is None, what + ': last.safetensors written', str(why)):
                meta, _, _ = rel.st_scan(last)
                at = (meta.get('epoch'), meta.get('epoch_step'))
                t.check(at == (str(e - 1), str(s)), what + ': checkpoint says %d epochs + %d steps done' % (e - 1, s),
                        'epoch %s, epoch_step %s' % at)
        else:
            t.check(trigger == 'write', what + ': prints "stopped at epoch E step S" or "stopped after epoch E"',
                    text.strip()[-200:])
            print('%s: the run ended before it could stop' % what)
        t.check(not rel.temp_files(out), what + ': no temporary files left', ', '.join(rel.temp_files(out)))
        r = rel.run(train_cmd(clunet, out, resume=True, steps=steps), 180)
        t.check(r.rc == 0, what + ': resumed run completes', rel.describe(r))
        rel.compare_runs(t, what + ', resumed, vs uninterrupted', full if steps == STEPS else full1, out)

    # `clunet train | tee log` and Ctrl-C: the reader dies with it, so its output goes to a closed pipe. That
    # must not kill the run before its checkpoint: it still saves and ends by SIGINT.
    out = os.path.join(work, 'pipe')
    p = subprocess.Popen(train_cmd(clunet, out), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, errors='replace')
    timer = threading.Timer(120, p.kill)
    timer.start()
    for line in p.stdout:
        if line.startswith('epoch 1/%d  step 1/%d ' % (EPOCHS, STEPS)):
            break
    p.stdout.close()
    p.send_signal(signal.SIGINT)
    p.wait()
    timer.cancel()
    last = os.path.join(out, 'last.safetensors')
    why = rel.st_check(last) if os.path.exists(last) else 'not written'
    t.check(p.returncode == -signal.SIGINT and why is None,
            'SIGINT with stdout a closed pipe: last.safetensors written, ends by SIGINT',
            'exit %d, last.safetensors: %s' % (p.returncode, why))

    # Before the first step there is nothing to save, and setting up takes minutes on a cold kernel cache:
    # SIGINT then stops at once, killed by the signal.
    out = os.path.join(work, 'early')
    p = subprocess.Popen(train_cmd(clunet, out), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, errors='replace')
    timer = threading.Timer(120, p.kill)
    timer.start()
    text = p.stdout.readline()  # the first line: still setting up
    p.send_signal(signal.SIGINT)
    text += p.stdout.read()
    p.wait()
    timer.cancel()
    t.check(p.returncode == -signal.SIGINT and 'nothing to save' in text and 'epoch 1/' not in text,
            'SIGINT during setup: stops at once, saying so', 'exit %d: %s' % (p.returncode, text.strip()[-300:]))

    # After a step, a second SIGINT stops at once: killed by the signal, whatever checkpoint is there
    # complete. Steps of 256 x 256 last long enough for the second to come during the first one's step.
    out = os.path.join(work, 'twice')
    p = subprocess.Popen(train_cmd(clunet, out, steps=20, extra=('--size', '256')), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, errors='replace')
    timer = threading.Timer(240, p.kill)
    timer.start()
    text = ''
    for line in p.stdout:
        text += line
        if 'step 1/20' in line:
            p.send_signal(signal.SIGINT)
        if 'again to stop at once' in line:  # the second once the first has been taken
            p.send_signal(signal.SIGINT)
    p.wait()
    timer.cancel()
    t.check(p.returncode == -signal.SIGINT, 'SIGINT twice: killed by the second', 'exit %d: %s' %
            (p.returncode, text.strip()[-300:]))
    t.check('again to stop at once' in text, 'SIGINT twice: the first one says how to stop at once', text[-300:])
    for name in rel.checkpoints(out) if os.path.isdir(out) else []:
        why = rel.st_check(os.path.join(out, name))
        t.check(why is None, 'SIGINT twice: %s is complete' % name, str(why))
    t.finish()


if __name__ == '__main__':
    main()
