package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lvss/lvss/internal/config"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/freeze"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/btrfs"
	"github.com/lvss/lvss/provider/exec"
	"github.com/lvss/lvss/provider/filecopy"
)

// builtinProviders builds the providers of the config in its preference
// order (providers.order; "exec" stands for every exec provider in file
// order). A provider the order does not name comes last, so none is lost.
func builtinProviders(cfg config.Config, stateDir, runDir string, log *slog.Logger) ([]provider.Provider, error) {
	byName := map[string][]provider.Provider{}
	var all []provider.Provider
	add := func(name string, p provider.Provider) {
		byName[name] = append(byName[name], p)
		all = append(all, p)
	}
	if !cfg.Providers.Btrfs.Disabled {
		p, err := btrfs.New(cfg.Providers.Btrfs, cfg.Limits.MinFree, stateDir, log.With("provider", "btrfs"))
		if err != nil {
			return nil, fmt.Errorf("btrfs provider: %w", err)
		}
		if n, err := strconv.Atoi(os.Getenv(revertKillEnv)); err == nil && n > 0 {
			killAtRevertStep(p, n, log)
		}
		add("btrfs", p)
	}
	for _, e := range cfg.Providers.Exec {
		p, err := exec.New(e, cfg.Timeouts.Hold.D(), runDir, stateDir, log.With("provider", e.Name))
		if err != nil {
			return nil, fmt.Errorf("exec provider %q: %w", e.Name, err)
		}
		add(e.Name, p)
		byName["exec"] = append(byName["exec"], p)
	}
	cp := cfg.Providers.Copy
	if cp.SnapshotDir == "" {
		cp.SnapshotDir = filepath.Join(stateDir, "copies")
	}
	p, err := filecopy.New(cp, cfg.Limits.MinFree, stateDir, log.With("provider", "copy"))
	if err != nil {
		return nil, fmt.Errorf("copy provider: %w", err)
	}
	add("copy", p)

	var out []provider.Provider
	seen := map[provider.Provider]bool{}
	for _, name := range append(append([]string(nil), cfg.Providers.Order...), "") {
		list := byName[name]
		if name == "" {
			list = all
		}
		for _, p := range list {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// revertKillEnv names the test-only fault injection of the revert journal
// (test/e2e TestRevertKilledAtEachStep): when set to N, lvssd kills itself
// with SIGKILL right after the btrfs provider's Nth revert step, as a
// crash or an OOM kill would, so that the next start must finish the
// revert. Nothing else reads it.
const revertKillEnv = "LVSSD_TEST_REVERT_KILL_AT_STEP"

func killAtRevertStep(p *btrfs.Provider, n int, log *slog.Logger) {
	log.Warn("test fault injection: lvssd kills itself at a revert step", "env", revertKillEnv, "step", n)
	var calls atomic.Int32
	p.SetRevertStepHook(func(step string) {
		if int(calls.Add(1)) == n {
			log.Warn("test fault injection: killing lvssd", "after_step", step)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way; take no further step
		}
	})
}

// guardFreezer runs the freeze guard (internal/freeze) as a child process
// of lvssd: it thaws on its own at the hold window, on signals, and when
// lvssd dies.
type guardFreezer struct {
	runDir string
	log    *slog.Logger
}

func (g guardFreezer) Start(ctx context.Context, hold time.Duration) (coordinator.Hold, error) {
	return freeze.Start(ctx, freeze.Options{RunDir: g.runDir, Hold: hold, Logger: g.log})
}
