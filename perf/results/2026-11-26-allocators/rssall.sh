bash rss.sh mimalloc /work/target-main/release/kwok X=1
bash rss.sh glibc /tmp/lp/kwok-glibc X=1
bash rss.sh glibc-arena2 /tmp/lp/kwok-glibc MALLOC_ARENA_MAX=2
bash rss.sh mimalloc-purge0 /work/target-main/release/kwok MIMALLOC_PURGE_DELAY=0
