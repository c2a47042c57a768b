// Command kstatus prints the kstatus verdict of Release objects, computed by
// sigs.k8s.io/cli-utils/pkg/kstatus/status: the library Flux's kustomize-controller
// (`wait: true`, `healthChecks`) and other kstatus-based tools use to decide whether a
// resource is Current, InProgress or Failed.
//
// Usage:
//
//	go run . [-json] PATH...
//
// Each PATH is a JSON or YAML file holding one object (as `kubectl get -o json` prints it), or a
// directory whose *.json, *.yaml and *.yml files are read in name order. "-" reads standard input.
// Without -json the output is one tab-separated line per object: file, name, status, message.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// Verdict is what kstatus says about one object.
type Verdict struct {
	File    string `json:"file"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	asJSON := flag.Bool("json", false, "print one JSON object per line")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: kstatus [-json] PATH...\n\n"+
			"Prints the kstatus verdict of each object in the JSON or YAML files given (or in the\n"+
			"directories given); - reads standard input.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(os.Stdout, flag.Args(), *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, paths []string, asJSON bool) error {
	files, err := expand(paths)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	for _, file := range files {
		v, err := computeFile(file)
		if err != nil {
			return err
		}
		if asJSON {
			err = enc.Encode(v)
		} else {
			_, err = fmt.Fprintf(out, "%s\t%s\t%s\t%s\n", v.File, v.Name, v.Status, v.Message)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// expand replaces each directory in paths by the object files it holds.
func expand(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		if p == "-" {
			files = append(files, p)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		var found []string
		for _, e := range entries {
			switch filepath.Ext(e.Name()) {
			case ".json", ".yaml", ".yml":
				if !e.IsDir() {
					found = append(found, filepath.Join(p, e.Name()))
				}
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: no *.json, *.yaml or *.yml files", p)
		}
		slices.Sort(found)
		files = append(files, found...)
	}
	return files, nil
}

func computeFile(file string) (Verdict, error) {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return Verdict{}, err
	}
	obj, err := decode(data)
	if err != nil {
		return Verdict{}, fmt.Errorf("%s: %w", file, err)
	}
	res, err := status.Compute(obj)
	if err != nil {
		return Verdict{}, fmt.Errorf("%s: kstatus: %w", file, err)
	}
	return Verdict{File: file, Name: obj.GetName(), Status: res.Status.String(), Message: res.Message}, nil
}

// decode reads one object from JSON or YAML. The apimachinery decoder keeps integers as int64,
// which kstatus needs to compare metadata.generation with status.observedGeneration.
func decode(data []byte) (*unstructured.Unstructured, error) {
	if !strings.HasPrefix(strings.TrimSpace(string(data)), "{") {
		var err error
		if data, err = yaml.YAMLToJSON(data); err != nil {
			return nil, err
		}
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	return obj, nil
}
