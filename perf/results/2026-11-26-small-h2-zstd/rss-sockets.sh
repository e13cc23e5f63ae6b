# usage: rss-sockets.sh LABEL KWOKBIN: ../2026-11-26-allocators/rss.sh plus kwok's peak count of sockets
L=$1; KW=$2
( sleep 20; P=$(cat /tmp/lp/work/clusters/rss/pids/kwok-controller.pid 2>/dev/null); m=0
  while [ -d /proc/$P ]; do n=$(ls -l /proc/$P/fd 2>/dev/null | grep -c socket); [ $n -gt $m ] && m=$n && echo $m > /tmp/lp/socks-$L; sleep 2; done ) &
bash "$(dirname "$0")/../2026-11-26-allocators/rss.sh" $L $KW
echo "$L peak sockets: $(cat /tmp/lp/socks-$L)"
