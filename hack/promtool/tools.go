//go:build tools

// The wrapper module that pins Prometheus: devkit builds its promtool from it.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
