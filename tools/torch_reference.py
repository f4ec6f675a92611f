#!/usr/bin/python3
"""PyTorch twin of clunet's network: the reference the C engine is checked against.

The twin is the seed project's segmentation_models Unet('efficientnetb0'): a torchvision
EfficientNet-B0 encoder (stochastic depth off), five decoder blocks (nearest 2x upsample,
concat skip, 2 x [conv3x3 no bias, BN, ReLU]) and a conv3x3 head with one logit channel.
With input_skip 1 (clunet train --input-skip on; "input_skip": 1 in a checkpoint's config) the
last decoder block also concatenates the network input, as the others concatenate encoder features;
with input_skip 2 (--input-skip conv) it concatenates the input passed through two 3x3
conv-BN-SiLU layers of 16 channels at full resolution (tensors fullres.{0,1}.{0,1}.*).
It is not a training program: it writes weights, runs one step on a given batch, and
compares tensors.

Tensor names (float32, num_batches_tracked excluded):
  encoder.<torchvision efficientnet_b0().features state_dict name>   e.g. encoder.0.0.weight
  decoder.{i}.conv1.weight  decoder.{i}.bn1.{weight,bias,running_mean,running_var}  (same for 2)
  head.weight  head.bias
Decoder i concatenates [upsampled, skip] in that channel order (skips: 672, 240, 144, 96 ch, then
the 3-channel input or the 16 full-resolution features with input_skip).

Files are safetensors, read and written here without the safetensors package.

Subcommands (each has --help):
  count                           parameter count (must be 10,071,501) and per-tensor list
  export --out W [--seed K]       randomly initialised weights + metadata (config, input_mean/std)
  make-batch --out B ...          a random batch file: x (N,3,S,S), y (N,1,S,S) in {0,1}[, mask]
  check --weights W --batch B     forward (--mode train|eval), loss, backward; --write R stores the
        [--write R] [--compare C]   results; --compare C checks a file the C engine wrote (table,
                                    exit 1 when any tensor differs by relative error >= --rtol)
  predict --weights CKPT --image I  probabilities for an image by clunet's preprocessing (normalise
        [--compare NPY]             with the metadata's input_mean/std, pad bottom/right to a multiple of
                                    32 with black, eval-mode BN); --compare checks clunet predict --npy
  compare A B                     compares two result files (A is checked against reference B)
  recode IN OUT                   reads IN and writes it again (interop test of reader + writer)
  bench                           times a training step and inference, CPU, JSON output
  selftest                        count, safetensors round trip, loss gradcheck; exit 77 without torch

Result file tensors written by check:
  logits, prob (N,1,S,S); loss, loss_focal, loss_dice (shape [1]);
  grad.<param> for every trainable parameter;
  in train mode also running.<name> = BN running_mean/running_var after the step's update;
  with --adam-lr LR also param.<name> = parameters after one Adam step (betas 0.9/0.999, eps 1e-8).
Relative error of a tensor = max|a - b| / max(max|b|, 1e-6), b the reference.

Conventions the C engine must share: zero padding (k-1)/2 on every conv (torchvision's),
BN eps from the weights' config (default 1e-5) on every BN, momentum 0.1, running_var updated
with the unbiased batch variance; focal mean divides by max(sum(mask), 1); dice sums run over
the whole batch; x is fed as is (input_mean/std in the metadata are for the data pipeline).
"""
import argparse
import json
import os
import struct
import sys
import tempfile
import time

PARAM_COUNT = 10_071_501
DECODER_CHANNELS = (256, 128, 64, 32, 16)
SKIP_CHANNELS = (672, 240, 144, 96)  # deepest first
# Encoder stages whose FIRST block's expand activation is a skip (features index), shallow first.
SKIP_STAGES = (2, 3, 4, 6)
# ImageNet's normalisation on the 0-255 scale, as clunet's metadata states it.
INPUT_MEAN = (123.675, 116.28, 103.53)
INPUT_STD = (58.395, 57.12, 57.375)
FORMAT_VERSION = 1
MAX_HEADER = 100 * 1024 * 1024

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
    HAVE_TORCH = True
except ImportError as e:  # selftest skips (exit 77) so CI without torch stays green
    HAVE_TORCH = False
    TORCH_ERROR = str(e)


class Fail(Exception):
    """A user-facing error: printed as one line, exit status 1."""


# ----------------------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------------------

def st_write(path, tensors, metadata=None):
    """Writes {name: float tensor} (in dict order) plus {str: str} metadata, atomically."""
    if sys.byteorder != "little":
        raise Fail("safetensors writer assumes a little-endian host")
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        if name == "__metadata__":
            raise Fail(f"{path}: tensor name __metadata__ is reserved")
        data = t.detach().to(torch.float32).contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the reference writer pads the header to 8 bytes
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def st_read(path):
    """Returns ({name: float32 tensor}, {str: str} metadata); strict like the C reader."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise Fail(f"{path}: file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n < 2 or n > MAX_HEADER or 8 + n > len(blob):
        raise Fail(f"{path}: header length {n} does not fit a file of {len(blob)} bytes")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"),
                            object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as e:
        raise Fail(f"{path}: header is not valid JSON: {e}")
    if not isinstance(header, dict):
        raise Fail(f"{path}: header is not a JSON object")
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise Fail(f"{path}: __metadata__ must map strings to strings")
    spans = []
    tensors = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise Fail(f"{path}: tensor {name}: needs exactly dtype, shape and data_offsets")
        if info["dtype"] != "F32":
            raise Fail(f"{path}: tensor {name}: dtype {info['dtype']} not supported (F32 only)")
        shape, offs = info["shape"], info["data_offsets"]
        if not _int_list(shape) or not _int_list(offs) or len(offs) != 2:
            raise Fail(f"{path}: tensor {name}: bad shape or data_offsets")
        begin, end = offs
        count = 1
        for d in shape:
            count *= d
        if begin > end or end > len(data) or end - begin != 4 * count:
            raise Fail(f"{path}: tensor {name}: data_offsets {offs} do not match shape {shape}")
        spans.append((begin, end, name))
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32) if count else \
            torch.zeros(0, dtype=torch.float32)
        tensors[name] = t.reshape(shape)
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            raise Fail(f"{path}: tensor {name}: data overlaps another tensor or leaves a gap")
        pos = end
    if pos != len(data):
        raise Fail(f"{path}: {len(data) - pos} bytes after the last tensor")
    return tensors, metadata


def _no_duplicate_keys(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


def _int_list(v):
    return isinstance(v, list) and all(type(x) is int and x >= 0 for x in v)


# ----------------------------------------------------------------------------------------
# The twin
# ----------------------------------------------------------------------------------------

class DecoderBlock(nn.Module if HAVE_TORCH else object):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x, skip):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class Twin(nn.Module if HAVE_TORCH else object):
    """Unet(efficientnetb0); forward returns logits (N,1,H,W) for H, W multiples of 32."""

    def __init__(self, bn_eps=1e-5, input_skip=0):
        super().__init__()
        self.bn_eps = bn_eps
        self.input_skip = input_skip
        self.encoder = torchvision.models.efficientnet_b0(stochastic_depth_prob=0.0).features
        blocks = []
        cin = 1280
        if input_skip == 2:
            self.fullres = nn.Sequential(
                torchvision.ops.Conv2dNormActivation(3, 16, 3, activation_layer=nn.SiLU),
                torchvision.ops.Conv2dNormActivation(16, 16, 3, activation_layer=nn.SiLU))
        last_skip = {0: 0, 1: 3, 2: 16}[input_skip]
        for cout, skip in zip(DECODER_CHANNELS, SKIP_CHANNELS + (last_skip,)):
            blocks.append(DecoderBlock(cin + skip, cout))
            cin = cout
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Conv2d(DECODER_CHANNELS[-1], 1, 3, padding=1, bias=True)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = bn_eps
                m.momentum = 0.1

    def encode(self, x):
        """Returns the bottleneck (N,1280,H/32,W/32) and the skips, shallowest first."""
        # x is (N,3,H,W)
        skips = []
        for i, stage in enumerate(self.encoder):
            if i in SKIP_STAGES:
                first = stage[0]
                assert not first.use_res_connect
                h = first.block[0](x)  # expand conv + BN + SiLU
                skips.append(h)
                x = first.block[1:](h)
                x = stage[1:](x)
            else:
                x = stage(x)
        return x, skips

    def forward(self, x):
        # x is (N,3,H,W)
        image = x
        x, skips = self.encode(x)
        skips.reverse()
        if self.input_skip == 1:
            skips.append(image)
        elif self.input_skip == 2:
            skips.append(self.fullres(image))
        for i, block in enumerate(self.decoder):
            x = block(x, skips[i] if i < len(skips) else None)
        return self.head(x)


def new_twin(bn_eps=1e-5, seed=0, random_bn=False, input_skip=0):
    torch.manual_seed(seed)
    model = Twin(bn_eps, input_skip)
    if random_bn:  # non-trivial BN affine and running statistics, so eval mode tests something
        g = torch.Generator().manual_seed(seed + 1)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                with torch.no_grad():
                    m.weight.copy_(1 + 0.2 * torch.randn(c, generator=g))
                    m.bias.copy_(0.1 * torch.randn(c, generator=g))
                    m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                    m.running_var.copy_(1 + 0.5 * torch.rand(c, generator=g))
    return model


def twin_tensors(model):
    """All saved tensors, num_batches_tracked excluded, in state_dict order."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def twin_metadata(model):
    config = {"format_version": FORMAT_VERSION, "arch": "unet-efficientnet_b0",
              "in_channels": 3, "classes": 1, "decoder_channels": list(DECODER_CHANNELS),
              "bn_eps": model.bn_eps, "bn_momentum": 0.1, "input_skip": model.input_skip}
    return {"config": json.dumps(config), "input_mean": json.dumps(list(INPUT_MEAN)),
            "input_std": json.dumps(list(INPUT_STD))}


def load_twin(path, bn_eps=None):
    tensors, meta = st_read(path)
    # A clunet training checkpoint also holds Adam's moments (and, with --ema, the weights Adam steps
    # as train.NAME, the average being NAME): not part of the network.
    tensors = {k: v for k, v in tensors.items() if not k.startswith(("adam.", "train."))}
    try:
        config = json.loads(meta["config"])
    except (KeyError, ValueError, TypeError):
        config = {}
    if not isinstance(config, dict):
        config = {}
    if bn_eps is None:
        try:
            bn_eps = float(config["bn_eps"])
        except (KeyError, ValueError, TypeError):
            raise Fail(f"{path}: metadata has no config.bn_eps (pass --bn-eps)")
    input_skip = config.get("input_skip", 0)
    if input_skip not in (0, 1, 2):
        raise Fail(f"{path}: config input_skip {input_skip!r} is not 0, 1 or 2")
    model = Twin(bn_eps, input_skip)
    want = twin_tensors(model)
    missing = sorted(set(want) - set(tensors))
    extra = sorted(set(tensors) - set(want))
    if missing or extra:
        raise Fail(f"{path}: missing tensors {missing[:8]}{'...' if len(missing) > 8 else ''}; "
                   f"unexpected tensors {extra[:8]}{'...' if len(extra) > 8 else ''}")
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(want[name].shape):
            raise Fail(f"{path}: tensor {name} has shape {list(t.shape)}, "
                       f"expected {list(want[name].shape)}")
    model.load_state_dict(tensors, strict=False)
    return model


# ----------------------------------------------------------------------------------------
# Loss
# ----------------------------------------------------------------------------------------

def focal_dice_loss(z, y, mask=None, alpha=0.25, gamma=2.0, eps=1e-7, smooth=1e-5, lam=None):
    """Returns (total, focal, dice) for logits z; sums run over the whole batch.

    focal = masked mean of -a (1-p)^g y log(p+eps) - (1-a) p^g (1-y) log(1-p+eps)
    dice  = 1 - (2 sum(p y) + s) / (sum p + sum y + s), p and y zeroed outside the mask
    total = focal + dice, or lam*focal + (1-lam)*dice when lam is given.
    """
    p = torch.sigmoid(z)
    m = torch.ones_like(p) if mask is None else mask
    fl = -alpha * (1 - p) ** gamma * y * torch.log(p + eps) \
        - (1 - alpha) * p ** gamma * (1 - y) * torch.log(1 - p + eps)
    focal = (fl * m).sum() / m.sum().clamp_min(1)
    pm, ym = p * m, y * m
    dice = 1 - (2 * (pm * ym).sum() + smooth) / (pm.sum() + ym.sum() + smooth)
    total = focal + dice if lam is None else lam * focal + (1 - lam) * dice
    return total, focal, dice


# ----------------------------------------------------------------------------------------
# Subcommands
# ----------------------------------------------------------------------------------------

def cmd_count(args):
    model = Twin()
    total = 0
    for name, p in model.named_parameters():
        print(f"{name:50s} {str(list(p.shape)):20s} {p.numel():>10,d}")
        total += p.numel()
    buffers = sum(v.numel() for k, v in twin_tensors(model).items()) - total
    print(f"trainable parameters: {total:,d} (expected {PARAM_COUNT:,d}); "
          f"BN running statistics: {buffers:,d}; tensors in a file: {len(twin_tensors(model))}")
    return 0 if total == PARAM_COUNT else 1


def cmd_export(args):
    model = new_twin(args.bn_eps, args.seed, args.random_bn, args.input_skip)
    st_write(args.out, twin_tensors(model), twin_metadata(model))
    print(f"wrote {args.out}: {len(twin_tensors(model))} tensors, seed {args.seed}")
    return 0


def cmd_make_batch(args):
    g = torch.Generator().manual_seed(args.seed)
    n, s = args.batch, args.size
    if s % 32:
        raise Fail(f"--size {s}: must be a multiple of 32")
    out = {"x": torch.randn(n, 3, s, s, generator=g),
           "y": (torch.rand(n, 1, s, s, generator=g) < 0.15).float()}
    if args.mask:
        out["mask"] = (torch.rand(n, 1, s, s, generator=g) < 0.8).float()
    st_write(args.out, out, {"seed": str(args.seed)})
    print(f"wrote {args.out}: " + ", ".join(f"{k} {list(v.shape)}" for k, v in out.items()))
    return 0


def run_step(model, batch, args):
    """One forward/loss/backward (and optional Adam step); returns the result tensors."""
    x, y = batch.get("x"), batch.get("y")
    if x is None or y is None:
        raise Fail("batch file needs tensors x (N,3,H,W) and y (N,1,H,W)")
    mask = batch.get("mask")
    model.train(args.mode == "train")
    z = model(x)
    total, focal, dice = focal_dice_loss(z, y, mask, eps=args.eps, smooth=args.smooth,
                                         lam=args.lam)
    model.zero_grad()
    total.backward()
    out = {"logits": z.detach(), "prob": torch.sigmoid(z.detach()),
           "loss": total.detach().reshape(1), "loss_focal": focal.detach().reshape(1),
           "loss_dice": dice.detach().reshape(1)}
    for name, p in model.named_parameters():
        out["grad." + name] = p.grad.detach().clone()
    if args.mode == "train":
        for name, t in twin_tensors(model).items():
            if name.endswith("running_mean") or name.endswith("running_var"):
                out["running." + name] = t.clone()
    if args.adam_lr is not None:
        torch.optim.Adam(model.parameters(), lr=args.adam_lr, betas=(0.9, 0.999),
                         eps=1e-8).step()
        for name, p in model.named_parameters():
            out["param." + name] = p.detach().clone()
    return out


def compare(got, ref, rtol, got_name, ref_name, partial=False):
    """Prints a table; returns True when every tensor matches.

    With partial, tensors of ref that got lacks are skipped (got must share at least one)."""
    ok = True
    missing = sorted(set(ref) - set(got))
    extra = sorted(set(got) - set(ref))
    if partial and len(missing) < len(ref):
        print(f"partial: skipping {len(missing)} reference tensors that {got_name} lacks")
        ref = {k: v for k, v in ref.items() if k in got}
    elif missing:
        print(f"{got_name} lacks {len(missing)} tensors: {', '.join(missing[:10])}")
        ok = False
    if extra:
        print(f"{got_name} has {len(extra)} tensors not in {ref_name}: {', '.join(extra[:10])}")
        ok = False
    print(f"{'tensor':60s} {'max|ref|':>11s} {'max|diff|':>11s} {'rel':>9s}")
    worst = 0.0
    for name in ref:
        if name not in got:
            continue
        a, b = got[name].double(), ref[name].double()
        if a.shape != b.shape:
            print(f"{name:60s} shape {list(a.shape)} vs reference {list(b.shape)}  FAIL")
            ok = False
            continue
        if not torch.isfinite(a).all():
            print(f"{name:60s} non-finite values  FAIL")
            ok = False
            continue
        scale = b.abs().max().item() if b.numel() else 0.0
        diff = (a - b).abs().max().item() if b.numel() else 0.0
        rel = diff / max(scale, 1e-6)
        worst = max(worst, rel)
        bad = not rel < rtol
        ok = ok and not bad
        print(f"{name:60s} {scale:11.4e} {diff:11.4e} {rel:9.2e}{'  FAIL' if bad else ''}")
    print(f"{'OK' if ok else 'FAILED'}: {len(ref)} reference tensors, worst relative error "
          f"{worst:.2e} (limit {rtol:g})")
    return ok


def cmd_check(args):
    torch.set_num_threads(args.threads)
    model = load_twin(args.weights, args.bn_eps)
    batch, _ = st_read(args.batch)
    if args.double:
        model = model.double()
        batch = {k: v.double() for k, v in batch.items()}
    print(f"loss eps {args.eps:g}, dice smooth {args.smooth:g}, lambda "
          f"{'none (focal + dice)' if args.lam is None else args.lam}, bn_eps {model.bn_eps:g}, "
          f"mode {args.mode}, {'float64' if args.double else 'float32'}")
    ref = run_step(model, batch, args)
    print(f"loss {ref['loss'].item():.7g} (focal {ref['loss_focal'].item():.7g}, "
          f"dice {ref['loss_dice'].item():.7g})")
    if args.write:
        meta = {"mode": args.mode, "eps": repr(args.eps), "smooth": repr(args.smooth),
                "lambda": "" if args.lam is None else repr(args.lam),
                "bn_eps": repr(model.bn_eps)}
        st_write(args.write, ref, meta)
        print(f"wrote {args.write}: {len(ref)} tensors")
    if args.compare:
        got, _ = st_read(args.compare)
        if not compare(got, ref, args.rtol, args.compare, "the reference", args.partial):
            return 1
    return 0


def cmd_predict(args):
    """Probabilities for one image by clunet's preprocessing contract, compared with clunet's .npy."""
    import numpy as np
    from PIL import Image
    torch.set_num_threads(args.threads)
    model = load_twin(args.weights)
    _, meta = st_read(args.weights)
    if meta.get("preprocess", "rgb") != "rgb":
        raise Fail(f"{args.weights}: preprocessing {meta['preprocess']!r} is not implemented in the twin")
    mean = torch.tensor(json.loads(meta["input_mean"]), dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(json.loads(meta["input_std"]), dtype=torch.float32).view(1, 3, 1, 1)
    rgb = np.asarray(Image.open(args.image).convert("RGB"), dtype=np.float32)
    h, w = rgb.shape[:2]
    image = torch.from_numpy(rgb).permute(2, 0, 1)

    tile = json.loads(meta.get("config", "{}")).get("size", 0)

    def probabilities(img):
        # Padding is black pixels (what surrounds a fundus photograph), normalised like the rest; clunet pads an
        # image smaller than its tile (the training size) to the tile (larger ones it tiles: not done here).
        vh, vw = img.shape[-2:]
        x = torch.zeros(1, 3, max(-(-vh // 32) * 32, tile), max(-(-vw // 32) * 32, tile))
        x[0, :, :vh, :vw] = img
        return torch.sigmoid(model((x - mean) / std))[0, 0, :vh, :vw]

    def view(t, how):  # clunet's view `how`: bit 2 transposes, then bit 0 mirrors left-right, bit 1 top-bottom
        t = t.transpose(-1, -2) if how & 4 else t
        dims = [d for bit, d in ((1, -1), (2, -2)) if how & bit]
        return t.flip(dims) if dims else t

    def unview(t, how):
        dims = [d for bit, d in ((1, -1), (2, -2)) if how & bit]
        t = t.flip(dims) if dims else t
        return t.transpose(-1, -2) if how & 4 else t

    def resized(t, size):  # bilinear, pixel centres aligned, clamped at the edges (clunet's resize)
        return F.interpolate(t[None], size=size, mode="bilinear", align_corners=False)[0]

    def at_scale(scale):  # the image resized (to whole 8-bit levels, as clunet keeps it), its views, resized back
        img = image if scale == 1 else resized(image, (round(h * scale), round(w * scale))).round().clamp(0, 255)
        prob = sum(unview(probabilities(view(img, how)), how) for how in range(args.views)) / args.views
        return prob if scale == 1 else resized(prob[None], (h, w))[0]

    model.eval()
    with torch.no_grad():  # each view padded after it is made, its probabilities mapped back
        prob = sum(at_scale(scale) for scale in args.scales) / len(args.scales)
    views = f"{args.views} test-time views, " if args.views > 1 else ""
    views += f"scales {args.scales}, " if args.scales != [1.0] else ""
    print(f"{args.image}: {w}x{h}, {views}probabilities {prob.min().item():.4f}..{prob.max().item():.4f}")
    if args.compare:
        got = torch.from_numpy(np.load(args.compare))
        if tuple(got.shape) != (h, w):
            raise Fail(f"{args.compare}: shape {list(got.shape)}, expected {[h, w]}")
        diff = (got.double() - prob.double()).abs().max().item()
        print(f"max |clunet - twin| = {diff:.3g} (limit {args.atol:g})")
        if not diff < args.atol:
            return 1
    return 0


def cmd_compare(args):
    got, _ = st_read(args.got)
    ref, _ = st_read(args.ref)
    return 0 if compare(got, ref, args.rtol, args.got, args.ref, args.partial) else 1


def cmd_recode(args):
    tensors, meta = st_read(args.src)
    st_write(args.dst, tensors, meta)
    print(f"recoded {args.src} -> {args.dst}: {len(tensors)} tensors, {len(meta)} metadata keys")
    return 0


def _median_ms(fn, warmup, repeats, sync=lambda: None):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()  # GPU work is asynchronous: time it to its end
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        # clunet computes in plain float32: compare with the same unless --tf32 is asked for
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.benchmark = True
    g = torch.Generator().manual_seed(0)
    n, s = args.batch, args.size
    x0 = torch.randn(n, 3, s, s, generator=g).to(dev)
    y = (torch.rand(n, 1, s, s, generator=g) < 0.15).float().to(dev)
    results = []
    for layout in args.layouts.split(","):
        fmt = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}.get(layout)
        if fmt is None:
            raise Fail(f"--layouts: unknown layout {layout!r}")
        model = new_twin().to(dev).to(memory_format=fmt)
        x = x0.contiguous(memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def train_step():
            model.train()
            opt.zero_grad(set_to_none=True)
            loss, _, _ = focal_dice_loss(model(x), y)
            loss.backward()
            opt.step()

        def infer():
            model.eval()
            with torch.no_grad():
                torch.sigmoid(model(x))

        train_ms = _median_ms(train_step, args.warmup, args.repeats, sync)
        infer_ms = _median_ms(infer, args.warmup, args.repeats, sync)
        results.append({"layout": layout, "train_step_ms": round(train_ms, 2),
                        "infer_ms": round(infer_ms, 2),
                        "train_images_per_s": round(n * 1e3 / train_ms, 3),
                        "infer_images_per_s": round(n * 1e3 / infer_ms, 3)})
    print(json.dumps({"torch": torch.__version__, "device": str(dev), "tf32": bool(args.tf32 and dev.type == "cuda"),
                      "threads": args.threads, "batch": n, "size": s,
                      "warmup": args.warmup, "repeats": args.repeats, "results": results},
                     indent=1))
    return 0


def cmd_selftest(args):
    torch.set_num_threads(2)
    failures = []

    def expect(cond, what):
        print(f"{'ok  ' if cond else 'FAIL'} {what}")
        if not cond:
            failures.append(what)

    t0 = time.perf_counter()
    model = new_twin(seed=3, random_bn=True)
    count = sum(p.numel() for p in model.parameters())
    expect(count == PARAM_COUNT, f"trainable parameters {count:,d} == {PARAM_COUNT:,d}")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    expect(len(bns) == 59 and all(m.eps == 1e-5 and m.momentum == 0.1 for m in bns),
           f"{len(bns)} BNs (59 expected), all eps 1e-5, momentum 0.1")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "w.safetensors")
        st_write(path, twin_tensors(model), twin_metadata(model))
        expect(os.path.getsize(path) > 4 * PARAM_COUNT, "exported file holds every parameter")
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
        expect(n % 8 == 0, "header padded to 8 bytes")
        back, meta = st_read(path)
        want = twin_tensors(model)
        expect(list(back) == list(want) and all(torch.equal(back[k], want[k]) for k in want),
               "safetensors round trip is bit-exact, order kept")
        expect(meta == twin_metadata(model), "metadata preserved")
        expect(json.loads(meta["config"])["bn_eps"] == 1e-5, "config records bn_eps")
        loaded = load_twin(path)
        expect(all(torch.equal(a, b) for a, b in
                   zip(twin_tensors(loaded).values(), want.values())), "load_twin restores all")
        with open(path, "r+b") as f:  # a lying length must be refused
            f.write(struct.pack("<Q", 1 << 40))
        try:
            st_read(path)
            expect(False, "lying header length rejected")
        except Fail:
            expect(True, "lying header length rejected")
        expect(compare({"a": torch.ones(3) * 1.002}, {"a": torch.ones(3)}, 1e-3, "x", "y")
               is False, "compare flags a 2e-3 relative error")
        expect(compare({"a": torch.ones(3)}, {"a": torch.ones(3), "b": torch.ones(1)}, 1e-3,
                       "x", "y") is False, "compare flags a missing tensor")
        expect(compare({"a": torch.ones(3)}, {"a": torch.ones(3), "b": torch.ones(1)}, 1e-3,
                       "x", "y", partial=True), "partial compare skips it")

    # Shapes through the network on a small input; the skip taps leave the encoder intact.
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        bottleneck, skips = model.encode(x)
        expect(torch.equal(bottleneck, model.encoder(x)), "encode() equals features(x)")
    want = [(96, 32), (144, 16), (240, 8), (672, 4)]
    expect([(t.shape[1], t.shape[2]) for t in skips] == want and
           tuple(bottleneck.shape) == (2, 1280, 2, 2), "skip and bottleneck shapes")
    model.train()
    z = model(x)
    expect(tuple(z.shape) == (2, 1, 64, 64), f"logits shape {tuple(z.shape)}")
    model.eval()
    with torch.no_grad():
        expect(torch.isfinite(model(x)).all().item(), "eval forward finite")

    # The loss gradient, in double, with and without mask and lambda.
    g = torch.Generator().manual_seed(5)
    zd = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    yd = (torch.rand(2, 1, 4, 4, generator=g) < 0.4).double()
    md = (torch.rand(2, 1, 4, 4, generator=g) < 0.7).double()
    for mask, lam in ((None, None), (md, None), (md, 0.3)):
        ok = torch.autograd.gradcheck(lambda t: focal_dice_loss(t, yd, mask, lam=lam)[0], (zd,),
                                      eps=1e-6, atol=1e-7, rtol=1e-5, raise_exception=False)
        expect(ok, f"loss gradcheck (mask {'yes' if mask is not None else 'no'}, lambda {lam})")
    # The loss itself against a direct evaluation of the formula.
    total, focal, dice = focal_dice_loss(zd.detach(), yd, md)
    p = torch.sigmoid(zd.detach())
    terms = [(-0.25 * (1 - pi) ** 2 * yi * torch.log(pi + 1e-7)
              - 0.75 * pi ** 2 * (1 - yi) * torch.log(1 - pi + 1e-7)).item()
             for pi, yi, mi in zip(p.flatten(), yd.flatten(), md.flatten()) if mi > 0]
    expect(abs(focal.item() - sum(terms) / len(terms)) < 1e-12, "focal term matches the formula")
    pm, ym = p * md, yd * md
    d = 1 - (2 * (pm * ym).sum().item() + 1e-5) / (pm.sum().item() + ym.sum().item() + 1e-5)
    expect(abs(dice.item() - d) < 1e-12 and abs(total.item() - focal.item() - d) < 1e-12,
           "dice term and total match the formula")

    print(f"selftest {'passed' if not failures else 'FAILED'} in {time.perf_counter() - t0:.1f} s")
    return 1 if failures else 0


def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("count", help="print the parameter count and per-tensor list")

    s = sub.add_parser("export", help="write randomly initialised weights")
    s.add_argument("--out", required=True, help="output .safetensors file")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--bn-eps", type=float, default=1e-5, help="BatchNorm epsilon (default 1e-5)")
    s.add_argument("--random-bn", action="store_true",
                   help="randomise BN weight/bias/running stats (default: 1, 0, 0, 1)")
    s.add_argument("--input-skip", type=int, choices=(0, 1, 2), default=0,
                   help="the last decoder block's extra input: 0 none, 1 the image, 2 full-resolution "
                        "conv features (clunet train --input-skip off|on|conv)")

    s = sub.add_parser("make-batch", help="write a random batch file (x, y[, mask])")
    s.add_argument("--out", required=True)
    s.add_argument("--batch", type=int, default=2, help="N (default 2)")
    s.add_argument("--size", type=int, default=64, help="S, a multiple of 32 (default 64)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--mask", action="store_true", help="also write a random mask")

    s = sub.add_parser("check", help="run one step and write and/or compare results")
    s.add_argument("--weights", required=True, help="clunet .safetensors weights")
    s.add_argument("--batch", required=True, help="batch file: x, y[, mask]")
    s.add_argument("--mode", choices=("train", "eval"), default="train",
                   help="BN batch statistics (train, default) or running statistics (eval)")
    s.add_argument("--write", help="write the reference results here")
    s.add_argument("--compare", help="compare this C-written results file with the reference")
    s.add_argument("--rtol", type=float, default=1e-3, help="relative error limit (default 1e-3)")
    s.add_argument("--partial", action="store_true",
                   help="compare only the tensors the C file has (e.g. forward only)")
    s.add_argument("--bn-eps", type=float, help="override the weights' config bn_eps")
    s.add_argument("--eps", type=float, default=1e-7, help="focal log epsilon (default 1e-7)")
    s.add_argument("--smooth", type=float, default=1e-5, help="dice smoothing s (default 1e-5)")
    s.add_argument("--lambda", dest="lam", type=float,
                   help="total = lambda*focal + (1-lambda)*dice (default: focal + dice)")
    s.add_argument("--adam-lr", type=float, help="also take one Adam step, write param.<name>")
    s.add_argument("--double", action="store_true",
                   help="run the twin in float64 (to check clunet's double-precision reference step)")
    s.add_argument("--threads", type=int, default=2)

    s = sub.add_parser("predict", help="probabilities for an image; compare with clunet predict --npy")
    s.add_argument("--weights", required=True, help="clunet checkpoint")
    s.add_argument("--image", required=True)
    s.add_argument("--compare", help="clunet's NAME_prob.npy for the same image")
    s.add_argument("--atol", type=float, default=1e-3, help="largest probability difference (default 1e-3)")
    s.add_argument("--views", type=int, choices=(1, 4, 8), default=1,
                   help="test-time views averaged, as clunet's --views (default 1)")
    s.add_argument("--scales", type=lambda v: [float(x) for x in v.split(",")], default=[1.0],
                   help="test-time scales averaged, as clunet's --scales (default 1)")
    s.add_argument("--threads", type=int, default=2)

    s = sub.add_parser("compare", help="compare two result files")
    s.add_argument("got")
    s.add_argument("ref")
    s.add_argument("--rtol", type=float, default=1e-3)
    s.add_argument("--partial", action="store_true", help="skip tensors that GOT lacks")

    s = sub.add_parser("recode", help="read a file and write it again (interop tests)")
    s.add_argument("src")
    s.add_argument("dst")

    s = sub.add_parser("bench", help="time a training step and inference (JSON)")
    s.add_argument("--batch", type=int, default=4)
    s.add_argument("--size", type=int, default=256)
    s.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    s.add_argument("--warmup", type=int, default=2)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--layouts", default="contiguous,channels_last",
                   help="comma list of contiguous, channels_last")
    s.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    s.add_argument("--tf32", action="store_true", help="on CUDA, allow TF32 convolutions and products")

    sub.add_parser("selftest", help="count, file round trip, loss gradcheck (exit 77: no torch)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not HAVE_TORCH:
        print(f"torch_reference.py: torch/torchvision not importable ({TORCH_ERROR})",
              file=sys.stderr)
        return 77 if args.command == "selftest" else 1
    torch.set_num_threads(getattr(args, "threads", 2))
    handlers = {"count": cmd_count, "export": cmd_export, "make-batch": cmd_make_batch,
                "check": cmd_check, "compare": cmd_compare, "predict": cmd_predict, "recode": cmd_recode,
                "bench": cmd_bench, "selftest": cmd_selftest}
    try:
        return handlers[args.command](args)
    except (Fail, OSError) as e:
        print(f"torch_reference.py: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
