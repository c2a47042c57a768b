package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// testCases is health_test.yaml, in the format of Argo CD's own resource_customizations tests.
type testCases struct {
	Tests []struct {
		HealthStatus Health `json:"healthStatus"`
		InputPath    string `json:"inputPath"`
	} `json:"tests"`
}

func readTestCases(t *testing.T) testCases {
	t.Helper()
	data, err := os.ReadFile("health_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases testCases
	if err := yaml.UnmarshalStrict(data, &cases); err != nil {
		t.Fatalf("health_test.yaml: %v", err)
	}
	if len(cases.Tests) == 0 {
		t.Fatal("health_test.yaml has no tests")
	}
	return cases
}

func readScript(t *testing.T) string {
	t.Helper()
	script, err := os.ReadFile("health.lua")
	if err != nil {
		t.Fatal(err)
	}
	return string(script)
}

func TestHealth(t *testing.T) {
	script := readScript(t)
	for _, tc := range readTestCases(t).Tests {
		t.Run(strings.TrimSuffix(filepath.Base(tc.InputPath), filepath.Ext(tc.InputPath)), func(t *testing.T) {
			obj, err := readObject(tc.InputPath)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Evaluate(script, obj)
			if err != nil {
				t.Fatalf("health.lua failed: %v", err)
			}
			if got != tc.HealthStatus {
				t.Errorf("got %+v, want %+v", got, tc.HealthStatus)
			}
		})
	}
}

// Every object in testdata/ is a test case: none is left out by mistake.
func TestEveryFixtureIsATestCase(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var inputs []string
	for _, tc := range readTestCases(t).Tests {
		inputs = append(inputs, filepath.Clean(tc.InputPath))
	}
	for _, f := range files {
		if !slices.Contains(inputs, f) {
			t.Errorf("%s is not used in health_test.yaml", f)
		}
	}
}

// argocd-cm.yaml installs exactly health.lua.
func TestConfigMapCarriesTheScript(t *testing.T) {
	data, err := os.ReadFile("argocd-cm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(data, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata.Name != "argocd-cm" {
		t.Errorf("argocd-cm.yaml is a %s named %q, want the ConfigMap argocd-cm", cm.Kind, cm.Metadata.Name)
	}
	const key = "resource.customizations.health.relman.io_Release"
	if got, want := cm.Data[key], readScript(t); got != want {
		t.Errorf("argocd-cm.yaml's %s differs from health.lua; regenerate it from health.lua", key)
	}
}

// The harness gives scripts what Argo CD gives them and no more: a script that relies on the
// string library works in a plain Lua but fails in Argo CD.
func TestSandboxHasNoStringLibrary(t *testing.T) {
	_, err := Evaluate(`return {status = string.upper("healthy")}`, map[string]any{})
	if err == nil {
		t.Fatal("string.upper worked; Argo CD does not open the string library for argocd-cm scripts")
	}
	got, err := Evaluate(`local t = {} table.insert(t, "Healthy") return {status = t[1], message = tostring(obj.n)}`,
		map[string]any{"n": float64(2)})
	if err != nil || got != (Health{Status: "Healthy", Message: "2"}) {
		t.Fatalf("base and table libraries: got %+v, %v", got, err)
	}
	got, err = Evaluate(`return {status = "Fine"}`, map[string]any{})
	if err != nil || got.Status != "Unknown" {
		t.Fatalf("an invalid status becomes Unknown in Argo CD: got %+v, %v", got, err)
	}
}

// A script that never ends is stopped, as Argo CD stops it after a second.
func TestSandboxDeadline(t *testing.T) {
	if _, err := Evaluate(`while true do end`, map[string]any{}); err == nil {
		t.Fatal("an endless script was not stopped")
	}
}

func TestRunPrintsOneVerdictPerObject(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, "health.lua", []string{"testdata"}, true); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/*.yaml")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(files) {
		t.Fatalf("%d lines for %d objects:\n%s", len(lines), len(files), out.String())
	}
	for _, line := range lines {
		var v Verdict
		if err := json.Unmarshal([]byte(line), &v); err != nil || v.Status == "" || v.Name == "" {
			t.Errorf("line %q: %+v, %v", line, v, err)
		}
	}
}
