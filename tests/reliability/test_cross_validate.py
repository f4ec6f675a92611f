#!/usr/bin/python3
"""test_cross_validate.py CLUNET TOOL - tools/cross-validate end to end on a tiny dataset.

Four 64x64 synthetic retinas, each its own subject, 2 folds:
  1. usage errors: one line naming the setting, non-zero exit, nothing trained;
  2. a run stopped by SIGINT after the first fold's first epoch ends as interrupted (130) with
     that fold's checkpoint on disk and the fold not marked done;
  3. the same command again continues that fold (--resume), trains the other, scores both and
     writes summary.json: the folds hold out disjoint images that together are all four, each
     row matches its fold's `clunet eval --split val --json`, the pooled F1 is the one of the
     summed counts, and the continued fold's metrics.csv has each epoch once;
  4. a third run trains nothing and prints the same table; other options into the same folder
     are refused.
"""
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
    opts = data + ['--size', '64', '--batch', '2', '--steps', '2', '--epochs', '3']
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

    # --- 2. stopped by SIGINT after fold 1's first epoch ---------------------
    p = subprocess.Popen(cv + ['--'] + opts, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ''
    deadline = time.monotonic() + 240
    for line in p.stdout:
        seen += line
        if line.startswith('fold 1: epoch 1/3 done'):
            p.send_signal(signal.SIGINT)
            break
        if time.monotonic() > deadline:
            break
    rest, err = p.communicate(timeout=240)
    seen += rest
    last = os.path.join(out, 'fold-1', 'last.safetensors')
    t.check(p.returncode == 130 and 'run the same command again' in err,
            'SIGINT: ends as interrupted (130), saying how to continue', 'exit %s: %s' % (p.returncode, err[-300:]))
    t.check(os.path.exists(last) and not os.path.exists(os.path.join(out, 'fold-1.done')),
            '... with fold 1\'s checkpoint kept and the fold not marked done')
    t.check(not os.path.exists(os.path.join(out, 'fold-2')), '... and fold 2 not started')

    # --- 3. the same command continues and finishes ---------------------------
    r = rel.run(cv + ['--'] + opts, 300, cwd=work)
    t.check(r.rc == 0, 'the same command again finishes', rel.describe(r))
    t.check('fold 1/2: continued from' in r.out and 'fold 2/2: started' in r.out,
            '... continuing fold 1 and starting fold 2', r.out[-400:])
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

    # --- 4. again: nothing to train; other options refused ---------------------
    r = rel.run(cv + ['--'] + opts, 120, cwd=work)
    t.check(r.rc == 0 and 'started' not in r.out and 'continued' not in r.out and 'pooled F1' in r.out,
            'a third run trains nothing and prints the table again', rel.describe(r))
    r = rel.run(cv + ['--'] + opts[:-1] + ['4'], 30, cwd=work)
    lines = r.err_lines()
    t.check(r.rc not in (None, 0) and len(lines) == 1 and 'options.json' in lines[0],
            'other options into the same --out are refused, naming options.json', rel.describe(r))
    t.finish()


if __name__ == '__main__':
    main()
