//go:build tools

// The wrapper module that pins Helm: devkit builds helm.sh/helm/v4/cmd/helm from it.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
