#!/usr/bin/env bash
# The relman demo: a local control plane, the relman controller, a release that goes through
# staging and production with a sign-off, and a release whose smoke test fails and is reverted.
# Ctrl-C stops everything at any point.
set -euo pipefail
cd "$(dirname "$0")/.."

demo_dir=target/demo
mkdir -p "$demo_dir"
export KUBECONFIG=$PWD/$demo_dir/kubeconfig

bold=$(tput bold 2>/dev/null || true)
dim=$(tput dim 2>/dev/null || true)
reset=$(tput sgr0 2>/dev/null || true)
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$reset"; }
note() { printf '%s    %s%s\n' "$dim" "$*" "$reset"; }

pids=()
cleanup() {
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    step "Stopping relman and the local control plane"
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Building the control plane (cached after the first run) and relman"
bin_dir=$(bash testenv/build.sh | tail -n 1)
cargo build --quiet --workspace --bins
kubectl="$bin_dir/kubectl"

step "Starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
rm -f "$KUBECONFIG"
RELMAN_TESTENV_BIN_DIR=$bin_dir target/debug/relman-testenv up --kubeconfig "$KUBECONFIG" \
  >"$demo_dir/cluster.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  [ -s "$KUBECONFIG" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || { tail -n 30 "$demo_dir/cluster.log"; exit 1; }
  sleep 0.5
done
[ -s "$KUBECONFIG" ] || { echo "the control plane did not start; see $demo_dir/cluster.log"; exit 1; }
"$kubectl" version 2>/dev/null | sed 's/^/    /'

step "Starting relman (logs: $demo_dir/relman.log)"
RELMAN_HTTP_ADDR=127.0.0.1:0 RELMAN_PROBE_ADDR=127.0.0.1:0 RELMAN_LOG=info target/debug/relman >"$demo_dir/relman.log" 2>&1 &
pids+=($!)

step "Creating the checkout application: staging and production, both on 1.0.0"
"$kubectl" apply --server-side -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop-staging}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop-prod}
EOF
for ns in shop-staging shop-prod; do
  "$kubectl" apply --server-side -n "$ns" -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: checkout-api, labels: {app: checkout}}
spec:
  replicas: 3
  selector: {matchLabels: {app: checkout}}
  template:
    metadata: {labels: {app: checkout}}
    spec:
      containers:
      - {name: api, image: "registry.example/checkout:1.0.0"}
EOF
done
for ns in shop-staging shop-prod; do
  "$kubectl" rollout status -n "$ns" deployment/checkout-api --timeout=60s | sed 's/^/    /'
done

step "shop-staging and shop-prod accept Releases from shop: their owners' ReleasePolicy (docs/policy.md)"
for ns in shop-staging shop-prod; do
  "$kubectl" apply -f - <<EOF | sed 's/^/    /'
apiVersion: relman.io/v1alpha1
kind: ReleasePolicy
metadata: {name: default, namespace: $ns}
spec:
  acceptReleasesFrom: {namespaces: [shop]}
  deployments: {selector: {matchLabels: {app: checkout}}}
  jobs: {podSecurity: Restricted, serviceAccounts: [default]}
EOF
done

# release NAME VERSION SMOKE_LABELS: a Release with staging and a signed-off production.
release() {
  cat <<EOF
apiVersion: relman.io/v1alpha1
kind: Release
metadata: {name: $1, namespace: shop}
spec:
  application: checkout
  version: $2
  type: Minor
  owner: team-payments
  rollbackPlan: https://wiki.example/checkout/rollback
  notes: {summary: "Checkout $2."}
  images: [{container: api, image: "registry.example/checkout:$2"}]
  stages:
  - name: staging
    namespace: shop-staging
    deployments: [checkout-api]
    smokeTest:
      timeout: 2m
      template:
        spec:
          backoffLimit: 0
          template:
            metadata: {labels: {$3}}
            spec:
              restartPolicy: Never
              securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
              containers:
              - name: smoke
                image: "registry.example/checkout-smoke:$2"
                securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
  - name: production
    namespace: shop-prod
    deployments: [checkout-api]
    approval: {approvers: 1}
    smokeTest:
      timeout: 2m
      template:
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
              containers:
              - name: verify
                image: "registry.example/checkout-smoke:$2"
                securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
EOF
}

# follow NAME UNTIL_PHASE...: prints each change of phase and the Ready condition's message.
follow() {
  local name=$1 last="" line phase
  shift
  for _ in $(seq 1 600); do
    line=$("$kubectl" get release -n shop "$name" \
      -o jsonpath='{.status.phase}|{.status.stage}|{.status.conditions[?(@.type=="Ready")].reason}|{.status.conditions[?(@.type=="Ready")].message}' 2>/dev/null || true)
    if [ -n "$line" ] && [ "$line" != "$last" ]; then
      IFS='|' read -r phase stage reason message <<<"$line"
      printf '    %-17s %-11s %-26s %s\n' "${phase:-Pending}" "${stage:--}" "$reason" "$message"
      last=$line
    fi
    for want in "$@"; do [ "$phase" = "$want" ] && return 0; done
    sleep 0.5
  done
  echo "    timed out waiting for $name"; return 1
}

images() {
  for ns in shop-staging shop-prod; do
    printf '    %-13s %s\n' "$ns" "$("$kubectl" get deployment -n "$ns" checkout-api -o jsonpath='{.spec.template.spec.containers[0].image}')"
  done
}

step "Applying checkout 2.3.0: staging, smoke test, then it waits for the Release Manager"
release checkout-2-3-0 2.3.0 "" | "$kubectl" apply --server-side -f - | sed 's/^/    /'
note "the API server recorded who created it (config/release-creator.yaml): relman.io/created-by=$("$kubectl" get release -n shop checkout-2-3-0 -o jsonpath='{.metadata.annotations.relman\.io/created-by}')"
follow checkout-2-3-0 AwaitingApproval

step "The Release Manager signs off staging: kubectl relman approve (a ReleaseApproval for 2.3.0)"
target/debug/kubectl-relman approve checkout-2-3-0 -n shop --comment "Staging verified." | sed 's/^/    /'
follow checkout-2-3-0 Succeeded RolledBack
images

step "Applying checkout 2.4.0, whose staging smoke test fails"
release checkout-2-4-0 2.4.0 "relman.io/test-fail: \"true\"" | "$kubectl" apply --server-side -f - | sed 's/^/    /'
follow checkout-2-4-0 RolledBack Succeeded
note "staging is back on the last known-good revision; production was never touched:"
images

step "What relman recorded"
"$kubectl" get releases -n shop -o wide | sed 's/^/    /'
"$kubectl" get events -n shop --field-selector involvedObject.name=checkout-2-4-0 \
  -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message 2>/dev/null | tail -n 6 | sed 's/^/    /'

step "Done"
note "The demo stops its control plane now. To keep one running and try releases yourself:"
note "  make cluster && export KUBECONFIG=\$PWD/target/cluster/kubeconfig"
