#!/bin/sh
# tools/fetch-datasets against local archives (file:// URLs, as curl reads them):
# a mirror with the wrong bytes is skipped, the checksum is verified, zip and
# tar archives unpack where clunet expects them, a second run downloads
# nothing, and a dataset without archives (DRIVE) prints its steps and fails.
#   usage: test-fetch.sh FETCH_DATASETS PYTHON
fetch=$1 python=$2
command -v curl >/dev/null || { echo "SKIP: curl is not installed"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pass=0 fail=0
ok() { if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $*"; fi; }

mkdir -p "$dir/src/z/images" "$dir/src/t"
echo image > "$dir/src/z/images/a.jpg"
echo label > "$dir/src/t/a.ah.ppm"
(cd "$dir/src/z" && "$python" -c 'import zipfile; z = zipfile.ZipFile("../good.zip", "w"); z.write("images/a.jpg"); z.close()')
(cd "$dir/src/t" && tar cf ../labels.tar a.ah.ppm)
echo "not the archive" > "$dir/src/bad.zip"
zsum=$(sha256sum "$dir/src/good.zip" | cut -d' ' -f1)
cat > "$dir/datasets.txt" <<EOT
dataset TOY
  url https://example.invalid/toy
  archive toy.zip file://$dir/src/bad.zip sha256=$zsum
  archive toy.zip file://$dir/src/good.zip
  archive labels.tar file://$dir/src/labels.tar
  license test data
dataset NOARCHIVE
  url https://example.invalid/register
  license registration needed
  note a note
EOT
ok "$fetch" TOY "$dir/out" --datasets "$dir/datasets.txt"
ok test "$(cat "$dir/out/images/a.jpg")" = image
ok test "$(cat "$dir/out/labels/a.ah.ppm")" = label
ok test ! -e "$dir/out/toy.zip.part"
out=$("$fetch" TOY "$dir/out" --datasets "$dir/datasets.txt")
ok test $? -eq 0
echo "$out" | grep -q "have $dir/out/toy.zip" || { fail=$((fail + 1)); echo "FAIL: second run downloaded again"; }
out=$("$fetch" NOARCHIVE "$dir/n" --datasets "$dir/datasets.txt" 2>&1)
ok test $? -ne 0
echo "$out" | grep -q "https://example.invalid/register" || { fail=$((fail + 1)); echo "FAIL: no steps printed"; }
"$fetch" NOSUCH "$dir/n" --datasets "$dir/datasets.txt" 2>/dev/null
ok test $? -ne 0
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
