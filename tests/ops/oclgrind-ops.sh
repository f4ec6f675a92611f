#!/bin/sh
# Runs test-ops --small under Oclgrind, a second OpenCL implementation that
# checks every memory access and looks for data races. Fails if the tests fail
# or Oclgrind reports anything.
#   usage: oclgrind-ops.sh OCLGRIND TEST_OPS [test-ops options...]
oclgrind=$1 test_ops=$2
shift 2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$oclgrind" --check-api --data-races --log "$log" "$test_ops" --small --device oclgrind "$@"
status=$?
if [ -s "$log" ]; then
    echo "Oclgrind reported errors:"
    head -n 60 "$log"
    exit 1
fi
echo "Oclgrind: no errors reported"
exit $status
