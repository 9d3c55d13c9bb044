package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/config"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/prevver"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vsserr"
)

// checkTimeout bounds the providers' answers about the [[previous_versions]]
// paths at start: a provider that does not answer (an exec provider's
// command that hangs) must not keep lvssd from starting for good.
const checkTimeout = 30 * time.Second

// previousVersions checks each [[previous_versions]] path (it must be a
// directory on a volume a provider snapshots: lvssd does not start
// otherwise, saying why and what to do) and makes the keeper of their
// snapdirs under the run directory. The keeper runs once the coordinator
// exists (startPreviousVersions).
func previousVersions(ctx context.Context, cfg config.Config, runDir string, cat *catalog.DB, provs []provider.Provider,
	log *slog.Logger) (*prevver.Keeper, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	var shares []prevver.Share
	seen := map[string]string{}
	for i, pv := range cfg.PreviousVersions {
		key := fmt.Sprintf("previous_versions[%d].path", i)
		path, err := prevver.Check(ctx, key, pv.Path, provs)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[path]; dup {
			return nil, vsserr.New(vsserr.InvalidArg, "%s %s is %s, which %s names already: lvssd keeps one snapdir per directory", key, pv.Path, path, prev)
		}
		seen[path] = key
		shares = append(shares, prevver.Share{Path: path, AllPersistent: pv.AllPersistent, Dir: prevver.Snapdir(runDir, path)})
	}
	return prevver.New(prevver.Options{Shares: shares, Root: filepath.Join(runDir, prevver.DirName), Catalog: cat, Logger: log}), nil
}

// startPreviousVersions starts the keeper's goroutine: it reconciles every
// snapdir now, and again whenever the coordinator says the snapshots
// changed; what it does goes to the event log.
func startPreviousVersions(k *prevver.Keeper, coord *coordinator.Coordinator) {
	k.Start(func(level string, code vsserr.HRESULT, msg string, kv ...string) {
		coord.Logf(context.Background(), coordinator.Level(level), code, msg, kv...)
	})
}
