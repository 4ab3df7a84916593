//go:build tools

// Pins Prometheus (the test bed's metrics server) in this wrapper module.
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"
