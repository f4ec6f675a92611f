#!/usr/bin/python3
"""bench_profile.py CLUNET - `clunet bench` on the default device at a small size: its JSON and table.

Checks what the speed issue's numbers are read from: timings and probes positive and finite, the
per-kind profile complete (its times add up to the profiled step, its nodes to every node timed), the
convs' FLOP per kind adding up to a training step's (forward, weight gradient, and the data gradient
of every conv but the one on the image), traffic counted for convs only, and the table printing each
conv kind's rate against the FMA and copy probes.
"""
import json
import math
import os
import re
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'reliability'))
import rel  # noqa: E402  (the tally and runner the reliability tests share)


def main():
    clunet, = rel.args_or_usage(1, 'bench_profile.py CLUNET')
    t = rel.Tally('bench-profile', budget_s=120)
    check = t.check
    size, batch = 64, 2
    args = [clunet, 'bench', '--size', str(size), '--batch', str(batch), '--steps', '2', '--warmup', '1']
    p = rel.run(args + ['--json'], 600)
    if not check(p.rc == 0, 'bench --json: exit 0', rel.describe(p)):
        t.finish()
    d = json.loads(p.out)
    check(len(d['devices']) == 1, 'one device (the default)')
    x = d['devices'][0]
    positive = lambda v: isinstance(v, (int, float)) and math.isfinite(v) and v > 0
    check(all(positive(x[k][m]) for k in ('train_ms', 'infer_ms') for m in ('median', 'min'))
          and x['train_ms']['min'] <= x['train_ms']['median'] and x['infer_ms']['min'] <= x['infer_ms']['median'],
          'step and inference times positive, min <= median (%s, %s)' % (x['train_ms'], x['infer_ms']))
    check(all(positive(x[k]) for k in ('peak_gflops_fma', 'peak_gflops_gemm', 'bandwidth_gbs', 'peak_memory_mib')),
          'probes and peak memory positive')

    kinds, total = x['top_kinds'], x['profile_total_ms']
    names = [k['name'] for k in kinds]
    check(len(set(names)) == len(names) and 'loss' in names and 'adam' in names,
          'per-kind profile: %d distinct kinds with the loss and Adam' % len(names))
    check(abs(sum(k['ms'] for k in kinds) - total) < 1e-3 * len(kinds) + 1e-6 * total,
          'per-kind times add up to the profiled step (%.3f ms)' % total)
    blocks = x['top_ops']
    check(all(b['ms'] <= total for b in blocks) and sum(b['ms'] for b in blocks) <= total + 1e-3 * len(blocks),
          'per-block times within the step')
    convs = [k for k in kinds if k['name'].startswith('conv ')]
    check(len(convs) >= 4 and all(k['gflop'] > 0 and k['gb'] > 0 for k in convs),
          'every conv kind counts FLOP and bytes (%d kinds)' % len(convs))
    check(all(k['gflop'] == 0 and k['gb'] == 0 for k in kinds if not k['name'].startswith('conv ')),
          'no FLOP or bytes counted for the other ops')
    # The stem: a 3x3 stride-2 conv from the 3-channel image to 32 channels at half size.
    stem = 2.0 * batch * (size // 2) ** 2 * 32 * 3 * 9 * 1e-9
    want = 3 * d['forward_gflop'] - stem
    got = sum(k['gflop'] for k in convs)
    check(abs(got - want) <= 1e-3 * want,
          'conv FLOP per step = 3 x forward - the stem\'s data gradient (%.4f vs %.4f GFLOP)' % (got, want))

    p = rel.run(args, 600)
    if check(p.rc == 0, 'bench (table): exit 0', rel.describe(p)):
        table = p.out.split('by op kind:')[-1]
        rows = [l for l in table.splitlines() if l.strip().startswith('conv ')]
        rated = [l for l in rows if re.search(r'GFLOP/s +\d+% of FMA, +[\d.]+ GB/s +\d+% of copy', l)]
        check(len(rows) == len(convs) and len(rated) == len(rows),
              'table: every conv kind with its rates against the probes (%d of %d)' % (len(rated), len(rows)))
    t.finish()


if __name__ == '__main__':
    main()
