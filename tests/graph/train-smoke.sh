#!/bin/sh
# clunet train on synthetic retinas lowers the training loss every epoch, and
# writes what a run promises: metrics.csv, curves, last and best checkpoints;
# with --val 0, empty validation columns.
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
# --val 0: every image trains; the validation columns (7-17) stay empty and no best checkpoint is claimed
if "$clunet" train --synthetic 4 --val 0 --size 64 --batch 2 --steps 1 --epochs 1 --out "$dir/noval" > "$dir/log" 2>&1 &&
    grep -q 'no validation images' "$dir/log" && [ ! -e "$dir/noval/best.safetensors" ] &&
    awk -F, 'NR == 2 { for (i = 7; i <= 17; i++) if ($i != "") bad = 1; ok = !bad && NF == 19 } END { exit !ok }' \
        "$dir/noval/metrics.csv"; then
  pass=$((pass + 1))
else
  fail=$((fail + 1))
  echo "FAIL: --val 0:"
  tail -n 3 "$dir/log"
  cat "$dir/noval/metrics.csv"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
