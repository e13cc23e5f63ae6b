# usage: run.sh KWOKBIN — kwok's memory with 100,000 pods (420 nodes, at most 250 pods each: the
# 10,000-node shape is control-plane bound on 2 cores, see ../2026-11-26-large-paced/;
# at most 250 pods per node fit the /24 podCIDR each node gets: 254 addresses).
# Writes loadgen.json and rss-every-30s.txt here; the cluster is deleted at the end.
KW=$1; D=$(cd "$(dirname "$0")" && pwd)
B=/work/target-main/release
export KWOK_CACHE_DIR=$HOME/.kwok/cache KWOK_WORKDIR=/tmp/lp/work KUBECONFIG=/tmp/lp/kubeconfig
K="$B/kwokctl --name pods100k"
$K delete cluster >/dev/null 2>&1
$K create cluster --disable-qps-limits --kwok-controller-binary $KW >/dev/null || exit 1
P=$(cat /tmp/lp/work/clusters/pods100k/pids/kwok-controller.pid)
( : > $D/rss-every-30s.txt
  while [ -d /proc/$P ]; do
    echo "$(date +%T) $(grep -E 'VmHWM|VmRSS' /proc/$P/status | tr -s ' \n' ' ') cpu=$(awk '{print ($14+$15)/100}' /proc/$P/stat)s" >> $D/rss-every-30s.txt
    sleep 30
  done ) &
# Paced (150/s, 64 in flight), so kwok's writes are not queued behind 512 creates.
$B/loadgen --nodes 420 --node-capacity cpu=1000 --node-capacity memory=4Ti --node-capacity pods=250 \
  --pods 100000 --namespaces 10 --rate 150 --concurrency 64 --timeout 3600s --keep --output json > $D/loadgen.json
echo "end: $(grep -E 'VmHWM|VmRSS' /proc/$P/status | tr -s ' \n' ' ') cpu=$(awk '{print ($14+$15)/100}' /proc/$P/stat)s" | tee -a $D/rss-every-30s.txt
python3 -c "import json;d=json.load(open('$D/loadgen.json'));print('complete',d['complete'],d['counts'])"
$K delete cluster >/dev/null
