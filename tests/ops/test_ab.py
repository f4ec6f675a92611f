#!/usr/bin/python3
"""test_ab.py TEST_OPS CL_DIR - the contract of `test-ops --perf --ab KEY=A,B` (no timing is judged).

--ab times two tuning choices by turns in one process, the way to compare kernel variants on a
busy machine (docs/PERFORMANCE.md). Checked: each case line names both choices with a time each,
their ratio and the number of pairs; the knob is chosen again after each change (a value that is
not a candidate fails, where a knob left as first chosen would never read it); a key that $CLUNET_TUNE does not know fails the case naming
it; --ab without --perf or with a malformed value is a usage error; a $CLUNET_TUNE set by the
caller is kept for the other keys (a bad entry there still fails). --ab kernels=DIR times the
built-in kernels against DIR's copies of cl/: a copy runs, and a copy whose file does not build fails
the case naming DIR (so B's programs are DIR's, not the built-in ones kept from A's runs).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile


def line_re(a, b):
    return re.compile(r'^\s+ok\s+conv2d_forward\s+\[b2 expand N1 .*\] ' + re.escape(a) + r'\s+([0-9.]+) ms\s+' +
                      re.escape(b) + r'\s+([0-9.]+) ms\s+ratio ([0-9.]+)\s+\(medians of (\d+) pairs\)$')


LINE = line_re('gemm_nn_rows=2', 'gemm_nn_rows=4')


def main():
    if len(sys.argv) != 3:
        print('usage: test_ab.py TEST_OPS CL_DIR', file=sys.stderr)
        sys.exit(2)
    test_ops, cl_dir = sys.argv[1:]
    passed = failed = 0

    def check(ok, what, detail=''):
        nonlocal passed, failed
        passed, failed = passed + bool(ok), failed + (not ok)
        print(('ok    ' if ok else 'FAIL  ') + what + ('' if ok else ': ' + detail[-600:]), flush=True)

    def run(args, env_extra=None):
        env = dict(os.environ, CLUNET_GEMM='register')
        env.pop('CLUNET_TUNE', None)
        env.update(env_extra or {})
        return subprocess.run([test_ops, '--device', 'cpu'] + args, capture_output=True, text=True, env=env,
                              timeout=600)

    case = ['--perf', '--op', 'conv2d_forward', '--case', 'b2 expand N1']
    r = run(case + ['--ab', 'gemm_nn_rows=2,4'])
    lines = [LINE.match(l) for l in r.stdout.splitlines()]
    found = [m for m in lines if m]
    check(r.returncode == 0 and found and all(float(m.group(1)) > 0 and float(m.group(2)) > 0
                                              and float(m.group(3)) > 0 and int(m.group(4)) >= 5 for m in found),
          '--ab gemm_nn_rows=2,4: both choices timed, their ratio over >= 5 pairs', r.stdout + r.stderr)

    r = run(case + ['--ab', 'gemm_nn_rows=2,4'], {'CLUNET_TUNE': 'conv_tiled_ob=2'})
    check(r.returncode == 0 and any(LINE.match(l) for l in r.stdout.splitlines()),
          '... with a $CLUNET_TUNE of the caller\'s for another key', r.stdout + r.stderr)
    r = run(case + ['--ab', 'gemm_nn_rows=2,4'], {'CLUNET_TUNE': 'conv_tiled_ob=3'})
    check(r.returncode != 0 and 'conv_tiled_ob' in r.stdout + r.stderr,
          '... whose bad entry still fails, named', r.stdout + r.stderr)

    r = run(case + ['--ab', 'gemm_nn_rows=2,3'])
    check(r.returncode != 0 and 'gemm_nn_rows=3' in r.stdout and 'expected one of' in r.stdout,
          'the knob is chosen again from $CLUNET_TUNE after each change (3 is no candidate)', r.stdout + r.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        good, bad = os.path.join(tmp, 'good'), os.path.join(tmp, 'bad')
        shutil.copytree(cl_dir, good)
        shutil.copytree(cl_dir, bad)
        with open(os.path.join(bad, 'gemm.cl'), 'a') as f:
            f.write('\nthis does not build\n')
        r = run(case + ['--ab', 'kernels=' + good])
        found = [m for m in (line_re('built-in', good).match(l) for l in r.stdout.splitlines()) if m]
        check(r.returncode == 0 and found and all(int(m.group(4)) >= 5 for m in found),
              '--ab kernels=DIR: the built-in kernels and DIR\'s timed by turns', r.stdout + r.stderr)
        r = run(case + ['--ab', 'kernels=' + bad])
        check(r.returncode != 0 and bad in r.stdout and 'gemm.cl' in r.stdout,
              '... and B builds DIR\'s files: one that does not build fails the case, naming DIR',
              r.stdout + r.stderr)
        r = run(case + ['--ab', 'kernels=' + os.path.join(tmp, 'missing')])
        check(r.returncode != 0 and 'cannot read' in r.stdout, '... a DIR without the files fails, named',
              r.stdout + r.stderr)

    r = run(case + ['--ab', 'no_such_knob=1,2'])
    check(r.returncode != 0 and 'no_such_knob' in r.stdout, 'an unknown key fails the case, named',
          r.stdout + r.stderr)
    for args in (['--op', 'conv2d_forward', '--ab', 'gemm_nn_rows=2,4'], case + ['--ab', 'gemm_nn_rows=2'],
                 case + ['--ab', '=2,4'], case + ['--ab', 'gemm_nn_rows=2,x'], case + ['--ab', 'kernels='],
                 case + ['--ab']):
        r = run(args)
        check(r.returncode == 2 and r.stderr.startswith('test-ops: '), 'usage error: ' + ' '.join(args[-2:]),
              r.stdout + r.stderr)
    print('%d passed, %d failed' % (passed, failed))
    sys.exit(1 if failed or not passed else 0)


if __name__ == '__main__':
    main()
