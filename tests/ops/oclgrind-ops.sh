#!/bin/sh
# Runs test-ops --small under Oclgrind, a second OpenCL implementation that
# checks every memory access and looks for data races. Fails if the tests fail
# or Oclgrind reports anything.
#   usage: oclgrind-ops.sh OCLGRIND TEST_OPS [test-ops options...]
# $OCLGRIND_LOCAL_MEM, if set, is the simulated device's local memory in bytes.
oclgrind=$1 test_ops=$2
shift 2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$oclgrind" --check-api --data-races ${OCLGRIND_LOCAL_MEM:+--local-mem-size "$OCLGRIND_LOCAL_MEM"} --log "$log" \
    "$test_ops" --small --device oclgrind "$@"
status=$?
if [ -s "$log" ]; then
    echo "Oclgrind reported errors:"
    head -n 60 "$log"
    exit 1
fi
echo "Oclgrind: no errors reported"
exit $status
