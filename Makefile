# relman — every developer and CI entry point. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
PREFIX ?= $(HOME)/.local
CLUSTER_DIR := target/cluster
KUBECONFIG_OUT := $(CLUSTER_DIR)/kubeconfig
CHART := charts/relman
# helm from testenv/build.sh's cache (built by `make testenv`); its state stays under target/.
HELM = $(shell bash testenv/build.sh 2>/dev/null | tail -n 1)/helm
export HELM_CACHE_HOME := $(CURDIR)/target/helm/cache
export HELM_CONFIG_HOME := $(CURDIR)/target/helm/config
export HELM_DATA_HOME := $(CURDIR)/target/helm/data
# The chart renders only when told where relman may act: every namespace ...
CHART_CLUSTER_WIDE := --set clusterWide=true
# ... or a list of namespaces, here with every optional part of the chart switched on.
CHART_ALL_ON := --set 'managedNamespaces={apps,apps-staging,apps-prod}' \
  --set 'rbac.notificationSecretNames={releases-channel}' \
  --set serviceMonitor.enabled=true --set 'serviceMonitor.labels.release=prometheus' \
  --set approvalPolicy.signoff.group=release-managers \
  --set 'approvalPolicy.namespaceSelector.matchLabels.relman\.io/approvals=enforced' \
  --set 'releaseCreator.namespaceSelector.matchLabels.relman\.io/creator=recorded' \
  --set 'rbac.conditionGateRules[0].apiGroups={tekton.dev}' \
  --set 'rbac.conditionGateRules[0].resources={pipelineruns}' --set 'rbac.conditionGateRules[0].verbs={get}' \
  --set defaultPolicy.enabled=true --set defaultPolicy.spec.jobs.podSecurity=Baseline

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: ## Run the demo: a local control plane, relman, a release that succeeds and one that is reverted
	bash scripts/demo.sh

.PHONY: install
install: ## Install the kubectl plugin (kubectl relman ...) into $(PREFIX)/bin (default ~/.local)
	$(CARGO) build --release --bin kubectl-relman
	install -D -m 0755 target/release/kubectl-relman $(PREFIX)/bin/kubectl-relman
	@echo "installed $(PREFIX)/bin/kubectl-relman; make sure $(PREFIX)/bin is on your PATH"

.PHONY: build
build: ## Build relman, crdgen and the test harness
	$(CARGO) build --workspace --all-targets

.PHONY: crds
crds: ## Regenerate the CRDs in crds/ (and the chart's copy) from the API types
	$(CARGO) run --quiet --bin crdgen -- crds
	rm -f $(CHART)/crds/*.yaml
	cp crds/*.yaml $(CHART)/crds/

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: lint
lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: testenv
testenv: ## Build (or reuse) the local control plane's binaries and helm in the cache
	bash testenv/build.sh >/dev/null

.PHONY: test
test: lint testenv chart-lint integrations ## Lint, check the CRDs are fresh, run unit and integration tests on the local control plane
	RELMAN_TESTENV_BIN_DIR="$$(bash testenv/build.sh 2>/dev/null | tail -n 1)" \
	  $(CARGO) test --workspace --all-targets --no-fail-fast

.PHONY: bench
bench: testenv ## Benchmark relman on the local control plane (BENCH_SIZES=1000,10000 BENCH_PHASES=lifecycle,floor,memory); writes bench/results.json
	$(CARGO) build --release -p relman -p relman-bench --bin relman --bin relman-bench
	@mkdir -p target/bench
	RELMAN_TESTENV_BIN_DIR="$$(bash testenv/build.sh 2>/dev/null | tail -n 1)" \
	RELMAN_TESTENV_AUDIT_LOG="$(CURDIR)/target/bench/audit.log" \
	RELMAN_TESTENV_AUDIT_POLICY="$(CURDIR)/bench/audit-policy.yaml" \
	  target/release/relman-bench

# The full chaos run of `make chaos` (the short one runs inside `make test`); see docs/reliability.md.
CHAOS_RELEASES ?= 100
CHAOS_KILLS ?= 60
CHAOS_RESTARTS ?= 3
CHAOS_SIDE_RELEASES ?= 30
CHAOS_LEADER_KILLS ?= 10
CHAOS_LEADER_PAUSES ?= 10
CHAOS_APPROVAL_WINDOW ?= 60

.PHONY: chaos
chaos: testenv ## Chaos suite: releases under controller SIGKILLs, API server/etcd restarts, leader kills and pauses, a throttled API server, a hostile-input sweep; prints the summary
	RELMAN_TESTENV_BIN_DIR="$$(bash testenv/build.sh 2>/dev/null | tail -n 1)" \
	RELMAN_CHAOS_RELEASES=$(CHAOS_RELEASES) RELMAN_CHAOS_KILLS=$(CHAOS_KILLS) \
	RELMAN_CHAOS_RESTARTS=$(CHAOS_RESTARTS) RELMAN_CHAOS_RESTART_RELEASES=$(CHAOS_SIDE_RELEASES) \
	RELMAN_CHAOS_LEADER_RELEASES=$(CHAOS_SIDE_RELEASES) RELMAN_CHAOS_LEADER_KILLS=$(CHAOS_LEADER_KILLS) \
	RELMAN_CHAOS_PAUSE_RELEASES=$(CHAOS_SIDE_RELEASES) RELMAN_CHAOS_LEADER_PAUSES=$(CHAOS_LEADER_PAUSES) \
	RELMAN_CHAOS_THROTTLED_RELEASES=$(CHAOS_RELEASES) \
	RELMAN_CHAOS_APPROVAL_WINDOW=$(CHAOS_APPROVAL_WINDOW) \
	  $(CARGO) test --test chaos --test hostile -- --nocapture --test-threads=1 --include-ignored

.PHONY: integrations
integrations: ## Go tests of the Argo CD health check, kstatus and Flux examples (integrations/)
	bash integrations/test.sh

.PHONY: chart-lint
chart-lint: testenv ## helm lint --strict and helm template of charts/relman (clusterWide, and managedNamespaces with every option on)
	$(HELM) lint --strict $(CHART) $(CHART_CLUSTER_WIDE)
	$(HELM) lint --strict $(CHART) $(CHART_ALL_ON)
	$(HELM) template relman $(CHART) --namespace relman-system $(CHART_CLUSTER_WIDE) >/dev/null
	$(HELM) template relman $(CHART) --namespace relman-system $(CHART_ALL_ON) >/dev/null
	@echo "chart $(CHART): lint and template passed"

.PHONY: cluster
cluster: testenv ## Start the local control plane in the background; kubeconfig in target/cluster/kubeconfig
	@mkdir -p $(CLUSTER_DIR)
	@if [ -f $(CLUSTER_DIR)/pid ] && kill -0 "$$(cat $(CLUSTER_DIR)/pid)" 2>/dev/null; then \
	  echo "the local control plane already runs (pid $$(cat $(CLUSTER_DIR)/pid)); KUBECONFIG=$(KUBECONFIG_OUT)"; exit 0; fi
	$(CARGO) build --quiet -p relman-testenv --bin relman-testenv
	@rm -f $(KUBECONFIG_OUT)
	@RELMAN_TESTENV_BIN_DIR="$$(bash testenv/build.sh 2>/dev/null | tail -n 1)" \
	  nohup target/debug/relman-testenv up --kubeconfig $(KUBECONFIG_OUT) >$(CLUSTER_DIR)/cluster.log 2>&1 & \
	  echo $$! >$(CLUSTER_DIR)/pid
	@for i in $$(seq 1 120); do \
	  if [ -s $(KUBECONFIG_OUT) ]; then echo "local control plane up: export KUBECONFIG=$$PWD/$(KUBECONFIG_OUT)"; exit 0; fi; \
	  if ! kill -0 "$$(cat $(CLUSTER_DIR)/pid)" 2>/dev/null; then echo "the local control plane failed to start:"; tail -n 30 $(CLUSTER_DIR)/cluster.log; exit 1; fi; \
	  sleep 1; done; echo "timed out waiting for the local control plane; see $(CLUSTER_DIR)/cluster.log"; exit 1

.PHONY: cluster-down
cluster-down: ## Stop the local control plane started by `make cluster`
	@if [ -f $(CLUSTER_DIR)/pid ] && kill "$$(cat $(CLUSTER_DIR)/pid)" 2>/dev/null; then \
	  for i in $$(seq 1 30); do kill -0 "$$(cat $(CLUSTER_DIR)/pid)" 2>/dev/null || break; sleep 1; done; \
	  echo "local control plane stopped"; else echo "no local control plane is running"; fi
	@rm -f $(CLUSTER_DIR)/pid $(KUBECONFIG_OUT)
