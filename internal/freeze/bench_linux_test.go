package freeze

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
)

// BenchmarkFreezeThaw measures one hold on an ext4 loop filesystem:
// Freeze (syncfs + FIFREEZE, with the request/reply round trip to the
// guard) and Thaw (FITHAW and the guard's reply). Starting the guard is
// excluded, as the coordinator does it before writers freeze. "dirty"
// writes 64 MiB, unsynced, before each hold (excluded too) to show what
// the flush costs and that syncfs keeps it outside the held time.
//
// Metrics per op: held-ms (first FIFREEZE → last FITHAW, what applications
// feel), sync-ms, fifreeze-ms, fithaw-ms, call-ms (Freeze as the caller
// sees it) and spawn-ms (Start, excluded from ns/op).
func BenchmarkFreezeThaw(b *testing.B) {
	for _, bc := range []struct {
		name  string
		dirty int
	}{{"clean", 0}, {"dirty-64MiB", 64 << 20}} {
		b.Run(bc.name, func(b *testing.B) {
			fs := testenv.LoopFS(b, "ext4", 512<<20)
			runDir := b.TempDir()
			data := make([]byte, bc.dirty)
			var sum Stats
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if bc.dirty > 0 {
					if err := os.WriteFile(filepath.Join(fs.Mount, "dirty"), data, 0o644); err != nil {
						b.Fatal(err)
					}
				}
				g, err := Start(ctx, Options{RunDir: runDir, Hold: 10 * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := g.Freeze(ctx, []string{fs.Mount}); err != nil {
					g.Close()
					b.Fatal(err)
				}
				if _, err := g.Thaw(); err != nil {
					g.Close()
					b.Fatal(err)
				}
				b.StopTimer()
				st := g.Stats()
				if err := g.Close(); err != nil {
					b.Fatal(err)
				}
				sum.Spawn += st.Spawn
				sum.Sync += st.Sync
				sum.Freeze += st.Freeze
				sum.Thaw += st.Thaw
				sum.Held += st.Held
				sum.Call += st.Call
				b.StartTimer()
			}
			b.StopTimer()
			n := float64(b.N)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
			b.ReportMetric(ms(sum.Held), "held-ms")
			b.ReportMetric(ms(sum.Sync), "sync-ms")
			b.ReportMetric(ms(sum.Freeze), "fifreeze-ms")
			b.ReportMetric(ms(sum.Thaw), "fithaw-ms")
			b.ReportMetric(ms(sum.Call), "call-ms")
			b.ReportMetric(ms(sum.Spawn), "spawn-ms")
		})
	}
}
