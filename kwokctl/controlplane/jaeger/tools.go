//go:build tools

// Package tools keeps Jaeger all-in-one's dependencies in go.sum, so build.sh can
// build github.com/jaegertracing/jaeger/cmd/all-in-one at the version go.mod pins.
package tools

import (
	_ "github.com/jaegertracing/jaeger/cmd/all-in-one"
)
