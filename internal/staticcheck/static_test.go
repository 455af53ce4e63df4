package staticcheck

import (
	"os/exec"
	"strings"
	"testing"
)

// WorkflowcheckVersion pins the SDK's determinism checker.
const WorkflowcheckVersion = "v0.6.0"

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("static check (skipped with -short)")
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestWorkflowsAreDeterministic runs workflowcheck over workflows/: no map
// iteration, no time.Now, no goroutines, no I/O in workflow code.
func TestWorkflowsAreDeterministic(t *testing.T) {
	run(t, "go", "run", "go.temporal.io/sdk/contrib/tools/workflowcheck@"+WorkflowcheckVersion, "./workflows/...")
}

// TestGoVet runs go vet over the whole module.
func TestGoVet(t *testing.T) {
	run(t, "go", "vet", "./...")
}
