//go:build tools

// Pins SeaweedFS (the test bed's S3 server) in this wrapper module.
package tools

import _ "github.com/seaweedfs/seaweedfs/weed"
