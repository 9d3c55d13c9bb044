package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/config"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/freeze"
	"github.com/lvss/lvss/internal/server"
	"github.com/lvss/lvss/internal/version"
	"github.com/lvss/lvss/provider"
)

func main() {
	// The freeze guard is this binary run again (internal/freeze): it must
	// start before anything else, flags, logging and catalog included.
	if len(os.Args) > 1 && os.Args[1] == freeze.GuardArg {
		os.Exit(freeze.GuardMain(os.Args[2:]))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lvssd:", err)
		os.Exit(1)
	}
}

func run() error {
	started := time.Now()
	fs := flag.NewFlagSet("lvssd", flag.ContinueOnError)
	socket := fs.String("socket", "/run/lvss/lvssd.sock", "Unix socket to serve requesters, writers and admin tools on")
	stateDir := fs.String("state-dir", "/var/lib/lvss", "directory for the catalog (snapshots, saved documents, event log)")
	runDir := fs.String("run-dir", "/run/lvss", "directory for runtime state (must be on a tmpfs: it is written while filesystems are frozen)")
	cfgPath := fs.String("config", "", "TOML config file (see docs/configuration.md); defaults apply without one")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: lvssd [flags]\n\nlvssd coordinates requesters (backup tools), writers (applications) and snapshot\nproviders, following the Volume Shadow Copy Service model.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
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
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	for _, d := range []string{*stateDir, *runDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// A guard that was killed while holding leaves records: thaw what
	// they name before anything else (the catalog may be on such a volume).
	if thawed, err := freeze.Recover(*runDir, log); err != nil {
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
	coord, err := coordinator.New(ctx, coordinator.Options{
		Catalog:               cat,
		Providers:             provider.NewRegistry(provs...),
		Logger:                log,
		MaxSnapshotsPerVolume: cfg.Limits.MaxSnapshotsPerVolume,
		Freezer:               guardFreezer{runDir: *runDir, log: log},
		Timeouts: coordinator.Timeouts{
			Identify: t.Identify.D(), PrepareBackup: t.PrepareBackup.D(), PrepareSnapshot: t.PrepareSnapshot.D(),
			Freeze: t.Freeze.D(), Thaw: t.Thaw.D(), PostSnapshot: t.PostSnapshot.D(), BackupComplete: t.BackupComplete.D(),
			BackupShutdown: t.BackupShutdown.D(), Abort: t.Abort.D(), Hold: t.Hold.D(), CreationLease: t.CreationLease.D(),
			RequesterSend: t.RequesterSend.D(),
		},
	})
	if err != nil {
		return err
	}
	access := server.NewAccess(cfg.Access.Users, cfg.Access.Groups, log)
	l, err := server.Listen(*socket)
	if err != nil {
		return err
	}
	defer os.Remove(*socket)
	srv := server.New(coord, access, log, server.WithDaemon(server.Daemon{Started: started, ConfigFile: *cfgPath,
		Socket: *socket, StateDir: *stateDir, RunDir: *runDir}))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	log.Info("lvssd ready", "version", version.Get().String(), "socket", *socket, "state_dir", *stateDir, "pid", os.Getpid())
	select {
	case <-ctx.Done():
		log.Info("lvssd stopping")
	case err := <-done:
		coord.Close(context.Background())
		return err
	}
	// Ending the streams releases every session (Abort, BackupShutdown,
	// auto-release snapshots deleted) before the catalog closes.
	srv.Stop()
	coord.Close(context.Background())
	return nil
}
