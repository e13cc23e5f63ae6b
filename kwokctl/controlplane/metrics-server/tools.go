//go:build tools

// Package tools keeps metrics-server's command and its dependencies in go.sum, so
// build.sh can build sigs.k8s.io/metrics-server/cmd/metrics-server at the version
// go.mod pins.
package tools

import (
	_ "sigs.k8s.io/metrics-server/cmd/metrics-server"
)
