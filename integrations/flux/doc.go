// Package flux tests the Flux example in this directory: the healthCheckExprs that
// releases-kustomization.yaml gives for Release objects, evaluated by Flux's own code on the
// Release fixtures in ../argocd/testdata.
package flux
