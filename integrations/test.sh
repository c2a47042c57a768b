#!/usr/bin/env bash
# Runs the Go test suites of relman's GitOps integrations:
#
#   argocd/   health.lua, the Argo CD health check for Releases, on its test cases, with
#             gopher-lua (the interpreter Argo CD embeds) in Argo CD's sandbox
#   kstatus/  the real kstatus library (what Flux's wait and healthChecks use) on the same objects
#   flux/     the Flux example's healthCheckExprs, evaluated by Flux's own code on the same objects,
#             and the example itself, strictly decoded as a kustomize.toolkit.fluxcd.io/v1 object
#
# For each module: download its modules (pinned by go.mod and go.sum), check gofmt, go vet and
# go test. Every module is tested even when one fails; the exit status is non-zero if any failed.
#
# The objects are Releases captured from the local control plane (integrations/argocd/testdata);
# tests/gitops.rs (cargo test) captures fresh ones and runs the argocd and kstatus checkers on them.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
modules=(argocd kstatus flux)

say() { printf '[integrations] %s\n' "$*"; }

if ! command -v go >/dev/null 2>&1; then
  say "error: Go is not installed; install a Go toolchain (>= 1.26) and run again"
  exit 1
fi

failed=()
# Runs a command in a module's directory, saying what it runs.
step() { # module command...
  local module=$1
  shift
  say "$module: $*"
  if ! (cd "$here/$module" && "$@"); then
    failed+=("$module: $*")
    return 1
  fi
}

start=$SECONDS
for module in "${modules[@]}"; do
  step "$module" go mod download || continue
  say "$module: gofmt -l ."
  unformatted=$(cd "$here/$module" && gofmt -l .)
  if [ -n "$unformatted" ]; then
    say "$module: not formatted with gofmt: $unformatted"
    failed+=("$module: gofmt")
  fi
  step "$module" go vet -mod=readonly ./...
  step "$module" go test -mod=readonly ./...
done

if [ ${#failed[@]} -gt 0 ]; then
  say "FAILED after $((SECONDS - start))s:"
  for f in "${failed[@]}"; do say "  $f"; done
  exit 1
fi
say "all passed in $((SECONDS - start))s (${modules[*]})"
