#!/usr/bin/env bash
# Builds the local control plane's binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) and helm (which lints, renders and installs charts/relman) from the
# Go modules pinned under testenv/go/ into a cache outside the repository, keyed by version. A binary
# already in the cache is reused.
#
# Layout of $cache/bin:
#   k8s-<v>-kwok-<v>-etcd-<v>/           the control plane's binaries
#   helm-<v>/helm                        helm, keyed by its own version (its module is separate)
#   k8s-<v>-kwok-<v>-etcd-<v>-helm-<v>/  the set: symbolic links to all of the above
# so that a new helm pin does not rebuild the control plane, and the reverse.
#
# Prints the set's directory (it holds every binary) on its last line of stdout; progress goes to
# stderr.
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
helm_version=$(pinned helm helm.sh/helm/v4)
[ -n "$k8s_version" ] && [ -n "$kwok_version" ] && [ -n "$etcd_version" ] && [ -n "$helm_version" ] ||
  die "could not read the pinned versions from testenv/go/*/go.mod"

control_plane="$cache/bin/k8s-$k8s_version-kwok-$kwok_version-etcd-$etcd_version"
helm_dir="$cache/bin/helm-$helm_version"
set_dir="$control_plane-helm-$helm_version"
mkdir -p "$control_plane" "$helm_dir" "$set_dir"

# Build one binary unless the cache has it. A half-written binary never lands in the cache:
# go build writes to a temporary name that is renamed only on success.
build() { # bin-dir name module-dir package [ldflags]
  local bin=$1 name=$2 dir=$3 pkg=$4 ldflags=${5:-}
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
build "$control_plane" etcd etcd relman.io/testenv/etcd
build "$control_plane" kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver "$stamp"
build "$control_plane" kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager "$stamp"
build "$control_plane" kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler "$stamp"
build "$control_plane" kubectl kubernetes k8s.io/kubernetes/cmd/kubectl "$stamp"
build "$control_plane" kwok kwok sigs.k8s.io/kwok/cmd/kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version"
build "$helm_dir" helm helm helm.sh/helm/v4/cmd/helm \
  "-X helm.sh/helm/v4/internal/version.version=$helm_version -X helm.sh/helm/v4/internal/version.gitTreeState=clean"

# The set: relative links, so that the cache can be moved as a whole. A missing or wrong link is
# replaced atomically (rename), so that a test reading the set never sees it half-made.
link() { # target name
  local target=$1 name=$2
  [ "$(readlink "$set_dir/$name" 2>/dev/null)" = "$target" ] && return
  ln -sfn "$target" "$set_dir/.$name.$$.tmp"
  mv -fT "$set_dir/.$name.$$.tmp" "$set_dir/$name"
}
for name in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
  link "../${control_plane##*/}/$name" "$name"
done
link "../${helm_dir##*/}/helm" helm
say "all binaries ready in $((SECONDS - total))s: $set_dir"
echo "$set_dir"
