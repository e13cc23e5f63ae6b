//! End-to-end tests live in `tests/e2e/`: they drive the built `kwokctl` and `kwok`
//! binaries against a real etcd and kube-apiserver.
