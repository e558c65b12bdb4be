//go:build tools

// Package tools records the command promtool.sh builds, so that go.mod and
// go.sum keep every module it needs.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
