#!/usr/bin/python3
"""test_nan.py CLUNET - a non-finite loss stops training cleanly.

There is no option meant to break training, but an absurd --weight-decay (1e30; decoupled,
so it multiplies the weights by about -1e26 per step) overflows them within two steps.
  1. One good epoch, then --resume with that weight decay from a copy of its checkpoint whose
     config says so (a resumed run must keep its run's weight decay): the run must fail with
     one line naming the epoch and step, and last.safetensors must stay byte-identical,
     loadable and finite.
  2. The same weight decay from the start: whatever the run does, it must never leave a
     checkpoint holding non-finite values behind, and it must fail naming a step.
"""
import hashlib
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
import rel  # noqa: E402


def digest(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def main():
    clunet, = rel.args_or_usage(1, 'test_nan.py CLUNET')
    t = rel.Tally('nan', budget_s=150)
    work = rel.workdir('nan')
    image = rel.synth_image(clunet, os.path.join(work, 'img'))
    base = [clunet, 'train'] + rel.TINY + ['--steps', '2']

    def failure(what, r):
        lines = r.err_lines()
        line = lines[0] if len(lines) == 1 else ''
        t.check(r.rc is not None and 0 < r.rc < 128, what + ': fails without crashing', rel.describe(r))
        t.check(len(lines) == 1 and line.startswith('clunet'), what + ': one line on stderr starting "clunet"',
                ' / '.join(lines[:3]))
        print('  ' + line)
        m = re.search(r'epoch (\d+), step (\d+)', line)
        t.check(m and re.search(r'\b(nan|inf|-inf|non-finite|not finite)\b', line, re.I),
                what + ': the error says the loss is not finite and names the epoch and step')
        named = re.findall(r'checkpoint is (\S+\.safetensors)', line)
        t.check(all(os.path.isfile(p) for p in named), what + ': a checkpoint the error names exists', ', '.join(named))
        return m

    # 1. A good epoch, then poison.
    out = os.path.join(work, 'resume')
    r = rel.run(base + ['--epochs', '1', '--out', out], 120)
    last = os.path.join(out, 'last.safetensors')
    if not t.check(r.rc == 0, 'one good epoch', rel.describe(r)):
        t.finish()
    before = digest(last)
    poisoned = os.path.join(out, 'poisoned.safetensors')  # in the run's folder: a resume writes only there
    config = rel.st_header(last)[1]['config']
    t.check('"weight_decay": 0,' in config, 'the run recorded its weight decay', config[:300])
    rel.st_rewrite(last, poisoned, lambda n, s: s, {'config': config.replace('"weight_decay": 0,', '"weight_decay": 1e30,')})
    r = rel.run(base + ['--epochs', '3', '--weight-decay', '1e30', '--resume', poisoned, '--out', out], 120)
    m = failure('--resume with --weight-decay 1e30', r)
    if m:
        t.check(m.group(1) == '2', '--resume with --weight-decay 1e30: stops in epoch 2', 'epoch ' + m.group(1))
    t.check(digest(last) == before, 'last.safetensors from epoch 1 is untouched')
    _, _, bad = rel.st_scan(last)
    t.check(not bad, 'last.safetensors holds finite values', ', '.join(bad[:3]))
    pr = rel.predicts(clunet, last, image, os.path.join(work, 'pred'))
    t.check(pr.rc == 0, 'clunet predict loads last.safetensors', rel.describe(pr))
    t.check(not rel.temp_files(out), 'no temporary files left', ', '.join(rel.temp_files(out)))

    # 2. Poisoned from the first step: no checkpoint may carry the damage.
    out = os.path.join(work, 'fresh')
    r = rel.run(base + ['--epochs', '3', '--weight-decay', '1e30', '--out', out], 120)
    failure('--weight-decay 1e30 from the start', r)
    for name in rel.checkpoints(out) if os.path.isdir(out) else []:
        _, _, bad = rel.st_scan(os.path.join(out, name))
        t.check(not bad, '%s holds finite values' % name,
                '%d tensors with NaN/Inf, e.g. %s' % (len(bad), ', '.join(bad[:3])))
    for row in rel.csv_rows(os.path.join(out, 'metrics.csv')):
        bad = [k for k, v in row.items() if v.lower() in ('nan', '-nan', 'inf', '-inf')]
        t.check(not bad, 'metrics.csv epoch %s has finite values' % row.get('epoch'), ', '.join(bad))
    t.finish()


if __name__ == '__main__':
    main()
