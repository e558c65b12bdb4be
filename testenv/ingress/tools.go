//go:build tools

// Package tools records the command ingress.sh builds, so that go.mod and
// go.sum keep every module it needs.
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
