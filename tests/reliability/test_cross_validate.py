#!/usr/bin/python3
"""test_cross_validate.py CLUNET TOOL - tools/cross-validate end to end on a tiny dataset.

Four 64x64 synthetic retinas, each its own subject, 2 folds:
  1. usage errors: one line naming the setting, non-zero exit, nothing trained;
  2. a Ctrl-C at the terminal (SIGINT to the script's process group) after the first fold's
     first epoch: clunet saves and says so, the script ends as interrupted (130), the fold is
     not marked done; then the script killed outright (SIGKILL): its clunet does not train on;
  3. the same command again continues that fold (--resume), scores it, trains the other, scores it and
     writes summary.json: the folds hold out disjoint images that together are all four, each
     row matches its fold's `clunet eval --split val --json`, the pooled F1 is the one of the
     summed counts, and the continued fold's metrics.csv has each epoch once;
  4. again, with a fold's done mark removed (its run had ended): nothing is trained; with other
     --views the scores are made again; other options into the same folder are refused, and
     so is a second cross-validate while one runs there;
  5. --summary tabulates the scored folds without training; --compare sets two folders' folds
     side by side and refuses folds that hold out other images; --only trains and scores some
     folds; a bad --only is refused;
  6. a recipe clunet refuses: each fold fails, naming its log, and the corrected options may
     replace it in the same folder (nothing had trained).
"""
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
import rel  # noqa: E402

DATASETS = ('dataset TINY\n  size 64x64\n  count 4\n  group train\n'
            '    image images/{id}.png\n    label labels/{id}.png\n    mask masks/{id}.png\n')


def main():
    clunet, tool = rel.args_or_usage(2, 'test_cross_validate.py CLUNET TOOL')
    t = rel.Tally('cross-validate', budget_s=120)
    work = rel.workdir('cv')
    J = lambda *p: os.path.join(work, *p)

    r = rel.run([clunet, 'synth', '--out', J('raw'), '--n', '4', '--size', '64'], 60)
    if not t.check(r.rc == 0, 'synthetic images for a dataset', rel.describe(r)):
        t.finish()
    for sub in ('images', 'labels', 'masks'):
        os.makedirs(J('ds', sub))
    for i in range(4):
        s = '%04d' % i
        shutil.copy(J('raw', s + '.png'), J('ds', 'images', s + '.png'))
        shutil.copy(J('raw', s + '_label.png'), J('ds', 'labels', s + '.png'))
        shutil.copy(J('raw', s + '_mask.png'), J('ds', 'masks', s + '.png'))
    with open(J('datasets.txt'), 'w') as f:
        f.write(DATASETS)

    data = ['--data', J('ds'), '--dataset', 'TINY', '--datasets', J('datasets.txt')]
    opts = data + ['--size', '64', '--batch', '2', '--steps', '6', '--epochs', '3']
    out = J('cv')
    cv = [tool, '--clunet', clunet, '--out', out, '--folds', '2', '--views', '1']

    # --- 1. usage errors ----------------------------------------------------
    for args, mentions in ((cv, 'after "--"'),
                           (cv + ['--'] + opts + ['--out', J('x')], '--out'),
                           (cv + ['--'] + opts + ['--fold', '1/2'], '--fold'),
                           (cv + ['--'] + opts[2:], '--data'),
                           ([tool, '--clunet', clunet, '--out', out, '--folds', '1', '--'] + opts, '--folds 1')):
        r = rel.run(args, 30, cwd=work)
        lines = r.err_lines()
        t.check(r.rc not in (None, 0) and len(lines) == 1 and mentions in lines[0],
                'usage error naming %s' % mentions, rel.describe(r))
    t.check(not os.path.exists(os.path.join(out, 'fold-1')), '... and nothing trained')

    # --- 2. a Ctrl-C after fold 1's first epoch, then SIGKILL -----------------
    def start_until(marker):
        """The script, in a process group of its own (as a shell job), read until a line starts with marker."""
        p = subprocess.Popen(cv + ['--'] + opts, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        seen = ''
        for line in p.stdout:
            seen += line
            if line.startswith(marker):
                break
        return p, seen

    p, seen = start_until('fold 1: epoch 1/3 done')
    os.killpg(p.pid, signal.SIGINT)  # what a Ctrl-C at the terminal does
    rest, err = p.communicate(timeout=240)
    seen += rest
    last = os.path.join(out, 'fold-1', 'last.safetensors')
    t.check(p.returncode == 130 and 'run the same command again' in err,
            'Ctrl-C: ends as interrupted (130), saying how to continue', 'exit %s: %s' % (p.returncode, err[-300:]))
    t.check('fold 1: stopped ' in seen and 'continue with --resume' in seen,
            '... after clunet saved its checkpoint and said so', seen[-300:])
    t.check(os.path.exists(last) and not os.path.exists(os.path.join(out, 'fold-1.done')),
            '... which is kept, the fold not marked done')
    t.check(not os.path.exists(os.path.join(out, 'fold-2')), '... and fold 2 not started')

    def trainers():
        """clunet processes whose command line holds this test's folds' folder: clunet itself, not the
        setpriv before its exec, which may not have set its parent-death signal yet."""
        found = []
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as f:
                    argv = f.read().split(b'\0')
                if os.path.basename(argv[0]) == b'clunet' and any((out + '/fold-').encode() in a for a in argv):
                    found.append(pid)
            except OSError:
                pass
        return found

    if shutil.which('setpriv'):
        p, seen = start_until('fold 1/2: continued')
        deadline = time.monotonic() + 60
        while not trainers() and time.monotonic() < deadline:
            time.sleep(0.05)
        p.kill()
        p.communicate(timeout=60)
        deadline = time.monotonic() + 60
        while trainers() and time.monotonic() < deadline:
            time.sleep(0.2)
        epochs = rel.epochs_in_csv(os.path.join(out, 'fold-1', 'metrics.csv'))
        t.check(not trainers() and max(epochs) < 3,
                'the script killed outright (SIGKILL): its clunet train stops too, unfinished', str(epochs))
    else:
        print('skip  the SIGKILL case: no setpriv (util-linux) to tie clunet to the script')

    # --- 3. the same command continues and finishes ---------------------------
    r = rel.run(cv + ['--'] + opts, 300, cwd=work)
    t.check(r.rc == 0, 'the same command again finishes', rel.describe(r))
    t.check('fold 1/2: continued from' in r.out and 'fold 2/2: started' in r.out,
            '... continuing fold 1 and starting fold 2', r.out[-400:])
    t.check(0 <= r.out.find('scoring fold 1/2') < r.out.find('fold 2/2: started'),
            '... scoring fold 1 as soon as it has trained, before fold 2 starts', r.out[-400:])
    t.check(rel.epochs_in_csv(os.path.join(out, 'fold-1', 'metrics.csv')) == [1, 2, 3],
            '... fold 1\'s metrics.csv has epochs 1, 2, 3 once each')
    try:
        with open(os.path.join(out, 'summary.json')) as f:
            summary = json.load(f)
    except (OSError, ValueError) as e:
        t.check(False, 'summary.json is written', str(e))
        t.finish()
    folds = summary['folds']
    held = [set(f['images']) for f in folds]
    t.check(len(folds) == 2 and not (held[0] & held[1]) and held[0] | held[1] == {'%04d.png' % i for i in range(4)},
            'the folds hold out disjoint images, all four together', str(held))
    tp = fp = fn = 0
    for f in folds:
        ckpt = os.path.join(out, 'fold-%d' % f['fold'], 'best.safetensors')
        r = rel.run([clunet, 'eval', '--weights', ckpt, '--split', 'val', '--views', '1', '--batch', '4', '--json'] + data,
                   120)
        ev = json.loads(r.out) if r.rc == 0 else {}
        same = (ev.get('pooled') == f['scores'] and ev.get('threshold') == f['threshold']
                and set(i['image'] for i in ev.get('images', [])) == set(f['images']))
        t.check(same, 'fold %d\'s row is its checkpoint\'s `clunet eval --split val`' % f['fold'], rel.describe(r))
        tp, fp, fn = tp + f['scores']['tp'], fp + f['scores']['fp'], fn + f['scores']['fn']
    pooled = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    t.check(abs(summary['pooled_f1'] - pooled) < 1e-12 and (summary['tp'], summary['fp'], summary['fn']) == (tp, fp, fn),
            'the pooled F1 is the one of the folds\' summed counts', '%r against %r' % (summary['pooled_f1'], pooled))

    # --- 4. again: nothing to train; other views scored again; other options refused ---
    os.remove(os.path.join(out, 'fold-1.done'))
    r = rel.run(cv + ['--'] + opts, 120, cwd=work)
    t.check(r.rc == 0 and 'started' not in r.out and 'continued' not in r.out and 'pooled F1' in r.out
            and os.path.exists(os.path.join(out, 'fold-1.done')),
            'a run with a finished fold\'s done mark removed trains nothing and prints the table', rel.describe(r))
    r = rel.run(cv[:-1] + ['4', '--'] + opts, 120, cwd=work)  # cv ends with --views 1
    views = []
    for k in (1, 2):
        with open(os.path.join(out, 'fold-%d.val.json' % k)) as f:
            views.append(json.load(f).get('views'))
    t.check(r.rc == 0 and views == [4, 4], 'with --views 4 the folds are scored again', rel.describe(r))
    r = rel.run(cv + ['--'] + opts[:-1] + ['4'], 30, cwd=work)
    lines = r.err_lines()
    t.check(r.rc not in (None, 0) and len(lines) == 1 and 'options.json' in lines[0],
            'other options into the same --out are refused, naming options.json', rel.describe(r))

    with open(os.path.join(out, '.lock'), 'w') as held:  # as a cross-validate running there holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        r = rel.run(cv + ['--'] + opts, 30, cwd=work)
    lines = r.err_lines()
    t.check(r.rc not in (None, 0) and len(lines) == 1 and 'another cross-validate' in lines[0],
            'a second cross-validate into a folder in use is refused', rel.describe(r))

    # --- 5. --summary tabulates what is scored; --only trains and scores some folds ---
    with open(os.path.join(out, 'summary.json')) as f:
        before = json.load(f)  # from the --views 4 run
    os.remove(os.path.join(out, 'summary.json'))
    r = rel.run([tool, '--out', out, '--summary'], 30, cwd=work)
    with open(os.path.join(out, 'summary.json')) as f:
        again = json.load(f)
    t.check(r.rc == 0 and again == before and again['views'] == 4 and 'pooled F1' in r.out,
            '--summary tabulates the scored folds without training', rel.describe(r))
    # --compare: recipe B against A fold by fold, from the folds' scores alone
    other = J('cv-other')
    os.makedirs(other)
    shutil.copy(os.path.join(out, 'options.json'), other)
    with open(os.path.join(out, 'fold-2.val.json')) as f:
        b2 = json.load(f)
    a2 = b2['pooled']['f1']
    b2['pooled']['tp'] += 7
    b2['pooled']['fn'] = max(0, b2['pooled']['fn'] - 7)
    p = b2['pooled']
    b2['pooled']['f1'] = 2 * p['tp'] / (2 * p['tp'] + p['fp'] + p['fn'])
    shutil.copy(os.path.join(out, 'fold-1.val.json'), other)
    with open(os.path.join(other, 'fold-2.val.json'), 'w') as f:
        json.dump(b2, f)
    r = rel.run([tool, '--out', out, '--compare', other], 30, cwd=work)
    rows = [l.split() for l in r.out.splitlines() if l[:1] in ('1', '2')]
    diffs = {int(row[0]): float(row[-3]) for row in rows}
    t.check(r.rc == 0 and abs(diffs.get(2, 1) - round(b2['pooled']['f1'] - a2, 4)) < 1e-9 and diffs.get(1) == 0
            and 'B ahead in 1 of 2 folds' in r.out,
            '--compare prints each fold\'s F1 difference and who leads', rel.describe(r))
    b2['images'][0]['image'] = 'elsewhere.png'
    with open(os.path.join(other, 'fold-2.val.json'), 'w') as f:
        json.dump(b2, f)
    r = rel.run([tool, '--out', out, '--compare', other], 30, cwd=work)
    lines = r.err_lines()
    t.check(r.rc not in (None, 0) and len(lines) == 1 and 'fold 2' in lines[0] and '--val-seed' in lines[0],
            '--compare refuses folds that hold out other images', rel.describe(r))

    part = J('cv-part')
    r = rel.run([tool, '--clunet', clunet, '--out', part, '--folds', '2', '--views', '1', '--only', '2', '--']
                + opts, 120, cwd=work)
    try:
        with open(os.path.join(part, 'summary.json')) as f:
            psum = json.load(f)
    except (OSError, ValueError):
        psum = {}
    t.check(r.rc == 0 and not os.path.exists(os.path.join(part, 'fold-1')) and 'folds 2 of 2' in r.out
            and [f['fold'] for f in psum.get('folds', [])] == [2],
            '--only 2 trains and scores fold 2 alone', rel.describe(r))
    for bad_only in ('3', '0', '1,x', ''):
        r = rel.run([tool, '--clunet', clunet, '--out', part, '--folds', '2', '--only', bad_only, '--'] + opts, 30,
                    cwd=work)
        lines = r.err_lines()
        t.check(r.rc not in (None, 0) and len(lines) == 1 and '--only' in lines[0],
                '--only %r is refused' % bad_only, rel.describe(r))

    # --- 6. a recipe clunet refuses; then corrected in the same folder ---------
    bad = J('cv-bad')
    cvb = [tool, '--clunet', clunet, '--out', bad, '--folds', '2', '--views', '1', '--']
    r = rel.run(cvb + opts + ['--lr', '0,001'], 120, cwd=work)
    lines = r.err_lines()
    t.check(r.rc == 1 and all(any(l.startswith('cross-validate: fold %d failed' % k) and 'fold-%d.log' % k in l
                                  for l in lines) for k in (1, 2)),
            'a setting clunet refuses: each fold fails, naming its log', rel.describe(r))
    r = rel.run(cvb + opts, 120, cwd=work)
    t.check(r.rc == 0 and os.path.exists(os.path.join(bad, 'summary.json')),
            '... and the corrected options run in the same --out', rel.describe(r))
    t.finish()


if __name__ == '__main__':
    main()
