// Command argocd evaluates relman's Argo CD health check (health.lua) on Release objects with
// gopher-lua, the interpreter Argo CD embeds, in the same sandbox Argo CD gives health checks
// configured in argocd-cm.
//
// Usage:
//
//	go run . [-json] [-script health.lua] PATH...
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

	"sigs.k8s.io/yaml"
)

// Verdict is what the health check says about one object.
type Verdict struct {
	File    string `json:"file"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	asJSON := flag.Bool("json", false, "print one JSON object per line")
	script := flag.String("script", "health.lua", "the health script")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: argocd [-json] [-script health.lua] PATH...\n\n"+
			"Prints the Argo CD health of each object in the JSON or YAML files given (or in the\n"+
			"directories given); - reads standard input.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(os.Stdout, *script, flag.Args(), *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "argocd:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, scriptFile string, paths []string, asJSON bool) error {
	script, err := os.ReadFile(scriptFile)
	if err != nil {
		return err
	}
	files, err := expand(paths)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	for _, file := range files {
		obj, err := readObject(file)
		if err != nil {
			return err
		}
		h, err := Evaluate(string(script), obj)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		v := Verdict{File: file, Name: name(obj), Status: h.Status, Message: h.Message}
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

// readObject reads one object from a JSON or YAML file ("-": standard input).
func readObject(file string) (map[string]any, error) {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if obj == nil {
		return nil, fmt.Errorf("%s: no object", file)
	}
	return obj, nil
}

func name(obj map[string]any) string {
	if meta, ok := obj["metadata"].(map[string]any); ok {
		if n, ok := meta["name"].(string); ok {
			return n
		}
	}
	return ""
}
