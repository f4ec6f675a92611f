#!/usr/bin/python3
"""test_crash.py CLUNET - SIGKILL crash safety of `clunet train`.

Trains a tiny configuration and kills it with SIGKILL again and again (seeded moments:
at random times, and while a checkpoint is being written), each time resuming from
OUT/last.safetensors when there is one. After every kill, every checkpoint in OUT must be
a complete safetensors file that `clunet predict` loads, at most the one temporary file of
the write that was cut short may be there, and metrics.csv must list each epoch once.
At the end the resumed run must complete and equal an uninterrupted run exactly.
Environment: RELIABILITY_SEED (default 1), RELIABILITY_KILLS (default 12).
"""
import os
import random
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
import rel  # noqa: E402

EPOCHS = 6


def start(clunet, out, log):
    last = os.path.join(out, 'last.safetensors')
    cmd = [clunet, 'train'] + rel.TINY + ['--steps', '2', '--epochs', str(EPOCHS), '--seed', '3', '--out', out]
    resumed = os.path.exists(last)
    if resumed:
        cmd += ['--resume', last]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT), resumed


def epochs_saved(out):
    """The epoch last.safetensors holds, 0 when there is none."""
    last = os.path.join(out, 'last.safetensors')
    if not os.path.exists(last):
        return 0
    try:
        return int(rel.st_header(last)[1].get('epoch', '0'))
    except ValueError:  # the checks after each kill report a damaged file
        return 0


def kill_at(p, out, mode, when, writes):
    """SIGKILLs p at `when` seconds, or once its `writes`-th checkpoint write is under way.
    Returns how the kill landed, or None when p ended first."""
    t0, stale, seen = time.monotonic(), set(rel.temp_files(out)), set()
    while p.poll() is None:
        now = time.monotonic() - t0
        if mode == 'mid-write':
            seen.update(set(rel.temp_files(out)) - stale)
            if len(seen) >= writes:
                p.kill()
                return 'during write %d at %.2f s' % (writes, now)
            if now > 60:
                p.kill()
                return 'after 60 s without %d writes' % writes
        elif now >= when:
            p.kill()
            return 'at %.2f s' % now
        time.sleep(0.002)
    return None


def completed(t, label, ref, out):
    """Checks a run that has completed all epochs after kills and resumes."""
    last = os.path.join(out, 'last.safetensors')
    if t.check(rel.st_check(last) is None, label + ': last.safetensors is complete'):
        meta, _, bad = rel.st_scan(last)
        t.check(meta.get('epoch') == str(EPOCHS), label + ': last.safetensors is at epoch %d' % EPOCHS,
                'epoch %s' % meta.get('epoch'))
        t.check(not bad, label + ': last.safetensors holds finite values', ', '.join(bad[:3]))
    temps = rel.temp_files(out)
    t.check(not temps, label + ': no temporary files left in OUT', ', '.join(temps))
    rel.compare_runs(t, label + ' vs uninterrupted', ref, out)


def start_over(t, label, ref, out):
    """Checks a completed training in OUT against the uninterrupted one, then empties OUT for the next cycle."""
    completed(t, label, ref, out)
    for n in os.listdir(out):
        os.remove(os.path.join(out, n))


def main():
    clunet, = rel.args_or_usage(1, 'test_crash.py CLUNET')
    seed = int(os.environ.get('RELIABILITY_SEED', '1'))
    want_kills = int(os.environ.get('RELIABILITY_KILLS', '12'))
    t = rel.Tally('crash', budget_s=240)
    work = rel.workdir('crash')
    image = rel.synth_image(clunet, os.path.join(work, 'img'))
    ref, out = os.path.join(work, 'ref'), os.path.join(work, 'out')

    # This test runs first: on a cold kernel cache its first run compiles and times the kernels for
    # minutes on a slow CPU. One untimed run does that, so that the reference run (whose time spaces the
    # kills) and the kill budget count the training alone.
    w = rel.run([clunet, 'train'] + rel.TINY + ['--steps', '1', '--epochs', '1', '--out', os.path.join(work, 'warm')],
                900)
    if not t.check(w.rc == 0, 'warm-up run (%.1f s: kernels compiled and timed if the cache was cold)' % w.seconds,
                   rel.describe(w)):
        t.finish()
    t.start_budget()
    r = rel.run([clunet, 'train'] + rel.TINY + ['--steps', '2', '--epochs', str(EPOCHS), '--seed', '3',
                                                '--out', ref], 180)
    if not t.check(r.rc == 0, 'uninterrupted reference run (%d epochs, %.1f s)' % (EPOCHS, r.seconds), rel.describe(r)):
        t.finish()
    span = r.seconds

    rng = random.Random(seed)
    print('seed %d, %d kills wanted' % (seed, want_kills))
    kills = runs = corrupt = cycles = 0
    checked = {}  # checkpoint -> (inode, size, mtime) last loaded by predict
    os.makedirs(out)
    with open(os.path.join(work, 'train.log'), 'ab') as log:
        while kills < want_kills and runs < 3 * want_kills and not t.over_budget():
            # A kill after the last epoch's checkpoint leaves a complete training, which clunet declines to
            # resume (--epochs asks for no more): check it and start over, as after a run that ended by itself.
            if epochs_saved(out) == EPOCHS:
                cycles += 1
                start_over(t, 'cycle %d (killed after its last checkpoint)' % cycles, ref, out)
            runs += 1
            mode = 'mid-write' if runs % 3 == 0 else 'random'
            done = max(rel.epochs_in_csv(os.path.join(out, 'metrics.csv')) or [0])
            when = rng.uniform(0.05, 0.5 + span * (EPOCHS - done + 1) / EPOCHS)
            writes = rng.randint(1, 3)
            p, resumed = start(clunet, out, log)
            how = kill_at(p, out, mode, when, writes)
            rc = p.wait()
            if how is not None and rc == 0:  # it exited between the last poll and the signal: no kill
                print('run %d ended by itself as the kill (%s) was sent' % (runs, how))
                how = None
            if how is None:
                t.check(rc == 0, 'run %d (%s) ended by itself' % (runs, 'resumed' if resumed else 'fresh'),
                        'exit %d, see %s/train.log' % (rc, work))
                if rc == 0:  # complete: check it, then start over to keep killing
                    cycles += 1
                    start_over(t, 'cycle %d (killed and resumed)' % cycles, ref, out)
                continue
            kills += 1
            print('kill %d: run %d (%s) killed %s' % (kills, runs, 'resumed' if resumed else 'fresh', how))
            t.check(rc == -signal.SIGKILL, 'kill %d: died of SIGKILL' % kills, 'exit %d' % rc)
            for name in rel.checkpoints(out):
                path = os.path.join(out, name)
                why = rel.st_check(path)
                ok = t.check(why is None, 'kill %d: %s is a complete safetensors file' % (kills, name), str(why))
                st = os.stat(path)
                sig = (st.st_ino, st.st_size, st.st_mtime_ns)
                if ok and checked.get(name) != sig:
                    pr = rel.predicts(clunet, path, image, os.path.join(work, 'pred'))
                    ok = t.check(pr.rc == 0, 'kill %d: clunet predict loads %s' % (kills, name), rel.describe(pr))
                    checked[name] = sig
                corrupt += not ok
            temps = rel.temp_files(out)
            t.check(len(temps) <= 1, 'kill %d: at most the interrupted write\'s temporary file is left' % kills,
                    '%d left: %s' % (len(temps), ', '.join(temps)))
            epochs = rel.epochs_in_csv(os.path.join(out, 'metrics.csv'))
            t.check(epochs == list(range(1, len(epochs) + 1)), 'kill %d: metrics.csv lists epochs 1..%d once each'
                    % (kills, len(epochs)), 'epochs %s' % epochs)

        # a slow machine spends the time budget on fewer runs: a third of the kills still covers both modes
        enough = want_kills if not t.over_budget() else max(3, want_kills // 3)
        t.check(kills >= enough, 'killed %d times (wanted %d, at least %d) in %d runs'
                % (kills, want_kills, enough, runs))
        if epochs_saved(out) == EPOCHS:
            print('the last kill landed after the last checkpoint: no final run is needed')
        else:
            p, resumed = start(clunet, out, log)
            try:
                rc = p.wait(timeout=180)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
            t.check(rc == 0, 'the final %s run completes' % ('resumed' if resumed else 'fresh'), 'exit %d' % rc)
    completed(t, 'final (killed and resumed)', ref, out)
    print('kills: %d, runs: %d, completed cycles: %d, checkpoints that failed to load: %d'
          % (kills, runs, cycles + 1, corrupt))
    t.finish()


if __name__ == '__main__':
    main()
