#!/usr/bin/python3
"""test_memory_cap.py CLUNET - `clunet train --memory-cap`.

Too small a cap must fail at once with one line naming the size asked for and the limit
and suggesting a smaller batch or size; a cap just above the need the message states
must let the same training run.
"""
import math
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
import rel  # noqa: E402


def main():
    clunet, = rel.args_or_usage(1, 'test_memory_cap.py CLUNET')
    t = rel.Tally('memory-cap', budget_s=120)
    work = rel.workdir('memory-cap')

    def capped(cap, size, batch, out, extra=()):
        return rel.run([clunet, 'train', '--synthetic', '4', '--size', str(size), '--batch', str(batch), '--steps', '1',
                        '--epochs', '1', '--memory-cap', str(cap), '--out', os.path.join(work, out)] + list(extra), 120,
                       cwd=work)

    needs = {}
    for size, batch, cap in ((256, 4, 64), (64, 2, 90)):
        what = '--memory-cap %d --size %d --batch %d' % (cap, size, batch)
        r = capped(cap, size, batch, 'cap%d' % cap)
        lines = r.err_lines()
        line = lines[0] if len(lines) == 1 else ''
        t.check(r.rc is not None and 0 < r.rc < 128, what + ': fails without crashing', rel.describe(r))
        t.check(len(lines) == 1 and line.startswith('clunet'), what + ': one line on stderr starting "clunet"',
                ' / '.join(lines[:3]))
        print('  ' + line)
        t.check(re.search(r'\b%d(\.0)? MiB' % cap, line), what + ': names the limit (%d MiB)' % cap)
        m = re.search(r'needs about (\d+(?:\.\d+)?) MiB', line)
        t.check(m and float(m.group(1)) > cap, what + ': names the size asked for ("needs about N MiB", N > %d)' % cap)
        t.check('--batch' in line and '--size' in line, what + ': suggests a smaller --batch or --size')
        t.check(r.seconds < 30, what + ': fails within 30 s', '%.1f s' % r.seconds)
        t.check(not os.path.exists(os.path.join(work, 'cap%d' % cap, 'last.safetensors')),
                what + ': writes no checkpoint')
        if m:
            needs[(size, batch)] = float(m.group(1))

    # The stated need must be about right: the tiny run fits a cap 10% above it.
    need = needs.get((64, 2))
    if t.check(need is not None, 'the tiny configuration states its need'):
        cap = math.ceil(need * 1.1) + 1
        r = capped(cap, 64, 2, 'fits')
        t.check(r.rc == 0, '--memory-cap %d (stated need %.0f MiB + 10%%) --size 64 --batch 2 trains' % (cap, need),
                rel.describe(r))
        # --ema keeps a copy of the weights: a cap that fits the run without it must be refused up front too,
        # with the need stated, not by the copy's own allocation after the kernels were timed
        r = capped(cap, 64, 2, 'ema', ['--ema', '0.9'])
        m = re.search(r'needs about (\d+(?:\.\d+)?) MiB', r.err)
        t.check(r.rc is not None and 0 < r.rc < 128 and len(r.err_lines()) == 1 and m and float(m.group(1)) > cap,
                '--ema 0.9 --memory-cap %d: refused up front, naming a need above the cap' % cap, rel.describe(r))
        if m:
            ema_cap = math.ceil(float(m.group(1)) * 1.1) + 1
            r = capped(ema_cap, 64, 2, 'ema-fits', ['--ema', '0.9'])
            t.check(r.rc == 0, '--ema 0.9 --memory-cap %d (stated need + 10%%) trains' % ema_cap, rel.describe(r))
    t.finish()


if __name__ == '__main__':
    main()
