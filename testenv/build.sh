#!/usr/bin/env bash
# Builds the local control plane's binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) from the Go modules pinned under testenv/go/ into a cache
# outside the repository, keyed by version. A binary already in the cache is reused.
#
# Prints the directory that holds the binaries on its last line of stdout; progress goes to stderr.
#
#   RELMAN_CACHE_DIR  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/relman)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${RELMAN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relman}

say() { printf '[testenv] %s\n' "$*" >&2; }
die() { printf '[testenv] error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is not installed; install a Go toolchain (>= 1.26) and run again"

# The version each module pins, read from its go.mod so that there is one source of truth.
pinned() { # module-dir module-path
  awk -v m="$2" '$1 == m || ($1 == "require" && $2 == m) { print ($1 == m ? $2 : $3); exit }' "$here/go/$1/go.mod"
}
k8s_version=$(pinned kubernetes k8s.io/kubernetes)
kwok_version=$(pinned kwok sigs.k8s.io/kwok)
etcd_version=$(pinned etcd go.etcd.io/etcd/server/v3)
[ -n "$k8s_version" ] && [ -n "$kwok_version" ] && [ -n "$etcd_version" ] ||
  die "could not read the pinned versions from testenv/go/*/go.mod"

bin="$cache/bin/k8s-$k8s_version-kwok-$kwok_version-etcd-$etcd_version"
mkdir -p "$bin"

# Build one binary unless the cache has it. A half-written binary never lands in the cache:
# go build writes to a temporary name that is renamed only on success.
build() { # name module-dir package [ldflags]
  local name=$1 dir=$2 pkg=$3 ldflags=${4:-}
  if [ -x "$bin/$name" ]; then
    say "$name: cached ($bin/$name)"
    return
  fi
  say "$name: building $pkg (this takes a few minutes on a cold cache)..."
  local start=$SECONDS log
  log=$(mktemp)
  if ! (cd "$here/go/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" \
      -o "$bin/.$name.tmp" "$pkg") >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log" "$bin/.$name.tmp"
    die "building $name from $pkg (module testenv/go/$dir) failed; the Go output is above"
  fi
  rm -f "$log"
  mv "$bin/.$name.tmp" "$bin/$name"
  say "$name: built in $((SECONDS - start))s"
}

# Version stamps so that `kubectl version` and /version report the real release.
minor=${k8s_version#v1.}
minor=${minor%%.*}
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

total=$SECONDS
build etcd etcd relman.io/testenv/etcd
build kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver "$stamp"
build kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager "$stamp"
build kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler "$stamp"
build kubectl kubernetes k8s.io/kubernetes/cmd/kubectl "$stamp"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version"
say "all binaries ready in $((SECONDS - total))s: $bin"
echo "$bin"
