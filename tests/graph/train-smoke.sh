#!/bin/sh
# clunet train on synthetic retinas lowers the training loss every epoch, and
# writes what a run promises: metrics.csv, curves, last and best checkpoints.
#   usage: train-smoke.sh CLUNET
clunet=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$clunet" train --synthetic 8 --size 64 --batch 4 --epochs 4 --lr 1e-3 --out "$dir/run" > "$dir/log" 2>&1 || {
  tail -n 5 "$dir/log"
  echo "0 passed, 1 failed"
  exit 1
}
pass=0 fail=0
for f in metrics.csv last.safetensors best.safetensors curve_loss.png curve_f1.png; do
  if [ -s "$dir/run/$f" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: no $f"; fi
done
# column 2 is the epoch's mean training loss
if awk -F, 'NR > 2 && $2 >= prev { bad = 1 } NR > 1 { prev = $2; n++ } END { exit (n == 4 && !bad) ? 0 : 1 }' \
    "$dir/run/metrics.csv"; then
  pass=$((pass + 1))
else
  fail=$((fail + 1))
  echo "FAIL: the training loss did not fall every epoch:"
  cut -d, -f1,2 "$dir/run/metrics.csv"
fi
cut -d, -f1,2,9 "$dir/run/metrics.csv"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
