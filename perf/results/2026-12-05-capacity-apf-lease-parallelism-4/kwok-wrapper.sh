#!/bin/sh
# perf experiment: our kwok with upstream's default lease parallelism (4).
exec /work/main/target/dist/kwok --node-lease-parallelism=4 "$@"
