# usage: rss.sh LABEL KWOKBIN [ENV=VAL...]
L=$1; KW=$2; shift 2
B=/work/target-main/release
export KWOK_CACHE_DIR=$HOME/.kwok/cache KWOK_WORKDIR=/tmp/lp/work KUBECONFIG=/tmp/lp/kubeconfig
K="$B/kwokctl --name rss"
$K delete cluster >/dev/null 2>&1
env "$@" $K create cluster --disable-qps-limits --kwok-controller-binary $KW >/dev/null || exit 1
P=$(cat /tmp/lp/work/clusters/rss/pids/kwok-controller.pid)
tr '\0' '\n' < /proc/$P/environ | grep -E "MIMALLOC|MALLOC" | tr '\n' ' '
$B/loadgen --nodes 1000 --pods 10000 --keep --output json > /tmp/lp/rss-$L.json 2>/dev/null
s=$(grep -E "VmHWM|VmRSS" /proc/$P/status | tr -s ' \n' ' ')
c=$(awk '{print ($14+$15)/100}' /proc/$P/stat)
echo "$L: $s cpu=${c}s $(python3 -c "import json;d=json.load(open('/tmp/lp/rss-$L.json'));print('complete',d['complete'],d['counts']['podsRunning'])")"
$K delete cluster >/dev/null
