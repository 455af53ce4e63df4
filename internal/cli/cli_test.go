package cli

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func TestParseRefusesStrayArguments(t *testing.T) {
	var out bytes.Buffer
	fs := NewFlagSet("stampd", "serve", "serve --name N", &out)
	n := fs.String("name", "", "stamp name")
	if err := Parse(fs, []string{"--name", "a"}); err != nil || *n != "a" {
		t.Fatalf("parse: %v, name %q", err, *n)
	}
	err := Parse(fs, []string{"--name", "a", "stray"})
	if err == nil || !strings.Contains(err.Error(), `stampd serve: unexpected argument "stray"`) {
		t.Fatalf("stray argument: %v", err)
	}
	if err := Parse(fs, []string{"-h"}); err != flag.ErrHelp || !strings.Contains(out.String(), "Usage: stampd serve --name N") {
		t.Fatalf("help: %v, printed %q", err, out.String())
	}
}
