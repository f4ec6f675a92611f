#!/usr/bin/python3
"""recipe-smoke.py CLUNET DATA_DIR... - the training recipe, shortened, on real CHASE_DB1 images.

A few minutes of the default recipe (its schedule, CLAHE, augmentation, validation threshold) at
128 x 128 patches for 3 short epochs, then `clunet eval` on the 2 validation images with the default 8
test-time views and on the 8 test images with 1, `clunet predict` on one of them and `clunet report`
(one view each). Checks the
metrics pipeline end to end: metrics.csv complete and finite, the learning rate following warm-up and
cosine decay, the checkpoint's threshold used by eval, pooled counts equal to the sums of the per-image
counts, every score recomputed from the counts, the F1 recomputed independently (NumPy) from predict's
mask and the label, and a network that has learnt something (F1 and AUC well above chance).
Uses the first DATA_DIR that exists; skips (77) when none does, or without NumPy/PIL.
"""
import csv
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

failures = []


def check(ok, what):
    print(('ok    ' if ok else 'FAIL  ') + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900)
    if p.returncode:
        print(p.stdout[-2000:], p.stderr[-2000:])
    return p


def scores_consistent(s, what):
    tp, fp, tn, fn = (s[k] for k in ('tp', 'fp', 'tn', 'fn'))
    expect = {'f1': 2 * tp / (2 * tp + fp + fn), 'precision': tp / (tp + fp), 'recall': tp / (tp + fn),
              'specificity': tn / (tn + fp), 'accuracy': (tp + tn) / (tp + fp + tn + fn),
              'iou': tp / (tp + fp + fn)}
    bad = [k for k, v in expect.items() if abs(s[k] - v) > 2e-6]
    check(not bad, what + ': scores agree with the counts' + (' (not: %s)' % bad if bad else ''))
    check(0 < s['auc'] <= 1 and all(math.isfinite(s[k]) for k in expect), what + ': AUC in (0, 1], all finite')


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    clunet = sys.argv[1]
    data = next((d for d in sys.argv[2:] if os.path.isdir(d)), None)
    if data is None:
        print('skip: no copy of CHASE_DB1 in', ' or '.join(sys.argv[2:]))
        return 77
    try:
        import numpy as np
        from PIL import Image
    except ImportError as e:
        print('skip: NumPy and PIL are needed (apt-get install python3-numpy python3-pil):', e)
        return 77
    work = tempfile.mkdtemp(prefix='clunet-recipe-')
    try:
        run_dir = os.path.join(work, 'run')
        p = run([clunet, 'train', '--data', data, '--dataset', 'CHASE_DB1', '--size', '128', '--epochs', '3',
                 '--steps', '24', '--val-seed', '2', '--out', run_dir])
        if not check(p.returncode == 0, 'train: 3 epochs x 24 steps of 4 x 128 x 128, recipe defaults otherwise '
                     '(validation images picked by --val-seed 2, not the --seed)'):
            return 1
        held_out = sorted(re.findall(r'Image_\w+\.jpg', next(l for l in p.stdout.splitlines() if 'held out' in l)))
        rows = list(csv.DictReader(open(os.path.join(run_dir, 'metrics.csv'))))
        check(len(rows) == 3, 'metrics.csv: 3 epochs (got %d)' % len(rows))
        check(all(math.isfinite(float(v)) for r in rows for v in r.values()), 'metrics.csv: every value finite')
        lr = [float(r['lr']) for r in rows]
        check(abs(lr[0] - 1e-3) < 1e-9 and lr[0] > lr[1] > lr[2] and abs(lr[2] - 1e-5) < 1e-9,
              'learning rate: 1e-3 after the warm-up epoch, then cosine down to 1e-5 (%s)' % lr)
        check(float(rows[-1]['train_loss']) < float(rows[0]['train_loss']), 'training loss falls')
        with open(os.path.join(run_dir, 'best.safetensors'), 'rb') as f:  # safetensors: u64 length, JSON header
            meta = json.loads(f.read(struct.unpack('<Q', f.read(8))[0]))['__metadata__']
        threshold = float(meta['threshold'])
        best = max(rows, key=lambda r: float(r['val_best_f1']))
        check(abs(threshold - float(best['val_threshold'])) < 1e-4 and 0 < threshold < 1,
              'best.safetensors keeps the best epoch\'s validation threshold (%g)' % threshold)
        check(meta.get('preprocess') == 'clahe-green', 'the recipe preprocesses with CLAHE on green')

        # eval --split val rebuilds the run's held-out images: the last epoch's validation row again
        p = run([clunet, 'eval', '--weights', os.path.join(run_dir, 'last.safetensors'), '--data', data, '--dataset',
                 'CHASE_DB1', '--split', 'val', '--threshold', '0.5', '--views', '1', '--size', '128', '--batch', '4',
                 '--json'])
        v = None
        if check(p.returncode == 0, 'eval --split val: exit 0'):
            v, last = json.loads(p.stdout), rows[-1]
            same = [k for k in ('f1', 'auc', 'accuracy', 'loss') if abs(v['pooled'][k] - float(last['val_' + k])) < 1e-4]
            names = sorted(i['image'] for i in v['images'])
            check(len(names) == 2 and names[0][:8] == names[1][:8],
                  'eval --split val: both eyes of one child (%s)' % ', '.join(names))
            check(names == held_out, 'eval --split val: the images training held out (%s)' % ', '.join(held_out))
            check(len(same) == 4,
                  'eval --split val: F1/AUC/accuracy/loss = metrics.csv\'s last validation (%s of 4 agree)' % len(same))

        weights = os.path.join(run_dir, 'best.safetensors')
        results = {}
        # The default 8 views on the 2 validation images (on the 8 test images they took ~150 s of this test's
        # ~250 here), the test split with one view.
        for views, split, count in ((8, 'val', 2), (1, 'test', 8)):
            # tiles of 256 (the network is fully convolutional): fewer, larger tiles than the training's 128
            p = run([clunet, 'eval', '--weights', weights, '--data', data, '--dataset', 'CHASE_DB1', '--json',
                     '--size', '256', '--split', split]
                    + ([] if views == 8 else ['--views', str(views)]))
            name = 'eval --split %s' % split + ('' if views == 8 else ' --views %d' % views)
            if not check(p.returncode == 0, name + ': exit 0'):
                continue
            r = results[views] = json.loads(p.stdout)
            check(len(r['images']) == count and r['views'] == views,
                  name + ': %d %s images, %d views' % (count, split, views))
            check(abs(r['threshold'] - threshold) < 1e-6, name + ': uses the checkpoint\'s threshold')
            pooled = r['pooled']
            for k in ('tp', 'fp', 'tn', 'fn'):
                check(pooled[k] == sum(i['scores'][k] for i in r['images']), name + ': pooled %s = sum over images' % k)
            scores_consistent(pooled, name + ' pooled')
            for i in r['images']:
                scores_consistent(i['scores'], name + ' ' + i['image'])
            print('%s: F1 %.4f AUC %.4f accuracy %.4f' % (name, pooled['f1'], pooled['auc'], pooled['accuracy']))
            check(pooled['f1'] > 0.45 and pooled['auc'] > 0.85,
                  name + ': the network has learnt vessels (F1 %.3f > 0.45, AUC %.3f > 0.85)' % (pooled['f1'], pooled['auc']))
        if 8 in results and v:
            a, b = results[8]['pooled'], v['pooled']
            check(sum(a[k] for k in ('tp', 'fp', 'tn', 'fn')) == sum(b[k] for k in ('tp', 'fp', 'tn', 'fn')),
                  'validation with 8 views and 1: the same FOV pixels counted')

        # Independent F1 of one test image from predict's outputs: the mask is inside the FOV, and
        # CHASE_DB1's labels are too, so TP, FP and FN over the whole frame are eval's counts (one view
        # on both sides: the views' mean is the same code in both, and 8 would cost a minute here).
        first = results.get(1, {}).get('images', [{}])[0]
        image = os.path.join(data, first.get('image', 'Image_11L.jpg'))
        pred = os.path.join(work, 'pred')
        p = run([clunet, 'predict', '--weights', weights, '--out', pred, '--npy', '--size', '256', '--views', '1',
                 image])
        if check(p.returncode == 0 and first, 'predict ' + os.path.basename(image)):
            stem = os.path.splitext(os.path.basename(image))[0]
            mask = np.asarray(Image.open(os.path.join(pred, stem + '_mask.png'))) > 0
            prob = np.load(os.path.join(pred, stem + '_prob.npy'))
            label = np.asarray(Image.open(os.path.join(data, stem + '_1stHO.png')).convert('L')) > 127
            check(mask.shape == label.shape == prob.shape, 'predict: mask and probabilities at the image size')
            check(not (mask & ~(prob > threshold)).any(), 'predict: the mask is prob > the checkpoint\'s threshold')
            tp, fp, fn = int((mask & label).sum()), int((mask & ~label).sum()), int((~mask & label).sum())
            s = first['scores']
            check((tp, fp) == (s['tp'], s['fp']) and abs(fn - s['fn']) <= 0.001 * max(1, s['fn']),
                  'NumPy counts from predict (TP %d, FP %d, FN %d) = eval\'s (%d, %d, %d)'
                  % (tp, fp, fn, s['tp'], s['fp'], s['fn']))

        p = run([clunet, 'report', run_dir, '--data', data, '--dataset', 'CHASE_DB1', '--count', '2', '--views', '1'])
        check(p.returncode == 0 and os.path.getsize(os.path.join(run_dir, 'predictions.png')) > 10000
              and os.path.exists(os.path.join(run_dir, 'curve_f1.png')), 'report: curves and a prediction grid')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print('%d failed' % len(failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
