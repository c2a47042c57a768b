//go:build tools

// Package tools pins the helm command built by testenv/build.sh (chart lint, template and the
// chart integration test).
package tools

import _ "helm.sh/helm/v4/cmd/helm"
