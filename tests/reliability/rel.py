"""rel.py - shared helpers of the reliability tests (Python 3 standard library only).

A pass/fail tally that ends every test with `N passed, M failed`, a runner for the
clunet program with a time limit, a strict safetensors reader (layout, digests,
finiteness), and the tiny training configuration the tests share.
"""
import atexit
import hashlib
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from array import array

# Small enough for a couple of seconds per run on a busy CPU.
TINY = ['--synthetic', '4', '--size', '64', '--batch', '2']

# cn_st_write's temporary names (src/train/safetensors.c): PATH.tmp-XXXXXX.
TEMP_RE = re.compile(r'\.tmp-[A-Za-z0-9]{6}$')


class Tally:
    """Counts checks; finish() prints the summary and exits non-zero on any failure.

    budget_s bounds the loops that repeat a check (over_budget()), so a slow or busy machine runs fewer
    rounds; it is not a speed requirement: exceeding it is reported, never a failure.
    """

    def __init__(self, name, budget_s):
        self.name, self.passed, self.failed = name, 0, 0
        self.t0 = time.monotonic()
        self.budget_s = budget_s

    def check(self, ok, what, detail=''):
        if ok:
            self.passed += 1
            print('ok    ' + what, flush=True)
        else:
            self.failed += 1
            print('FAIL  ' + what + (': ' + detail if detail else ''), flush=True)
        return ok

    def start_budget(self):
        """The budget counts from now (after a warm-up that may have compiled the kernels)."""
        self.t0 = time.monotonic()

    def elapsed(self):
        return time.monotonic() - self.t0

    def over_budget(self):
        return self.elapsed() > self.budget_s

    def finish(self):
        if self.over_budget():
            print('note  %s took %.1f s, over its budget of %d s (a slow or busy machine)'
                  % (self.name, self.elapsed(), self.budget_s))
        print('%s: %.1f s' % (self.name, self.elapsed()))
        print('%d passed, %d failed' % (self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed or not self.passed else 0)


class Result:
    def __init__(self, rc, out, err, seconds):
        self.rc, self.out, self.err, self.seconds = rc, out, err, seconds

    @property
    def timed_out(self):
        return self.rc is None

    def err_lines(self):
        return [l for l in self.err.splitlines() if l.strip()]


def run(cmd, timeout, cwd=None, env=None):
    """Runs cmd; rc None when it ran past timeout (it is killed then)."""
    t = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, errors='replace')
        return Result(p.returncode, p.stdout, p.stderr, time.monotonic() - t)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors='replace') if isinstance(e.stdout, bytes) else (e.stdout or '')
        err = e.stderr.decode(errors='replace') if isinstance(e.stderr, bytes) else (e.stderr or '')
        return Result(None, out, err, time.monotonic() - t)


def describe(r):
    """A short account of a run for failure messages."""
    if r.timed_out:
        return 'timed out after %.0f s' % r.seconds
    tail = (r.err.strip() or r.out.strip()).splitlines()[-3:]
    return 'exit %s: %s' % (r.rc, ' | '.join(tail))


def workdir(name):
    """A fresh temporary directory, removed at exit unless RELIABILITY_KEEP=1."""
    d = tempfile.mkdtemp(prefix='clunet-%s-' % name)
    if os.environ.get('RELIABILITY_KEEP') != '1':
        atexit.register(shutil.rmtree, d, True)
    print('work directory: ' + d)
    return d


def args_or_usage(n, usage):
    if len(sys.argv) < 1 + n:
        print('usage: ' + usage, file=sys.stderr)
        sys.exit(2)
    return [os.path.abspath(a) for a in sys.argv[1:1 + n]]


# ------------------------------------------------------------------------
# safetensors, read strictly
# ------------------------------------------------------------------------

def st_header(path):
    """(tensors {name: (shape, begin, end)}, metadata, data_start); ValueError on any defect."""
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError('%d bytes, too short' % size)
        n = struct.unpack('<Q', head)[0]
        if n < 2 or n > size - 8:
            raise ValueError('header length %d does not fit %d bytes' % (n, size))
        try:
            h = json.loads(f.read(n).decode('utf-8'))
        except (UnicodeDecodeError, ValueError) as e:
            raise ValueError('header is not JSON: %s' % e)
    if not isinstance(h, dict):
        raise ValueError('header is not an object')
    meta = h.pop('__metadata__', {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError('__metadata__ is not an object of strings')
    data = size - 8 - n
    tensors, spans = {}, []
    for name, t in h.items():
        if not isinstance(t, dict) or t.get('dtype') != 'F32':
            raise ValueError('tensor %s: not an F32 tensor' % name)
        shape, offs = t.get('shape'), t.get('data_offsets')
        if (not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape)
                or not isinstance(offs, list) or len(offs) != 2):
            raise ValueError('tensor %s: bad shape or data_offsets' % name)
        if offs[1] - offs[0] != 4 * math.prod(shape):
            raise ValueError('tensor %s: %d bytes for shape %s' % (name, offs[1] - offs[0], shape))
        tensors[name] = (shape, offs[0], offs[1])
        spans.append((offs[0], offs[1], name))
    pos = 0
    for b, e, name in sorted(spans):
        if b != pos:
            raise ValueError('tensor %s: data at %d, expected %d' % (name, b, pos))
        pos = e
    if pos != data:
        raise ValueError('tensors cover %d of %d data bytes' % (pos, data))
    return tensors, meta, 8 + n


def st_rewrite(src, dst, edit, meta_edit=None):
    """Copies checkpoint src to dst with edit(name, shape) -> new shape, or None to drop the tensor,
    and the metadata updated with meta_edit."""
    tensors, meta, start = st_header(src)
    meta.update(meta_edit or {})
    kept = []
    for name, (shape, b, e) in sorted(tensors.items(), key=lambda kv: kv[1][1]):
        new = edit(name, shape)
        if new is not None:
            kept.append((name, new, b, e))
    header, pos = {'__metadata__': meta}, 0
    for name, shape, b, e in kept:
        header[name] = {'dtype': 'F32', 'shape': shape, 'data_offsets': [pos, pos + e - b]}
        pos += e - b
    text = json.dumps(header).encode()
    with open(src, 'rb') as f, open(dst, 'wb') as o:
        o.write(struct.pack('<Q', len(text)) + text)
        for _, _, b, e in kept:
            f.seek(start + b)
            o.write(f.read(e - b))


def st_check(path):
    """None if path is a well-formed safetensors file, else why not."""
    try:
        st_header(path)
        return None
    except (OSError, ValueError) as e:
        return str(e)


def st_scan(path):
    """(metadata, {name: sha256 of its bytes}, names with non-finite values)."""
    tensors, meta, start = st_header(path)
    digests, nonfinite = {}, []
    with open(path, 'rb') as f:
        for name, (shape, b, e) in tensors.items():
            f.seek(start + b)
            raw = f.read(e - b)
            digests[name] = hashlib.sha256(raw).hexdigest()
            a = array('f')
            a.frombytes(raw)
            if sys.byteorder != 'little':
                a.byteswap()
            try:  # exact summation: not finite iff some value is not
                finite = math.isfinite(math.fsum(a))
            except (OverflowError, ValueError):
                finite = False
            if not finite:
                nonfinite.append(name)
    return meta, digests, nonfinite


def temp_files(d):
    return sorted(n for n in os.listdir(d) if TEMP_RE.search(n))


def checkpoints(d):
    return sorted(n for n in os.listdir(d) if n.endswith('.safetensors'))


def csv_rows(path):
    """metrics.csv as a list of dicts, without the wall-clock column."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [l.rstrip('\n') for l in f if l.strip()]
    if not lines:
        return []
    keys = lines[0].split(',')
    rows = []
    for l in lines[1:]:
        row = dict(zip(keys, l.split(',')))
        row.pop('seconds', None)
        rows.append(row)
    return rows


def compare_runs(tally, what, dir_a, dir_b, files=('last.safetensors', 'best.safetensors'), ignore_meta=()):
    """Checks that two output directories hold the same training result (metadata keys in
    ignore_meta may differ)."""
    ra, rb = csv_rows(os.path.join(dir_a, 'metrics.csv')), csv_rows(os.path.join(dir_b, 'metrics.csv'))
    diff = ''
    if len(ra) != len(rb):
        diff = 'epochs %s vs %s' % ([r.get('epoch') for r in ra], [r.get('epoch') for r in rb])
    else:
        for x, y in zip(ra, rb):
            cols = [k for k in x if x[k] != y.get(k)]
            if cols:
                diff = 'epoch %s differs in %s (%s vs %s)' % (
                    x.get('epoch'), ','.join(cols), ','.join(x[k] for k in cols), ','.join(y.get(k, '') for k in cols))
                break
    tally.check(not diff and ra, what + ': metrics.csv rows identical (all columns but seconds)', diff or 'empty')
    for name in files:
        pa, pb = os.path.join(dir_a, name), os.path.join(dir_b, name)
        if not (os.path.exists(pa) and os.path.exists(pb)):
            tally.check(False, what + ': both have ' + name)
            continue
        ma, da, _ = st_scan(pa)
        mb, db, _ = st_scan(pb)
        bad = sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k))
        tally.check(not bad, what + ': %s tensors byte-identical (%d tensors)' % (name, len(da)),
                    '%d differ, e.g. %s' % (len(bad), bad[:3]))
        mbad = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k) and k not in ignore_meta)
        tally.check(not mbad, what + ': %s metadata identical' % name,
                    '; '.join('%s: %r vs %r' % (k, ma.get(k), mb.get(k)) for k in mbad))


def epochs_in_csv(path):
    return [int(r['epoch']) for r in csv_rows(path)]


def synth_image(clunet, d):
    """A 64x64 synthetic retina to run predict on; returns its path."""
    r = run([clunet, 'synth', '--out', d, '--n', '1', '--size', '64'], 60)
    if r.rc != 0:
        raise SystemExit('clunet synth failed: ' + describe(r))
    return os.path.join(d, '0000.png')


def predicts(clunet, weights, image, out, timeout=120):
    """The run of `clunet predict` with weights on image."""
    return run([clunet, 'predict', '--weights', weights, '--out', out, image], timeout)
