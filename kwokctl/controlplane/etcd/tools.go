//go:build tools

// Package tools keeps etcdctl's and etcdutl's dependencies in go.sum.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
)
