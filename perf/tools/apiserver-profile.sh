#!/usr/bin/env bash
# Where kube-apiserver's CPU goes in a `perf` run (issue 27), for each side.
#
#   perf/tools/apiserver-profile.sh record OUT [SECS] [SIDES]
#     Run beside `perf <scenario>`: waits for each side's cluster in turn (SIDES, default
#     "ours upstream": `perf-ours`, then `perf-upstream`, the newest under
#     /tmp/kwok-perf-*), and profiles its kube-apiserver from
#     ready to deleted in back-to-back SECS-second (default 50) CPU profiles
#     (`/debug/pprof/profile` with the cluster's admin certificate): OUT/<side>-<n>.pprof,
#     merged into OUT/<side>.pprof at the end. The profile running when the cluster is
#     deleted is lost (its last SECS seconds at most).
#   perf/tools/apiserver-profile.sh shares PROFILE...
#     The CPU seconds of the request paths and costs issue 27's levers touch, one column
#     per profile: watch encoding (JSON and protobuf), response encoding, updates,
#     deletes, client-certificate checks, the garbage collector.
set -euo pipefail

record() {
  local out=${1:?usage: apiserver-profile.sh record OUT [SECS] [SIDES]} secs=${2:-50} sides=${3:-ours upstream}
  mkdir -p "$out"
  local side kc dir server cert key i
  for side in $sides; do
    until kc=$(ls -t /tmp/kwok-perf-*/kwok/clusters/perf-"$side"/kubeconfig.yaml 2>/dev/null | head -1) && [ -n "$kc" ]; do
      sleep 1
    done
    dir=$(dirname "$kc")
    server=$(awk '$1 == "server:" { print $2; exit }' "$kc")
    cert=$dir/pki/admin.crt key=$dir/pki/admin.key
    until curl -sfk --cert "$cert" --key "$key" "$server/readyz" >/dev/null 2>&1; do sleep 1; done
    echo "$(date +%T) $side: kube-apiserver ready at $server"
    i=0
    while [ -e "$kc" ]; do
      i=$((i + 1))
      if ! curl -sfk --cert "$cert" --key "$key" -o "$out/$side-$i.pprof" \
        "$server/debug/pprof/profile?seconds=$secs"; then
        rm -f "$out/$side-$i.pprof"
        break
      fi
    done
    local parts=("$out/$side"-*.pprof)
    if [ -e "${parts[0]}" ]; then
      go tool pprof -proto "${parts[@]}" >"$out/$side.pprof" 2>/dev/null
      echo "$(date +%T) $side: ${#parts[@]} profiles merged into $out/$side.pprof"
    fi
  done
}

# The cumulative seconds of the first frame matching REGEX, within FOCUS if given.
# FOCUS may be "FOCUS;IGNORE": leave out samples under IGNORE.
cum() {
  local file=$1 focus=${2%%;*} ignore= regex=$3
  [[ $2 == *";"* ]] && ignore=${2#*;}
  go tool pprof -top -cum -nodecount=600 ${focus:+-focus="$focus"} ${ignore:+-ignore="$ignore"} "$file" 2>/dev/null |
    awk -v re="$regex" '$6 ~ re { print $4; found = 1; exit } END { if (!found) print "0s" }'
}

shares() {
  [ $# -gt 0 ] || { echo "usage: apiserver-profile.sh shares PROFILE..." >&2; exit 2; }
  local rows=(
    "profiled CPU||TOTAL"
    "watch: encoding, all|watchEncoder|watchEncoder\\)\\.doEncode\$"
    "watch: JSON encoding|watchEncoder|json\\.\\(\\*Serializer\\)\\.doEncode\$"
    "watch: JSON compaction (of marshalers' output)|watchEncoder|encoding/json\\.appendCompact\$"
    "watch: encoding outside the shared cache|watchEncoder;CacheEncode|watchEncoder\\)\\.doEncode\$"
    "watch: protobuf encoding|watchEncoder|protobuf\\.\\(\\*Serializer\\)\\.doEncode\$"
    "responses: encoding (all formats)||responsewriters\\.SerializeObject\$"
    "watch: serving, all||handlers\\.handleWatch\$"
    "updates (PUT, PATCH): storage||registry\\.\\(\\*DryRunnableStorage\\)\\.GuaranteedUpdate\$"
    "deletes: storage||registry\\.\\(\\*Store\\)\\.Delete\$"
    "client certificate checks||x509\\.\\(\\*Certificate\\)\\.Verify\$"
    "garbage collector, background||runtime\\.gcBgMarkWorker\$"
    "allocation||runtime\\.mallocgc\$"
  )
  printf '| %s |' "frame (cumulative CPU s)"
  for f in "$@"; do printf ' %s |' "$f"; done
  printf '\n|---|'
  for _ in "$@"; do printf -- '---:|'; done
  printf '\n'
  local row label focus regex
  for row in "${rows[@]}"; do
    IFS='|' read -r label focus regex <<<"$row"
    printf '| %s |' "$label"
    for f in "$@"; do
      if [ "$regex" = TOTAL ]; then
        printf ' %s |' "$(go tool pprof -top -nodecount=1 "$f" 2>/dev/null | sed -n 's/.*Total samples = \([0-9.]*m\{0,1\}s\).*/\1/p')"
      else
        printf ' %s |' "$(cum "$f" "$focus" "$regex")"
      fi
    done
    printf '\n'
  done
}

case ${1:-} in
  record) shift; record "$@" ;;
  shares) shift; shares "$@" ;;
  *) echo "usage: apiserver-profile.sh record OUT [SECS] [SIDES] | shares PROFILE..." >&2; exit 2 ;;
esac
