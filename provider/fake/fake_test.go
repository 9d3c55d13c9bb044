package fake_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lvss/lvss/provider/fake"
	"github.com/lvss/lvss/provider/providertest"
)

// The fake must pass the same suite as real providers, so coordinator
// tests built on it exercise a conforming provider. It keeps everything in
// memory: there is no Restart to check and nothing to read, and its
// Residue is what it holds.
func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{New: func(t *testing.T) providertest.Setup {
		root, _ := filepath.EvalSymlinks(t.TempDir())
		vol, second := filepath.Join(root, "a"), filepath.Join(root, "b")
		for _, d := range []string{vol, second} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		other, _ := filepath.EvalSymlinks(t.TempDir())
		p := fake.New(vol, second)
		return providertest.Setup{
			Provider: p, Volume: vol, Second: second, Unsupported: other, ExposeDir: t.TempDir(),
			Residue: func(*testing.T) []string { return p.Residue() },
			Hold: func(t *testing.T, method string) (<-chan struct{}, func(), bool) {
				held, release := p.HoldAt(method)
				t.Cleanup(release)
				return held, release, true
			},
			Without: map[string]string{
				"ReadSnapshot": "the fake keeps no content: its snapshots are records in memory",
				"Restart":      "the fake keeps its snapshots in memory, which a new value does not share",
			},
		}
	}})
}
