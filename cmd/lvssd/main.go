package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/config"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/freeze"
	"github.com/lvss/lvss/internal/metrics"
	"github.com/lvss/lvss/internal/server"
	"github.com/lvss/lvss/internal/smbshare"
	"github.com/lvss/lvss/internal/version"
	"github.com/lvss/lvss/provider"
)

// usageError is a bad command line: exit status 2, as for lvss.
type usageError struct{ error }

// gcPercent is lvssd's GOGC unless the environment sets one.
const gcPercent = 50

func main() {
	// The freeze guard is this binary run again (internal/freeze): it must
	// start before anything else, flags, logging and catalog included.
	if len(os.Args) > 1 && os.Args[1] == freeze.GuardArg {
		os.Exit(freeze.GuardMain(os.Args[2:]))
	}
	// lvssd's live heap is small (a few MB with a thousand writers) and
	// its garbage comes in bursts (a fan-out to every writer): collecting
	// at half the live heap instead of all of it keeps its memory lower
	// at a CPU cost the profile does not show. $GOGC still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lvssd:", err)
		var u usageError
		// A damaged or unwritable catalog, a [[previous_versions]] path
		// lvss cannot snapshot: each says what to do.
		var h interface{ Hint() string }
		if errors.As(err, &h) && h.Hint() != "" {
			fmt.Fprintln(os.Stderr, "hint:", h.Hint())
		}
		if errors.As(err, &u) {
			fmt.Fprintln(os.Stderr, "hint: run 'lvssd --help'")
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run() error {
	started := time.Now()
	fs := flag.NewFlagSet("lvssd", flag.ContinueOnError)
	socket := fs.String("socket", "/run/lvss/lvssd.sock", "Unix socket to serve requesters, writers and admin tools on")
	stateDir := fs.String("state-dir", "/var/lib/lvss", "directory for the catalog (snapshots, saved documents, event log)")
	runDir := fs.String("run-dir", "/run/lvss", "directory for runtime state (must be on a tmpfs: it is written while filesystems are frozen)")
	cfgPath := fs.String("config", config.DefaultPath, "TOML config file (docs/configuration.md); the defaults apply when the default file is absent")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	checkOnly := fs.Bool("check-config", false, "validate the config file (--config, or the FILE argument) and exit: 0 valid, 1 not")
	showVersion := fs.Bool("version", false, "print the version, commit and build date and exit")
	thawStale := fs.Bool("thaw-stale", false, "thaw what dead freeze guards left frozen (records in --run-dir) and exit; lvssd.service runs it as ExecStopPost")
	adopt := fs.Bool("adopt-snapshots", false, "at start, add to the catalog every snapshot the providers hold and the catalog lacks (after a damaged catalog was moved aside; docs/reliability.md)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: lvssd [flags]
       lvssd --check-config [FILE]
       lvssd --version

lvssd coordinates requesters (backup tools), writers (applications) and snapshot
providers, following the Volume Shadow Copy Service model. Under systemd it
runs as lvssd.service and reports readiness and status through sd_notify.

Flags:
`)
		fs.PrintDefaults()
	}
	// The flag package would print the whole usage with every mistake; the
	// error and a hint say more.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fs.Usage()
			return nil
		}
		return usageError{err}
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	switch {
	case *showVersion:
		fmt.Println("lvssd", version.Get())
		return nil
	case *checkOnly:
		if fs.NArg() > 1 {
			return usageError{errors.New("--check-config takes at most one FILE")}
		}
		if fs.NArg() == 1 {
			*cfgPath, explicit = fs.Arg(0), true
		}
		return checkConfig(*cfgPath, explicit)
	case *thawStale:
		return thawStaleRecords(*runDir)
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected argument %q (lvssd takes flags only; --check-config takes a FILE)", fs.Arg(0))}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	// Relative directories would change meaning for anything that resolves
	// them later (providers, the freeze guard's records): fix them now.
	if *cfgPath != "" {
		// lvss status shows it; relative, it would mean nothing there.
		abs, err := filepath.Abs(*cfgPath)
		if err != nil {
			return err
		}
		*cfgPath = abs
	}
	for _, d := range []*string{socket, stateDir, runDir} {
		abs, err := filepath.Abs(*d)
		if err != nil {
			return err
		}
		*d = abs
	}
	cfg, used, err := config.LoadOrDefault(*cfgPath, explicit)
	if err != nil {
		return err
	}
	for _, d := range []struct{ what, dir string }{{"state directory", *stateDir}, {"run directory", *runDir},
		{"socket directory", filepath.Dir(*socket)}} {
		if err := prepareDir(d.what, d.dir); err != nil {
			return err
		}
	}
	// A guard that was killed while holding leaves records: thaw what
	// they name before anything else (the catalog may be on such a volume).
	thawed, err := freeze.Recover(*runDir, log)
	if err != nil {
		log.Error("freeze recovery", "error", err)
	} else if len(thawed) > 0 {
		log.Warn("thawed filesystems a dead freeze guard left frozen", "mounts", thawed)
	}
	cat, err := catalog.Open(filepath.Join(*stateDir, "catalog.db"))
	if err != nil {
		return err
	}
	defer cat.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	t := cfg.Timeouts
	provs, err := builtinProviders(cfg, *stateDir, *runDir, log)
	if err != nil {
		return err
	}
	keeper, err := previousVersions(ctx, cfg, *runDir, cat, provs, log)
	if err != nil {
		return err
	}
	// Metrics are bound before the coordinator starts, so that an
	// address in use stops lvssd at start-up rather than leaving it
	// running unobserved. They are served until run returns, after the
	// coordinator has closed and before the catalog does (a scrape may
	// be reading it).
	var obs coordinator.Observer
	if network, address := cfg.Metrics.Address(); network != "" {
		m := metrics.New(metrics.Options{SnapshotCounts: cat.CountByVolume, Version: version.Get(), Logger: log})
		ml, err := metrics.Listen(network, address, cfg.Metrics.SocketGroup)
		if err != nil {
			return err
		}
		obs = m
		mctx, mstop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			// An endpoint that fails later is logged, not fatal: backups
			// matter more than their figures.
			if err := m.Serve(mctx, ml); err != nil {
				log.Error("metrics endpoint stopped", "error", err)
			}
		}()
		defer func() { mstop(); <-done }()
		log.Info("metrics listening", "network", network, "address", ml.Addr().String())
	}
	stopDebug, err := serveDebug(context.Background(), cfg.Debug, log)
	if err != nil {
		return err
	}
	defer stopDebug()
	// Remote exposure only when [samba] turns it on: an lvssd that was not
	// told to manage a Samba's shares never runs its tools for it, at
	// start or later.
	var shares coordinator.Shares
	if cfg.Samba.RemoteExposure {
		shares = smbshare.New(smbshare.Options{Conf: cfg.Samba.Config, Net: cfg.Samba.Net, Logger: log.With("samba", cfg.Samba.Config)})
	}
	coord, err := coordinator.New(ctx, coordinator.Options{
		Catalog:               cat,
		Providers:             provider.NewRegistry(provs...),
		Logger:                log,
		MaxSnapshotsPerVolume: cfg.Limits.MaxSnapshotsPerVolume,
		MaxEvents:             cfg.Limits.MaxEvents,
		Freezer:               guardFreezer{runDir: *runDir, log: log},
		Observer:              obs,
		RunDir:                *runDir,
		ThawedAtStart:         thawed,
		AdoptSnapshots:        *adopt,
		Shares:                shares,
		// Every change to the snapshots, whichever path made it, asks
		// for a reconcile of the previous-versions snapdirs (L55).
		SnapshotsChanged: keeper.Trigger,
		Timeouts: coordinator.Timeouts{
			Identify: t.Identify.D(), PrepareBackup: t.PrepareBackup.D(), PrepareSnapshot: t.PrepareSnapshot.D(),
			Freeze: t.Freeze.D(), Thaw: t.Thaw.D(), PostSnapshot: t.PostSnapshot.D(), BackupComplete: t.BackupComplete.D(),
			BackupShutdown: t.BackupShutdown.D(), Abort: t.Abort.D(), Restore: t.Restore.D(), Hold: t.Hold.D(), CreationLease: t.CreationLease.D(),
			RequesterSend: t.RequesterSend.D(), ProviderCall: t.ProviderCall.D(),
		},
	})
	if err != nil {
		return err
	}
	// Its first reconcile (which makes the snapdirs again after a reboot,
	// and repairs what was edited behind lvssd's back) runs in its own
	// goroutine: a slow one does not hold up the socket. Stopped before
	// the catalog closes; the snapdirs stay for Samba.
	startPreviousVersions(keeper, coord)
	defer keeper.Stop()
	access := server.NewAccess(accessRules(cfg.Access), log)
	l, err := server.Listen(*socket)
	if err != nil {
		return err
	}
	defer os.Remove(*socket)
	srv := server.New(coord, access, log, server.WithDaemon(server.Daemon{Started: started, ConfigFile: used,
		Socket: *socket, StateDir: *stateDir, RunDir: *runDir}),
		server.WithPreviousVersions(server.PreviousVersions{Keeper: keeper, SambaConfig: cfg.Samba.Config}))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	// The socket is listening: connections queue until Serve takes them,
	// so systemd may start what depends on lvssd now.
	notify(log, daemon.SdNotifyReady, "STATUS=serving on "+*socket)
	log.Info("lvssd ready", "socket", *socket, "state_dir", *stateDir, "config", orDefaults(used), "version", version.Get().String(), "pid", os.Getpid())
	stopCluster, err := startCluster(ctx, cfg.Cluster, coord, log)
	if err != nil {
		srv.Stop()
		coord.Close(context.Background())
		return err
	}
	select {
	case <-ctx.Done():
		notify(log, daemon.SdNotifyStopping, "STATUS=stopping: releasing sessions and writers")
		log.Info("lvssd stopping")
	case err := <-done:
		stopCluster()
		coord.Close(context.Background())
		return err
	}
	// Before the sessions are released: the cluster parts running abort
	// first, and the host's lease is revoked, so the other hosts stop
	// waiting for it.
	stopCluster()
	// Ending the streams releases every session (Abort, BackupShutdown,
	// auto-release snapshots deleted) before the catalog closes.
	srv.Stop()
	coord.Close(context.Background())
	return nil
}

// checkConfig is --check-config: the file is read and validated as lvssd
// would at start, and nothing else happens.
func checkConfig(path string, explicit bool) error {
	_, used, err := config.LoadOrDefault(path, explicit)
	if err != nil {
		return err
	}
	if used == "" {
		fmt.Printf("%s does not exist: lvssd would run with the defaults (docs/configuration.md)\n", path)
		return nil
	}
	fmt.Printf("%s: valid\n", used)
	return nil
}

// notify tells systemd (Type=notify) about lvssd's state; outside systemd
// (no NOTIFY_SOCKET) it does nothing.
func notify(log *slog.Logger, state ...string) {
	if _, err := daemon.SdNotify(false, strings.Join(state, "\n")); err != nil {
		log.Warn("sd_notify", "error", err)
	}
}

// thawStaleRecords is --thaw-stale: after lvssd ended in any way, thaw
// what the records of guards that are no longer running name. A guard
// killed with lvssd's whole cgroup (SIGKILL) cannot thaw by itself;
// systemd runs this as ExecStopPost, so the thaw does not wait for the
// next start.
func thawStaleRecords(runDir string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	thawed, err := freeze.Recover(runDir, log)
	if len(thawed) > 0 {
		log.Warn("thawed filesystems a dead freeze guard left frozen", "mounts", thawed)
	}
	return err
}

// accessRules hands [access] to the server. Config has checked every class
// ID; one that does not parse here cannot happen.
func accessRules(a config.Access) server.Rules {
	r := server.Rules{Users: a.Users, Groups: a.Groups, RequesterUsers: a.RequesterUsers, RequesterGroups: a.RequesterGroups,
		WriterUsers: a.WriterUsers, WriterGroups: a.WriterGroups, AdminUsers: a.AdminUsers, AdminGroups: a.AdminGroups}
	for i, wc := range a.WriterClasses {
		id, _ := uuid.Parse(wc.ClassID)
		r.WriterClasses = append(r.WriterClasses, server.ClassBinding{ClassID: id, Name: wc.Name, Users: wc.Users, Groups: wc.Groups,
			Key: fmt.Sprintf("access.writer_class[%d]", i)})
	}
	return r
}

// orDefaults names the config file in use for the log.
func orDefaults(used string) string {
	if used == "" {
		return "(none: defaults)"
	}
	return used
}
