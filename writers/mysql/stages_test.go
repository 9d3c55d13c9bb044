package mysql

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/writer"
)

// TestPrepareStagesUnderLoad: every strategy and PrepareStage prepares,
// freezes and thaws, eight times over, while an application commits to an
// InnoDB and a MyISAM table back to back, and the application's writes
// never fail. It logs how long PrepareSnapshot and Freeze took and the
// application's slowest write, the figures docs/writer-mysql.md quotes;
// the times are reported, not asserted. Each freeze is held 5 ms,
// standing for the snapshot.
func TestPrepareStagesUnderLoad(t *testing.T) {
	testenv.SkipIfShort(t, "measures freezes under load")
	s := startServer(t, testenv.MariaDBOptions{})
	s.MustExec("CREATE TABLE app.plain (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6)) ENGINE=MyISAM")

	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		slowest = map[string]time.Duration{}
		commits atomic.Int64
		phase   atomic.Value
	)
	phase.Store("")
	for _, table := range []string{"app.probe", "app.probe", "app.plain"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				if _, err := s.app.ExecContext(ctx, "INSERT INTO "+table+" (at) VALUES (NOW(6))"); err != nil {
					if ctx.Err() == nil {
						t.Errorf("application: %v", err)
					}
					return
				}
				commits.Add(1)
				key := phase.Load().(string) + " " + table
				mu.Lock()
				slowest[key] = max(slowest[key], time.Since(start))
				mu.Unlock()
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	const rounds = 8
	for _, tc := range []struct {
		strategy Strategy
		stage    Stage
	}{
		{StrategyBackupStage, StageStart}, {StrategyBackupStage, StageFlush}, {StrategyBackupStage, StageBlockDDL}, {StrategyFTWRL, ""},
	} {
		name := string(tc.strategy) + " " + string(tc.stage)
		phase.Store(name)
		_, w := mustNew(t, Config{DSN: s.dsn(), Strategy: tc.strategy, PrepareStage: tc.stage, Logger: slog.New(slog.DiscardHandler)})
		if _, err := identify(t, w); err != nil {
			t.Fatal(err)
		}
		var prep, frz []time.Duration
		before := commits.Load()
		for range rounds {
			sess := newSession(t, w)
			start := time.Now()
			if err := w.PrepareSnapshot(sess.ctx(), sess.event(writer.EventPrepareSnapshot)); err != nil {
				t.Fatalf("%s: PrepareSnapshot: %v", name, err)
			}
			prep = append(prep, time.Since(start))
			start = time.Now()
			if err := sess.freeze(); err != nil {
				t.Fatalf("%s: Freeze: %v", name, err)
			}
			frz = append(frz, time.Since(start))
			time.Sleep(5 * time.Millisecond)
			if err := sess.thaw(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		slices.Sort(prep)
		slices.Sort(frz)
		mu.Lock()
		t.Logf("%-22s PrepareSnapshot median %7s max %7s; Freeze median %7s max %7s; slowest application write: InnoDB %s, MyISAM %s (%d writes)",
			name, prep[len(prep)/2].Round(time.Microsecond), prep[len(prep)-1].Round(time.Microsecond),
			frz[len(frz)/2].Round(time.Microsecond), frz[len(frz)-1].Round(time.Microsecond),
			slowest[name+" app.probe"].Round(time.Microsecond), slowest[name+" app.plain"].Round(time.Microsecond), commits.Load()-before)
		mu.Unlock()
	}
}
