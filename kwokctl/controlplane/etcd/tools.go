//go:build tools

// Package tools keeps etcdctl's dependencies in go.sum.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
)
