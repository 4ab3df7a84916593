//go:build tools

// Pins Kueue (the test bed's job queueing controller) in this wrapper module.
package tools

import _ "sigs.k8s.io/kueue/cmd/kueue"
