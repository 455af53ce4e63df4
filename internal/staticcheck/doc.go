// Package staticcheck holds the checks CI runs over the source itself, as
// tests so that the README's one test command runs them: workflowcheck over
// the workflow code (determinism) and go vet over everything.
package staticcheck
