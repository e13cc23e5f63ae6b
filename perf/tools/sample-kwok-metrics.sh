# usage: sample-kwok-metrics.sh OUT — writes a line of kwok's /metrics every 10 s to OUT
# (leases held, expired, lease queue, PUTs, PATCHes, batcher queue, worst lateness,
# lease pressure and slots) while the kwok a perf run started (target-main/release) lives.
OUT=$1; : > $OUT
while true; do
  P=$(pgrep -f 'target-main/(release|dist)/kwok --kubeconfig' | head -1)
  [ -n "$P" ] && break; sleep 1
done
ADDR=$(tr '\0' '\n' < /proc/$P/cmdline | grep server-address | cut -d= -f2)
while kill -0 $P 2>/dev/null; do
  m=$(curl -s --max-time 5 $ADDR/metrics)
  e=$(echo "$m" | awk '/^kwok_leases_expired_total/{print $2}')
  q=$(echo "$m" | awk '/^kwok_lease_queue_depth/{print $2}')
  h=$(echo "$m" | awk '/^kwok_leases_held/{print $2}')
  put=$(echo "$m" | awk '/^kwok_apiserver_requests_total\{verb="put",code="200"\}/{print $2}')
  pat=$(echo "$m" | awk '/^kwok_apiserver_requests_total\{verb="patch",code="200"\}/{print $2}')
  bq=$(echo "$m" | awk '/^kwok_batcher_queue_depth/{s+=$2} END{print s}')
  lm=$(echo "$m" | awk '/^kwok_lease_renewal_lateness_max_seconds/{print $2}')
  pr=$(echo "$m" | awk "/^kwok_lease_pressure/{print \$2}")
  sl=$(echo "$m" | awk "/^kwok_lease_slots/{print \$2}")
  echo "$(date +%T) held=$h expired=$e leaseq=$q put=$put patch=$pat batchq=$bq latemax=$lm pressure=$pr slots=$sl" >> $OUT
  sleep 10
done
