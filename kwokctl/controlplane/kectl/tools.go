//go:build tools

// Package tools keeps kectl's command and its dependencies in go.sum.
package tools

import (
	_ "github.com/kwok-ci/kectl/cmd/kectl"
)
