module kwok-rs/perf/tools/x509-verify

go 1.26
