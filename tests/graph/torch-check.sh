#!/bin/sh
# The PyTorch cross-check, with the twin in tools/torch_reference.py on the same
# weights and batch:
#  1. clunet's double-precision reference step against the twin in float64:
#     logits, loss, every parameter gradient and BN running statistic (the two
#     implementations are independent; this proves the same network and loss);
#  2. clunet on the OpenCL device against the twin in float32: probabilities,
#     logits and loss. The device's gradients are checked against the reference
#     step by test-graph instead: in float32, a ReLU input within rounding
#     distance of zero flips either way, and behind a BN such a flip moves a
#     weight gradient by up to 1% (measured: the reference step with every op's
#     output rounded to float reproduces the device's gradients to 1e-7 and
#     differs from float64 by up to 1%; the twin in float32 differs too).
#  3. a clunet checkpoint (of the --input-skip variants on and conv: 1 and 2 check
#     the seed's network) loads into the twin by name (no tensor missing), and
#     `clunet predict --npy` gives the twin's probabilities on the same image;
#  4. the same with test-time views on both sides (mean of 8 mirrored and transposed views),
#     also on an image that is not a multiple of 32 (padding after flipping);
#  5. and with test-time scales: the image also resized by 0.6, its probabilities resized
#     back (60x50 -> 36x30: source pixels per output pixel 5/3, so no bilinear value of
#     8-bit levels is a rounding tie that the two sides could break differently).
# Skips (77) where Debian's python3-torch is not installed.
#   usage: torch-check.sh PYTHON TORCH_REFERENCE TORCH_STEP CLUNET
python=$1 twin=$2 step=$3 clunet=$4
"$python" -c 'import torch, torchvision' 2>/dev/null || { echo "SKIP: python3-torch/torchvision not installed"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
set -e
"$python" "$twin" export --out "$dir/w.safetensors" --seed 3 --random-bn
"$python" "$twin" make-batch --out "$dir/b.safetensors" --batch 2 --size 64 --seed 4 --mask
echo "== 1. reference step (double) vs the twin in float64"
"$step" --reference "$dir/w.safetensors" "$dir/b.safetensors" "$dir/ref.safetensors"
"$python" "$twin" check --weights "$dir/w.safetensors" --batch "$dir/b.safetensors" --mode train --double \
    --compare "$dir/ref.safetensors" --rtol 1e-5
echo "== 1b. the same for --input-skip conv (its full-resolution layers)"
"$python" "$twin" export --out "$dir/wc.safetensors" --seed 3 --random-bn --input-skip 2
"$step" --reference "$dir/wc.safetensors" "$dir/b.safetensors" "$dir/refc.safetensors"
"$python" "$twin" check --weights "$dir/wc.safetensors" --batch "$dir/b.safetensors" --mode train --double \
    --compare "$dir/refc.safetensors" --rtol 1e-5
echo "== 2. OpenCL device vs the twin in float32: forward and loss"
"$step" "$dir/w.safetensors" "$dir/b.safetensors" "$dir/dev.safetensors"
"$python" "$twin" check --weights "$dir/w.safetensors" --batch "$dir/b.safetensors" --mode train \
    --compare "$dir/dev.safetensors" --rtol 1e-3 > "$dir/table.txt" || true
# table rows: NAME max|ref| max|diff| rel [FAIL]
rows='^(logits|prob|loss|loss_focal|loss_dice) +[0-9.]+e[-+][0-9]+ '
grep -E "$rows" "$dir/table.txt"
grep -E "$rows" "$dir/table.txt" | awk '{ if ($NF == "FAIL") bad = 1; n++ } END { exit (n == 5 && !bad) ? 0 : 1 }'

echo "forward and loss agree within 1e-3"

echo "== 3. a clunet checkpoint in the twin: clunet predict --npy vs the twin's probabilities"
"$clunet" train --synthetic 4 --size 64 --batch 2 --epochs 1 --steps 2 --lr 1e-3 --preprocess rgb --input-skip on \
    --out "$dir/run" > /dev/null
"$clunet" synth --out "$dir/img" --n 1 --size 64 --seed 5 > /dev/null
"$clunet" predict --weights "$dir/run/last.safetensors" --out "$dir/pred" --npy --views 1 "$dir/img/0000.png"
"$python" "$twin" predict --weights "$dir/run/last.safetensors" --image "$dir/img/0000.png" \
    --compare "$dir/pred/0000_prob.npy" --atol 1e-3
"$clunet" train --synthetic 4 --size 64 --batch 2 --epochs 1 --steps 2 --lr 1e-3 --preprocess rgb --input-skip conv \
    --out "$dir/run-conv" > /dev/null
"$clunet" predict --weights "$dir/run-conv/last.safetensors" --out "$dir/pred-conv" --npy --views 1 "$dir/img/0000.png"
"$python" "$twin" predict --weights "$dir/run-conv/last.safetensors" --image "$dir/img/0000.png" \
    --compare "$dir/pred-conv/0000_prob.npy" --atol 1e-3
echo "== 4. the same with 8 test-time views (clunet's default) on both sides, also on a 60x50 crop (padded)"
"$python" -c 'import sys; from PIL import Image; Image.open(sys.argv[1]).crop((0, 0, 60, 50)).save(sys.argv[2])' \
    "$dir/img/0000.png" "$dir/img/crop.png"
for name in 0000 crop; do
    "$clunet" predict --weights "$dir/run/last.safetensors" --out "$dir/pred-flips" --npy "$dir/img/$name.png"
    "$python" "$twin" predict --weights "$dir/run/last.safetensors" --image "$dir/img/$name.png" --views 8 \
        --compare "$dir/pred-flips/${name}_prob.npy" --atol 1e-3
done
echo "== 5. the crop with 8 views at scales 1 and 0.6 (clunet --scales) on both sides"
"$clunet" predict --weights "$dir/run/last.safetensors" --out "$dir/pred-scales" --npy --scales 1,0.6 "$dir/img/crop.png"
"$python" "$twin" predict --weights "$dir/run/last.safetensors" --image "$dir/img/crop.png" --views 8 --scales 1,0.6 \
    --compare "$dir/pred-scales/crop_prob.npy" --atol 1e-3
