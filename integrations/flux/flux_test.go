package flux

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const (
	// The Flux Kustomization example whose healthCheckExprs docs/gitops.md recommends.
	example = "releases-kustomization.yaml"
	// The Release objects the Argo CD health check and kstatus are tested with: most captured
	// from the local control plane by tests/gitops.rs, a few hand-written edge cases.
	fixtures = "../argocd/testdata"
)

// What Flux's own evaluator (fluxcd/pkg/runtime/cel, used by kustomize-controller for
// healthCheckExprs) says about each Release fixture with the example's expressions. "error"
// means the expressions cannot be evaluated yet (no status): Flux keeps waiting.
var wantFlux = map[string]string{
	"not-yet-seen":                "error",
	"spec-not-observed":           "InProgress",
	"edge-empty-status":           "error",
	"progressing":                 "InProgress",
	"edge-rolling-back":           "InProgress",
	"awaiting-approval":           "InProgress",
	"awaiting-window":             "InProgress",
	"succeeded":                   "Current",
	"rolled-back":                 "Failed",
	"stalled":                     "Failed",
	"edge-failed-without-stalled": "InProgress",
}

func releaseExprs(t *testing.T) *kustomize.HealthCheckExpressions {
	t.Helper()
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var ks struct {
		Spec struct {
			HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &ks); err != nil {
		t.Fatal(err)
	}
	for _, e := range ks.Spec.HealthCheckExprs {
		if e.APIVersion == "relman.io/v1alpha1" && e.Kind == "Release" {
			return &e.HealthCheckExpressions
		}
	}
	t.Fatalf("%s has no healthCheckExprs for relman.io/v1alpha1 Release", example)
	return nil
}

func TestFluxHealthCheckExprs(t *testing.T) {
	evaluator, err := cel.NewStatusEvaluator(releaseExprs(t))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(fixtures, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(wantFlux) {
		t.Errorf("%d fixtures in %s, %d expectations here: keep them in step", len(files), fixtures, len(wantFlux))
	}
	for _, file := range files {
		state := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(state, func(t *testing.T) {
			expected, ok := wantFlux[state]
			if !ok {
				t.Fatalf("no expectation for %s", file)
			}
			obj := readObject(t, file)
			got := "error"
			res, err := evaluator.Evaluate(context.Background(), obj)
			if err == nil {
				got = res.Status.String()
			}
			if got != expected {
				t.Errorf("Flux says %s (error: %v), want %s", got, err, expected)
			}
		})
	}
}

// readObject reads a YAML object the way the API server's JSON reaches Flux: integers as int64.
func readObject(t *testing.T, file string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if data, err = yaml.YAMLToJSON(data); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return obj
}

// The example is a valid Kustomization of the kustomize.toolkit.fluxcd.io/v1 API: no unknown or
// misspelt field (Flux would reject it), and the settings docs/gitops.md relies on.
func TestExampleIsAValidKustomization(t *testing.T) {
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var ks kustomizev1.Kustomization
	if err := yaml.UnmarshalStrict(data, &ks); err != nil {
		t.Fatalf("%s: %v", example, err)
	}
	if ks.APIVersion != kustomizev1.GroupVersion.String() || ks.Kind != kustomizev1.KustomizationKind {
		t.Errorf("%s is a %s %s", example, ks.APIVersion, ks.Kind)
	}
	if !ks.Spec.Wait || ks.Spec.Prune || ks.Spec.Timeout == nil || len(ks.Spec.HealthCheckExprs) == 0 {
		t.Errorf("the example should wait, not prune, set a timeout and give healthCheckExprs: %+v", ks.Spec)
	}
}
