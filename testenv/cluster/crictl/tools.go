//go:build tools

// Package tools records the command cluster.sh builds, so that go.mod and go.sum
// keep every module it needs.
package tools

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
