package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The Release objects the Argo CD health check is tested with: most captured from the local
// control plane by tests/gitops.rs, a few hand-written edge cases.
const fixtures = "../argocd/testdata"

// What kstatus says about each of them. The contract (docs/gitops.md): Current when released,
// InProgress while progressing or waiting, Failed when stalled.
var want = map[string]string{
	// A Release relman has not written a status for yet. kstatus cannot tell a custom resource
	// without status from one that never gets any, and calls it Current: Flux's `wait` passes
	// on it (docs/gitops.md shows the healthCheckExprs that close the gap).
	"not-yet-seen": "Current",
	// status.observedGeneration < metadata.generation.
	"spec-not-observed": "InProgress",
	// status: {} — no observedGeneration and no conditions: Current, as above.
	"edge-empty-status": "Current",
	"progressing":       "InProgress",
	"edge-rolling-back": "InProgress",
	"awaiting-approval": "InProgress",
	"awaiting-window":   "InProgress",
	"succeeded":         "Current",
	"rolled-back":       "Failed",
	"stalled":           "Failed",
	// relman never writes this: with Ready=False and no Stalled=True kstatus can only say
	// InProgress, which is why relman sets Stalled=True whenever it stops.
	"edge-failed-without-stalled": "InProgress",
}

func TestReleaseStates(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(fixtures, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("%d fixtures in %s, %d expectations here: keep them in step", len(files), fixtures, len(want))
	}
	for _, file := range files {
		state := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(state, func(t *testing.T) {
			expected, ok := want[state]
			if !ok {
				t.Fatalf("no expectation for %s", file)
			}
			v, err := computeFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != expected {
				t.Errorf("kstatus says %s (%q), want %s", v.Status, v.Message, expected)
			}
		})
	}
}

// JSON as `kubectl get -o json` prints it works as well as YAML, integers included: kstatus
// compares metadata.generation with status.observedGeneration as int64.
func TestJSONInput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "release.json")
	obj := `{"apiVersion": "relman.io/v1alpha1", "kind": "Release",
		"metadata": {"name": "web-2-0-0", "generation": 2},
		"status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}}`
	if err := os.WriteFile(file, []byte(obj), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := computeFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != "InProgress" || !strings.Contains(v.Message, "generation is 2") {
		t.Errorf("got %+v, want InProgress for a generation not yet observed", v)
	}
}

func TestRunPrintsOneVerdictPerObject(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, []string{fixtures}, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines for %d objects:\n%s", len(lines), len(want), out.String())
	}
	for _, line := range lines {
		var v Verdict
		if err := json.Unmarshal([]byte(line), &v); err != nil || v.Status == "" || v.Name == "" {
			t.Errorf("line %q: %+v, %v", line, v, err)
		}
	}
}

func TestEmptyDirectoryIsAnError(t *testing.T) {
	if err := run(&bytes.Buffer{}, []string{t.TempDir()}, false); err == nil {
		t.Fatal("no error for a directory without objects")
	}
}
