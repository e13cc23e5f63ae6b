#!/usr/bin/env bash
# loadgen against the fake apiserver: stub on CPU 0, loadgen on CPU 1.
set -euo pipefail
T=${CARGO_TARGET_DIR:-target}/release
OUT=$(dirname "$0")
D=$(mktemp -d)
taskset -c 0 $T/fake-apiserver --kubeconfig $D/kubeconfig > $D/url &
STUB=$!
sleep 1
echo "stub: $(cat $D/url) pid $STUB"
echo "load before: $(cat /proc/loadavg)"
/usr/bin/time -f "loadgen: %U s user, %S s sys, %e s wall, max RSS %M KB" \
  nice taskset -c 1 $T/loadgen --kubeconfig $D/kubeconfig --dry-run "$@" -o json > $D/report.json
echo "load after: $(cat /proc/loadavg)"
echo "stub CPU (utime stime ticks): $(awk '{print $14, $15}' /proc/$STUB/stat)"
curl -s $(cat $D/url)/fake/stats; echo
kill $STUB
python3 -c "
import json,sys; r=json.load(open('$D/report.json'))
print('nodes/s', r['nodeCreateRatePerSecond'], 'pods/s', r['podCreateRatePerSecond'], 'counts', r['counts'], 'errors', r['errors'], 'duration', r['durationSeconds'])"
cp $D/report.json $OUT/report-${TAG:-run}.json
