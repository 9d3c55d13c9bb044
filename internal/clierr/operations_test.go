package clierr

import (
	"os"
	"strings"
	"testing"
)

// docs/operations.md explains every error the tools give a hint for: the
// hint is a line, the table says what the error means and what to do.
func TestOperationsDocCoversHints(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for code := range codeHints {
		if !strings.Contains(doc, "| `"+code.Name()+"`") {
			t.Errorf("docs/operations.md, 'When something is wrong', has no row for %s", code.Name())
		}
	}
}
