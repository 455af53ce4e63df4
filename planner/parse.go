package planner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ParseFile reads a plan file (YAML or JSON), expands ${VAR} references with
// lookup (nil: none may appear) and parses it. It does not validate: call
// Validate or Compile.
func ParseFile(path string, lookup func(string) (string, bool)) (Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Plan{}, fmt.Errorf("read plan: %w", err)
	}
	data, err = Expand(data, lookup)
	if err != nil {
		return Plan{}, fmt.Errorf("plan %s: %w", path, err)
	}
	p, err := Parse(data)
	if err != nil {
		return Plan{}, fmt.Errorf("plan %s: %w", path, err)
	}
	return p, nil
}

// Parse reads a plan in JSON (the text starts with '{') or YAML. Unknown
// fields are errors, so that a misspelt key does not silently do nothing.
func Parse(data []byte) (Plan, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return Plan{}, errors.New("the plan is empty")
	}
	if trimmed[0] == '{' {
		return parseJSON(data)
	}
	return parseYAML(data)
}

func parseYAML(data []byte) (Plan, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Plan
	if err := dec.Decode(&p); err != nil {
		if errors.Is(err, io.EOF) {
			return Plan{}, errors.New("the plan is empty")
		}
		return Plan{}, fmt.Errorf("malformed YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Plan{}, errors.New("malformed YAML: more than one document (---): a file holds one plan")
	}
	return p, nil
}

func parseJSON(data []byte) (Plan, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return Plan{}, fmt.Errorf("malformed JSON%s: %w", jsonPosition(data, err), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Plan{}, errors.New("malformed JSON: text after the plan object")
	}
	return p, nil
}

// jsonPosition turns the byte offset of a JSON error into " at line L,
// column C".
func jsonPosition(data []byte, err error) string {
	var off int64
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset - 1 // the offset counts the offending byte

	case errors.As(err, &te):
		off = te.Offset
	default:
		return ""
	}
	off = max(0, min(off, int64(len(data))))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf(" at line %d, column %d", line, col)
}

var varRef = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// Expand replaces ${NAME} with lookup(NAME) and ${NAME:-default} with the
// default when NAME is unset or empty; $${ is a literal ${. Any other $ is
// left alone, so shell commands keep their $VARS. A ${NAME} with no value and
// no default is an error naming every such variable.
func Expand(data []byte, lookup func(string) (string, bool)) ([]byte, error) {
	missing := map[string]bool{}
	out := varRef.ReplaceAllFunc(data, func(m []byte) []byte {
		if string(m) == "$${" {
			return []byte("${")
		}
		sub := varRef.FindSubmatch(m)
		name := string(sub[1])
		if lookup != nil {
			if v, ok := lookup(name); ok && v != "" {
				return []byte(v)
			}
		}
		if sub[2] != nil {
			return sub[3]
		}
		missing[name] = true
		return m
	})
	if len(missing) > 0 {
		names := make([]string, 0, len(missing))
		for n := range missing {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("variables %s are not set: set them in the environment (or with --set NAME=VALUE), "+
			"or give a default as ${NAME:-value}", strings.Join(names, ", "))
	}
	return out, nil
}

// Marshal writes the plan as YAML.
func Marshal(p Plan) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	return b.Bytes(), nil
}
