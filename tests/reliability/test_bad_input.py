#!/usr/bin/python3
"""test_bad_input.py CLUNET - bad input through the command line.

Broken checkpoints, datasets, images, datasets.txt files and option values must each
give exactly one line on stderr, starting with `clunet` and naming the file or setting,
and a non-zero exit below 128 (no crash), with no core file, within a time limit.
"""
import errno
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib

sys.dont_write_bytecode = True  # keep the source tree clean
import rel  # noqa: E402

TIME_LIMIT = 60


def write_safetensors(path, tensors, meta):
    """tensors: list of (name, shape, raw bytes); F32; written in the given order."""
    header, pos = {}, 0
    for name, shape, raw in tensors:
        header[name] = {'dtype': 'F32', 'shape': shape, 'data_offsets': [pos, pos + len(raw)]}
        pos += len(raw)
    if meta is not None:
        header['__metadata__'] = meta
    text = json.dumps(header).encode()
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text)
        for _, _, raw in tensors:
            f.write(raw)


def png(width, height, rgb, bytes_per_row=None, black=False):
    """An 8-bit PNG of the given size; rows of mid-grey noise (bytes_per_row lets it lie), or all 0."""
    chunk = lambda kind, data: (struct.pack('>I', len(data)) + kind + data +
                                struct.pack('>I', zlib.crc32(kind + data)))
    ch = 3 if rgb else 1
    row, rows = (width * ch, height) if bytes_per_row is None else (bytes_per_row, 64)
    raw = b''.join(b'\0' + bytes(0 if black else (x * 31 + y * 17) % 200 + 20 for x in range(row))
                   for y in range(rows))
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2 if rgb else 0, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')


def png_size(path):
    with open(path, 'rb') as f:
        head = f.read(24)
    return struct.unpack('>II', head[16:24]) if head[:8] == b'\x89PNG\r\n\x1a\n' else None


def truncate_copy(src, dst, n):
    with open(src, 'rb') as f, open(dst, 'wb') as o:
        o.write(f.read(n))


def poison_copy(src, dst, start, begin, value=float('nan')):
    """src with `value` as the float at byte `begin` of its data (which starts at `start`)."""
    shutil.copy(src, dst)
    with open(dst, 'r+b') as f:
        f.seek(start + begin)
        f.write(struct.pack('<f', value))


def expect_error(t, what, cmd, cwd, mentions, env=None, timeout=TIME_LIMIT):
    r = rel.run(cmd, timeout, cwd=cwd, env=env)
    lines = r.err_lines()
    cores = [n for n in os.listdir(cwd) if n == 'core' or n.startswith('core.')]
    problems = []
    if r.timed_out:
        problems.append('no exit within %d s' % timeout)
    elif r.rc < 0 or r.rc >= 128:
        problems.append('crashed (exit %d)' % r.rc)
    elif r.rc == 0:
        problems.append('exit 0')
    if len(lines) != 1:
        problems.append('%d lines on stderr' % len(lines))
    if lines and not lines[0].startswith('clunet'):
        problems.append('stderr does not start with "clunet"')
    if lines and mentions and mentions not in lines[0]:
        problems.append('the error does not name %r' % mentions)
    if cores:
        problems.append('core file left: ' + ', '.join(cores))
    for c in cores:
        os.remove(os.path.join(cwd, c))
    t.check(not problems, '%s -> %s' % (what, lines[0] if len(lines) == 1 else 'exit %s' % r.rc),
            '; '.join(problems) + ' | stderr: ' + ' / '.join(lines[:4]))
    return r


def main():
    clunet, = rel.args_or_usage(1, 'test_bad_input.py CLUNET')
    t = rel.Tally('bad-input', budget_s=200)
    work = rel.workdir('bad-input')
    J = lambda *p: os.path.join(work, *p)
    image = rel.synth_image(clunet, J('img'))
    pred = J('pred')

    # A real checkpoint to break, and a tiny dataset laid out by our own datasets.txt.
    r = rel.run([clunet, 'train'] + rel.TINY + ['--steps', '1', '--epochs', '1', '--out', J('good')], 180)
    if not t.check(r.rc == 0, 'a good checkpoint to break', rel.describe(r)):
        t.finish()
    good = J('good', 'last.safetensors')
    with open(J('datasets.txt'), 'w') as f:
        f.write('dataset TINY\n  size 64x64\n  count 3\n  group train\n'
                '    image images/{id}.png\n    label labels/{id}.png\n    mask masks/{id}.png\n')
    r = rel.run([clunet, 'synth', '--out', J('raw'), '--n', '3', '--size', '64'], 60)
    r2 = rel.run([clunet, 'synth', '--out', J('raw96'), '--n', '1', '--size', '96'], 60)
    if not t.check(r.rc == 0 and r2.rc == 0, 'synthetic images for a dataset', rel.describe(r)):
        t.finish()

    def dataset(name):
        d = J(name)
        for sub in ('images', 'labels', 'masks'):
            os.makedirs(os.path.join(d, sub))
        for i in range(3):
            s = '%04d' % i
            shutil.copy(J('raw', s + '.png'), os.path.join(d, 'images', s + '.png'))
            shutil.copy(J('raw', s + '_label.png'), os.path.join(d, 'labels', s + '.png'))
            shutil.copy(J('raw', s + '_mask.png'), os.path.join(d, 'masks', s + '.png'))
        return d

    ok_ds = dataset('ds')
    r = rel.run([clunet, 'data', 'check', ok_ds, '--dataset', 'TINY', '--datasets', J('datasets.txt')], 60)
    t.check(r.rc == 0, 'the intact dataset checks out', rel.describe(r))

    train = [clunet, 'train'] + rel.TINY + ['--steps', '1', '--epochs', '1', '--out', J('out')]
    tds = lambda d: [clunet, 'train', '--data', d, '--dataset', 'TINY', '--datasets', J('datasets.txt'),
                     '--size', '64', '--batch', '2', '--steps', '1', '--epochs', '1', '--out', J('out')]
    predict = lambda w, img=image: [clunet, 'predict', '--weights', w, '--out', pred, img]

    # --- checkpoints -----------------------------------------------------
    size = os.path.getsize(good)
    tensors, meta, start = rel.st_header(good)
    some = sorted(n for n in tensors if n.startswith('decoder.') and len(tensors[n][0]) == 4)[0]
    t.check('"input_skip": 0' in meta['config'], 'a run records whether it has the input skip',
            'config: %s' % meta['config'][:200])
    broken = [
        ('truncated to half', lambda p: truncate_copy(good, p, size // 2)),
        ('truncated by one byte', lambda p: truncate_copy(good, p, size - 1)),
        ('truncated inside the header', lambda p: truncate_copy(good, p, start // 2)),
        ('truncated to 5 bytes', lambda p: truncate_copy(good, p, 5)),
        ('tensor %s missing' % some, lambda p: rel.st_rewrite(good, p, lambda n, s: None if n == some else s)),
        ('tensor %s with a wrong shape' % some,
         lambda p: rel.st_rewrite(good, p, lambda n, s: [s[1], s[0]] + s[2:] if n == some else s)),
        ('tensor %s reshaped to one dimension' % some,
         lambda p: rel.st_rewrite(good, p, lambda n, s: [s[0] * s[1] * s[2] * s[3]] if n == some else s)),
        # a config that claims the input skip, whose last decoder block has 3 input channels more
        ('config with input_skip 1', lambda p: rel.st_rewrite(good, p, lambda n, s: s, {
            'config': meta['config'].replace('"input_skip": 0', '"input_skip": 1')})),
        # ... and one that no clunet builds
        ('config with input_skip 7', lambda p: rel.st_rewrite(good, p, lambda n, s: s, {
            'config': meta['config'].replace('"input_skip": 0', '"input_skip": 7')})),
        ('config with size 33', lambda p: rel.st_rewrite(good, p, lambda n, s: s, {
            'config': meta['config'].replace('"size": 64', '"size": 33')})),
        # a number written as a string was taken as absent: predict ran, --resume said "trained at --size 0"
        ('config with size "64"', lambda p: rel.st_rewrite(good, p, lambda n, s: s, {
            'config': meta['config'].replace('"size": 64', '"size": "64"')})),
        ('config of another model', lambda p: rel.st_rewrite(good, p, lambda n, s: s, {
            'config': meta['config'].replace('unet-efficientnet-b0', 'resnet')})),
        ('config cut short', lambda p: rel.st_rewrite(good, p, lambda n, s: s, {'config': meta['config'][:40]})),
        ('a NaN in tensor %s' % some, lambda p: poison_copy(good, p, start, tensors[some][1])),
        # a variance below 0 gives NaN, which the decoder's ReLUs would turn into a plausible-looking output
        ('a negative batch-norm variance',
         lambda p: poison_copy(good, p, start, tensors['encoder.0.1.running_var'][1], -1.0)),
        ('input_std [0, 1, 1]', lambda p: rel.st_rewrite(good, p, lambda n, s: s, {'input_std': '[0, 1, 1]'})),
        ('input_std [1e-35, 1, 1]', lambda p: rel.st_rewrite(good, p, lambda n, s: s, {'input_std': '[1e-35, 1, 1]'})),
        ('input_mean [nan, 0, 0]', lambda p: rel.st_rewrite(good, p, lambda n, s: s, {'input_mean': '[nan, 0, 0]'})),
        ('format clunet-checkpoint-9', lambda p: rel.st_rewrite(good, p, lambda n, s: s, {'format': 'clunet-checkpoint-9'})),
        ('no clunet metadata', lambda p: write_safetensors(p, [('x', [2], b'\0' * 8)], None)),
        ('header length past the end',
         lambda p: open(p, 'wb').write(struct.pack('<Q', 1 << 40) + b'{}')),
        ('header not JSON', lambda p: open(p, 'wb').write(struct.pack('<Q', 8) + b'{"a": [1')),
        ('empty file', lambda p: open(p, 'wb').close()),
        ('a PNG image', lambda p: shutil.copy(image, p)),
        ('a text file', lambda p: open(p, 'w').write('not a checkpoint\n' * 50)),
    ]
    for i, (what, make) in enumerate(broken):
        path = J('broken%d.safetensors' % i)
        make(path)
        expect_error(t, 'predict --weights (%s)' % what, predict(path), work, 'broken%d.safetensors' % i)
        if i in (0, 4, 5):  # the same files through --resume, which also reads Adam's state
            expect_error(t, 'train --resume (%s)' % what, train + ['--resume', path], work,
                         'broken%d.safetensors' % i)
        if i in (0, 4):
            expect_error(t, 'eval --weights (%s)' % what,
                         [clunet, 'eval', '--weights', path, '--data', ok_ds, '--dataset', 'TINY', '--datasets',
                          J('datasets.txt'), '--split', 'train'], work, 'broken%d.safetensors' % i)
        os.remove(path)
    # --encoder-weights reads the encoder's tensors alone: a NaN there is refused at load too, not after an epoch
    poison_copy(good, J('nan-encoder.safetensors'), start, tensors['encoder.0.0.weight'][1])
    expect_error(t, 'train --encoder-weights (a NaN in encoder.0.0.weight)',
                 train + ['--encoder-weights', J('nan-encoder.safetensors')], work, 'nan-encoder.safetensors')
    expect_error(t, 'predict --weights (no such file)', predict(J('nonexistent.safetensors')), work,
                 'nonexistent.safetensors')
    expect_error(t, 'predict --weights (a directory)', predict(J('good')), work, 'good')
    fresh = J('pred-fresh')
    expect_error(t, 'predict --weights (no such file) into a new --out',
                 [clunet, 'predict', '--weights', J('nonexistent.safetensors'), '--out', fresh, image], work,
                 'nonexistent.safetensors')
    t.check(not os.path.exists(fresh), '... leaves no --out folder behind')
    os.makedirs(J('twin'), exist_ok=True)
    twin = os.path.join(J('twin'), os.path.basename(image))
    shutil.copy(image, twin)
    expect_error(t, 'predict with two images of one name', predict(good) + [twin], work,
                 os.path.splitext(os.path.basename(image))[0])
    # an input among the files predict would write (x_prob.png beside x.png, --out their folder), also by a link
    beside = J('beside')
    os.makedirs(beside)
    shutil.copy(image, os.path.join(beside, 'x.png'))
    with open(os.path.join(beside, 'x_prob.png'), 'wb') as f:
        f.write(png(64, 64, True))
    os.symlink('x_prob.png', os.path.join(beside, 'link.png'))
    kept = open(os.path.join(beside, 'x_prob.png'), 'rb').read()
    for other in ('x_prob.png', 'link.png'):
        expect_error(t, 'predict with an input among its outputs (%s)' % other,
                     [clunet, 'predict', '--weights', good, '--out', beside, '--views', '1',
                      os.path.join(beside, 'x.png'), os.path.join(beside, other)], work, other)
    t.check(open(os.path.join(beside, 'x_prob.png'), 'rb').read() == kept and
            sorted(os.listdir(beside)) == ['link.png', 'x.png', 'x_prob.png'], '... leaves it as it was, writes nothing')
    expect_error(t, 'train --resume (no such file)', train + ['--resume', J('nonexistent.safetensors')], work,
                 'nonexistent.safetensors')

    # --- datasets --------------------------------------------------------
    expect_error(t, 'train --data (missing directory)', tds(J('no-such-dir')), work, 'no-such-dir')
    d = dataset('ds-nolabel')
    os.remove(os.path.join(d, 'labels', '0001.png'))
    expect_error(t, 'train --data (a label file missing)', tds(d), work, '0001')
    d = dataset('ds-size')
    shutil.copy(J('raw96', '0000.png'), os.path.join(d, 'images', '0001.png'))
    expect_error(t, 'train --data (image 96x96, label 64x64)', tds(d), work, '0001')
    d = dataset('ds-corrupt')
    truncate_copy(J('raw', '0002.png'), os.path.join(d, 'images', '0002.png'), 300)
    expect_error(t, 'train --data (a truncated image)', tds(d), work, '0002')
    # an entry named like an image or a label that is no file to read: named, with what it is, not "image
    # 0001 vanished" or "missing label"
    odd_entries = [('a folder', os.mkdir, 'not a regular file'),
                   ('a dangling link', lambda p: os.symlink('nothing-there', p), 'a dangling symbolic link'),
                   ('a link to itself', lambda p: os.symlink(os.path.basename(p), p), os.strerror(errno.ELOOP)),
                   ('a FIFO', os.mkfifo, 'not a regular file')]
    odd_cases = [('images', e) for e in odd_entries] + [('labels', e) for e in odd_entries[:2]]
    for i, (folder, (what, make, why)) in enumerate(odd_cases):
        od = dataset('ds-odd%d' % i)
        entry = os.path.join(folder, '0001.png')
        os.remove(os.path.join(od, entry))
        make(os.path.join(od, entry))
        expect_error(t, 'data check (%s %s)' % (entry, what),
                     [clunet, 'data', 'check', od, '--dataset', 'TINY', '--datasets', J('datasets.txt')], work,
                     entry + ': ' + why, timeout=20)
        if i == 0:
            expect_error(t, 'train --data (%s %s)' % (entry, what), tds(od), work, entry + ': ' + why)
    # a pattern of {id} alone lists the folder's files, not its "." and ".." entries
    bare = J('ds-bare')
    os.makedirs(bare)
    for i in range(3):
        shutil.copy(J('raw', '%04d.png' % i), bare)
    with open(J('bare-datasets.txt'), 'w') as f:
        f.write('dataset BARE\n  size 64x64\n  count 3\n  group train\n    image {id}\n')
    r = rel.run([clunet, 'data', 'check', bare, '--dataset', 'BARE', '--datasets', J('bare-datasets.txt')], 60)
    t.check(r.rc == 0 and 'BARE: 3 images' in r.out, 'data check with the pattern {id} alone', rel.describe(r))
    gd = dataset('ds-graded')
    with open(os.path.join(gd, 'labels', '0001.png'), 'wb') as f:
        f.write(png(64, 64, False))  # grey levels, as a JPEG's would be: `data check` refused it, train did not
    graded = os.path.join('labels', '0001.png')
    expect_error(t, 'train --data (a label of many grey levels)', tds(gd), work, graded)
    expect_error(t, 'eval --data (a label of many grey levels)',
                 [clunet, 'eval', '--weights', good, '--data', gd, '--dataset', 'TINY', '--datasets',
                  J('datasets.txt'), '--split', 'train'], work, graded)
    expect_error(t, 'data check (a label of many grey levels)',
                 [clunet, 'data', 'check', gd, '--dataset', 'TINY', '--datasets', J('datasets.txt')], work, graded)
    nd = dataset('ds-nofov')
    with open(os.path.join(nd, 'masks', '0002.png'), 'wb') as f:
        f.write(png(64, 64, False, black=True))  # trained and scored nothing, silently
    expect_error(t, 'train --data (a FOV mask with nothing inside)', tds(nd), work, os.path.join('masks', '0002.png'))
    # data check names every problem, not only the first: here two masks
    with open(os.path.join(nd, 'masks', '0000.png'), 'wb') as f:
        f.write(png(64, 64, False, black=True))
    r = rel.run([clunet, 'data', 'check', nd, '--dataset', 'TINY', '--datasets', J('datasets.txt')], 60)
    lines = r.err_lines()
    t.check(r.rc == 1 and len(lines) == 2 and '0000.png' in lines[0] and '0002.png' in lines[1] and
            '2 of 3 images' in r.out, 'data check with two bad masks names both', rel.describe(r))
    expect_error(t, 'train --dataset (not in datasets.txt)',
                 [clunet, 'train', '--data', ok_ds, '--dataset', 'NOPE', '--datasets', J('datasets.txt')], work, 'NOPE')
    fresh = J('out-fresh')
    expect_error(t, 'train --data without --dataset', [clunet, 'train', '--data', ok_ds, '--out', fresh], work,
                 '--dataset')
    expect_error(t, 'train --data with --synthetic', tds(ok_ds) + ['--synthetic', '4'], work, '--synthetic')

    # --- k-fold validation (TINY: 3 images, each its own subject) ----------
    expect_error(t, 'train --fold 2/5 with 3 subjects', tds(ok_ds) + ['--fold', '2/5'], work, '--fold')
    expect_error(t, 'train --fold with --val', tds(ok_ds) + ['--fold', '1/3', '--val', '1'], work, '--fold')
    fold_out = J('fold')
    fold_run = tds(ok_ds)[:-1] + [fold_out, '--fold', '2/3']
    r = rel.run(fold_run, 180, cwd=work)
    held = re.findall(r'held out for validation: (\S+)', r.out)
    if t.check(r.rc == 0 and len(held) == 1, 'train --fold 2/3 holds out one image', rel.describe(r)):
        last = os.path.join(fold_out, 'last.safetensors')
        r = rel.run([clunet, 'eval', '--weights', last, '--data', ok_ds, '--dataset', 'tiny', '--datasets',
                     J('datasets.txt'), '--split', 'val', '--views', '1'], 120, cwd=work)
        t.check(r.rc == 0 and ('evaluated %s (1/1)' % held[0]) in r.err, 'eval --split val (--dataset in another '
                'case) rebuilds the fold\'s held-out image', rel.describe(r))
        for extra, what in (([], 'without --fold'), (['--fold', '1/3'], 'with another fold')):
            resume = fold_run[:-2] + extra + ['--epochs', '2', '--resume', last]
            expect_error(t, 'train --resume of a --fold 2/3 run ' + what, resume, work, '--fold')
        r = rel.run(fold_run + ['--epochs', '2', '--resume', last], 180, cwd=work)
        t.check(r.rc == 0 and ('held out for validation: ' + held[0]) in r.out,
                'train --resume of a --fold 2/3 run with it holds out the same image', rel.describe(r))
    expect_error(t, 'train --data (a truncated image) into a new --out', tds(d)[:-1] + [fresh], work, '0002')
    t.check(not os.path.exists(fresh), '... leaves no --out folder behind')
    bad_lines = [('an unknown key', 'frobnicate yes'), ('a bad size', 'size 64y64'),
                 ('a key before any dataset', None)]
    for what, line in bad_lines:
        path = J('bad-datasets.txt')
        with open(path, 'w') as f:
            if line is None:
                f.write('size 64x64\ndataset TINY\n  group train\n    image images/{id}.png\n')
            else:
                f.write('dataset TINY\n  %s\n  group train\n    image images/{id}.png\n' % line)
        expect_error(t, 'train --datasets (%s)' % what,
                     [clunet, 'train', '--data', ok_ds, '--dataset', 'TINY', '--datasets', path, '--out', J('out')],
                     work, 'bad-datasets.txt')
        expect_error(t, 'data list --datasets (%s)' % what, [clunet, 'data', 'list', '--datasets', path], work,
                     'bad-datasets.txt')
    expect_error(t, 'train --datasets (no such file)',
                 [clunet, 'train', '--data', ok_ds, '--dataset', 'TINY', '--datasets', J('none.txt')], work, 'none.txt')
    with open(J('ids-datasets.txt'), 'w') as f:
        f.write('dataset TINY\n  train ids 0000 0001 0X02\n  group auto\n    image images/{id}.png\n'
                '    label labels/{id}.png\n')
    expect_error(t, 'train --datasets (`train ids` naming no image)',
                 [clunet, 'train', '--data', ok_ds, '--dataset', 'TINY', '--datasets', J('ids-datasets.txt'), '--out',
                  J('out')], work, '0X02')

    # --- report ------------------------------------------------------------
    for n in os.listdir(J('good')):
        os.utime(J('good', n), (1e9, 1e9))  # the curves the training run drew, dated 2001
    expect_error(t, 'report --data without --dataset (the checkpoint was trained on synthetic images)',
                 [clunet, 'report', J('good'), '--data', ok_ds], work, '--dataset')
    touched = [n for n in os.listdir(J('good')) if os.path.getmtime(J('good', n)) != 1e9]
    t.check(not touched, '... leaves the run folder as it was', 'written: ' + ', '.join(touched))

    with open(J('a-file'), 'w') as f:
        f.write('not a folder\n')
    for what, cmd in [('train', train[:-1] + [J('a-file')]),
                      ('predict', [clunet, 'predict', '--weights', good, '--out', J('a-file'), image]),
                      ('synth', [clunet, 'synth', '--n', '1', '--size', '64', '--out', J('a-file')])]:
        r = expect_error(t, '%s --out naming a file' % what, cmd, work, 'a-file: exists and is not a directory')
        t.check('device:' not in r.out and 'wrote' not in r.out, '... refused before any work', r.out.strip()[-200:])
    # a new run into the folder of another: its best.safetensors would pass for the new run's
    before = {n: os.path.getmtime(J('good', n)) for n in os.listdir(J('good'))}
    expect_error(t, 'train into a folder that holds a run', train[:-1] + [J('good')], work,
                 'already holds a run')
    t.check(before == {n: os.path.getmtime(J('good', n)) for n in os.listdir(J('good'))},
            '... leaves that run\'s files as they were')
    expect_error(t, 'train --out of 1100 characters', train[:-1] + [J('d' * 1100)], work, 'too long')
    # two runs at once into one folder: the second is refused while the first writes there
    busy = J('busy')
    first = subprocess.Popen(train[:-1] + [busy, '--epochs', '50'], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    for _ in range(600):  # until it has made the folder (and locked it: the same moment, give or take)
        if os.path.isdir(busy) or first.poll() is not None:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    expect_error(t, 'a second train into a folder a run is writing', train[:-1] + [busy], work,
                 'another clunet train is writing there')
    first.kill()
    first.wait()
    expect_error(t, 'data fov to a .jpg name (the mask is PNG data)',
                 [clunet, 'data', 'fov', image, J('mask.jpg')], work, 'mask.jpg')
    t.check(not os.path.exists(J('mask.jpg')), '... writes no file')
    photo = J('photo.png')
    shutil.copy(image, photo)
    good_image = open(image, 'rb').read()
    expect_error(t, 'data fov onto its own input image', [clunet, 'data', 'fov', photo, photo], work,
                 'is the input image itself')
    t.check(open(photo, 'rb').read() == good_image, '... leaves the photograph as it was')
    # stdout that cannot take the report (a full disk): an error, not exit 0 with a cut-off file
    expect_error(t, 'data list into a full device', ['sh', '-c', '"$0" data list > /dev/full', clunet], work,
                 'cannot write the output')

    # --- settings from the environment -----------------------------------
    for what, value, mentions in [('a misspelt key', 'gemm_nn_row=2', 'gemm_nn_row=2'),
                                  ('a key without a value', 'conv_winograd=1,stream_stores', 'stream_stores'),
                                  ('a value that is no candidate', 'gemm_nn_rows=3', 'gemm_nn_rows')]:
        expect_error(t, 'CLUNET_TUNE (%s)' % what, train, work, mentions, env=dict(os.environ, CLUNET_TUNE=value))
    r = expect_error(t, 'bench with a bad CLUNET_TUNE', [clunet, 'bench', '--size', '64', '--no-profile'], work,
                     'gemm_nn_row', env=dict(os.environ, CLUNET_TUNE='gemm_nn_row=2'))
    t.check(not r.out.strip(), '... prints no table of failures', r.out.strip()[:200])

    # --- images given to predict -----------------------------------------
    with open(image, 'rb') as f:
        good_png = f.read()
    images = [
        ('truncated PNG', 'trunc.png', good_png[:len(good_png) // 2]),
        ('PNG header only', 'head.png', good_png[:33]),
        ('random bytes as .png', 'noise.png', bytes((i * 7919 + 13) % 251 for i in range(4096))),
        ('empty .jpg', 'empty.jpg', b''),
        ('text as .tif', 'text.tif', b'II*\0' + b'hello' * 20),
        ('PNG bytes with a flipped bit', 'flip.png', good_png[:40] + bytes([good_png[40] ^ 0x10]) + good_png[41:]),
        ('GIF header only', 'head.gif', b'GIF89a\x40\x00\x40\x00'),
        ('PNG claiming 1000000x1000000', 'huge.png', png(1000000, 1000000, True, bytes_per_row=64)),
        ('PNG claiming 0x64', 'zero.png', png(0, 64, True)),
        ('PPM claiming 200000x200000', 'huge.ppm', b'P6\n200000 200000\n255\n' + b'\x80' * 300),
        ('PGM with maxval 0', 'max0.pgm', b'P5\n4 4\n0\n' + b'\0' * 16),
    ]
    for what, name, data in images:
        path = J(name)
        with open(path, 'wb') as f:
            f.write(data)
        expect_error(t, 'predict (%s)' % what, predict(good, path), work, name)
    # Odd but valid sizes must work: tiling pads and crops.
    for w, h, rgb in ((1, 1, True), (7, 5, False), (33, 200, True), (100, 3, True)):
        path = J('odd-%dx%d.png' % (w, h))
        with open(path, 'wb') as f:
            f.write(png(w, h, rgb))
        r = rel.run(predict(good, path), TIME_LIMIT, cwd=work)
        got = png_size(os.path.join(pred, 'odd-%dx%d_prob.png' % (w, h))) if r.rc == 0 else None
        t.check(r.rc == 0 and got == (w, h), 'predict on a %dx%d %s image gives a %dx%d map' %
                (w, h, 'RGB' if rgb else 'grey', w, h), rel.describe(r) if r.rc else 'map is %s' % (got,))
        if w > 1:  # and through views and scales (whose tiles inference counts for its progress)
            r = rel.run(predict(good, path) + ['--views', '4', '--scales', '1,0.5,1.3'], TIME_LIMIT, cwd=work)
            got = png_size(os.path.join(pred, 'odd-%dx%d_prob.png' % (w, h))) if r.rc == 0 else None
            t.check(r.rc == 0 and got == (w, h), 'predict --views 4 --scales 1,0.5,1.3 on a %dx%d image' % (w, h),
                    rel.describe(r) if r.rc else 'map is %s' % (got,))
    expect_error(t, 'predict (no such image)', predict(good, J('missing.png')), work, 'missing.png')

    # --- FIFOs as input files: refused by their type, not waited on for a writer that never comes ---
    fifo = J('fifo')
    os.mkfifo(fifo)
    fifo_run = J('fifo-run')
    os.makedirs(fifo_run)
    shutil.copy(good, fifo_run)
    os.mkfifo(os.path.join(fifo_run, 'metrics.csv'))
    fifo_out = train[:-1] + [J('fifo-out')]
    for what, cmd, mentions in [
            ('predict --weights', predict(fifo), 'fifo'), ('predict', predict(good, fifo), 'fifo'),
            ('train --resume', fifo_out + ['--resume', fifo], 'fifo'),
            ('train --encoder-weights', fifo_out + ['--encoder-weights', fifo], 'fifo'),
            ('data list --datasets', [clunet, 'data', 'list', '--datasets', fifo], 'fifo'),
            ('data check', [clunet, 'data', 'check', fifo], 'fifo'),
            ('report --curves-only (metrics.csv)', [clunet, 'report', fifo_run, '--curves-only'], 'metrics.csv'),
            ('train --resume (metrics.csv)', train[:-1] + [fifo_run, '--epochs', '2', '--resume',
                                                           os.path.join(fifo_run, 'last.safetensors')], 'metrics.csv')]:
        expect_error(t, '%s given a FIFO' % what, cmd, work, mentions + ': not a regular file', timeout=20)

    # --- option values ---------------------------------------------------
    options = [
        (['--size', '33'], '--size'), (['--size', '0'], '--size'), (['--batch', '0'], '--batch'),
        (['--batch', 'two'], '--batch'), (['--lr', '-1'], '--lr'), (['--lr', 'nan'], '--lr'),
        (['--lr', 'inf'], '--lr'), (['--epochs', '0'], '--epochs'), (['--steps', '-3'], '--steps'),
        (['--memory-cap', '0'], '--memory-cap'), (['--threshold', '1'], '--threshold'),
        (['--seed', '99999999999'], '--seed'), (['--loss-lambda', '2'], '--loss-lambda'),
        (['--ema', '1'], '--ema'), (['--ema', '-0.5'], '--ema'), (['--ema', 'nan'], '--ema'),
        (['--weight-decay', 'nan'], '--weight-decay'), (['--loss-lambda', 'nan'], '--loss-lambda'),
        (['--warmup', 'nan'], '--warmup'), (['--input-skip', 'yes'], '--input-skip'),
        (['--focal-alpha', '1.5'], '--focal-alpha'), (['--focal-gamma', '0.5'], '--focal-gamma'),
        (['--focal-gamma', 'nan'], '--focal-gamma'), (['--bn-eps', '1'], '--bn-eps'), (['--bn-eps', '0'], '--bn-eps'), (['--drop-connect', '1'], '--drop-connect'),
        (['--drop-connect', '-0.1'], '--drop-connect'), (['--drop-connect', 'nan'], '--drop-connect'),
        (['--input-scale', '0.1'], '--input-scale'), (['--input-scale', '5'], '--input-scale'),
        (['--input-scale', 'nan'], '--input-scale'),
        (['--fold', '0/3'], '--fold'), (['--fold', '4/3'], '--fold'), (['--fold', '1/1'], '--fold'),
        (['--fold', '1'], '--fold'), (['--fold', '1/'], '--fold'), (['--fold', '2/3'], '--fold'),
        (['--frobnicate', '1'], '--frobnicate'), (['--size'], '--size'),
        (['--device', '99'], '99'), (['--device', 'nosuchdevice'], 'nosuchdevice'),
        (['--data', ok_ds], '--dataset'), (['--resume', good, '--encoder-weights', good], '--encoder-weights'),
    ]
    for extra, mentions in options:
        expect_error(t, 'train ' + ' '.join(extra), train + extra, work, mentions)
    expect_error(t, 'predict --device nosuchdevice', predict(good) + ['--device', 'nosuchdevice'], work,
                 'nosuchdevice')
    expect_error(t, 'predict --size 33', predict(good) + ['--size', '33'], work, '--size')
    for scales in ('0', '1,', '1,,2', '1;2', 'nan', '5', '1,1,1,1,1'):
        expect_error(t, 'predict --scales ' + scales, predict(good) + ['--scales', scales], work, '--scales')
    expect_error(t, 'eval without --data', [clunet, 'eval', '--weights', good], work, '--data')
    expect_error(t, 'unknown command', [clunet, 'frobnicate'], work, 'frobnicate')
    t.finish()


if __name__ == '__main__':
    main()
