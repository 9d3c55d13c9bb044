//go:build !lvss_nosqlite

package main

import (
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/lvss/lvss/internal/clierr"
	execwriter "github.com/lvss/lvss/writers/exec"
	sqlitewriter "github.com/lvss/lvss/writers/sqlite"
)

func init() { writerCommands = append(writerCommands, newSQLiteCommand) }

func newSQLiteCommand(g *globalOptions) *cobra.Command {
	var (
		cfg               sqlitewriter.Config
		checkpoint, level string
	)
	cmd := &cobra.Command{
		Use:   "sqlite --db PATH [--db PATH...] [flags]",
		Short: "Hold SQLite databases consistent for each snapshot",
		Long: `sqlite is the writer for SQLite databases (WAL or rollback journal). For each
snapshot set it takes part in, it opens one dedicated connection per
database, checkpoints the WAL at PrepareForSnapshot, takes the write lock
with a literal BEGIN IMMEDIATE at Freeze so that no transaction commits
during the snapshot, and releases it at Thaw, Abort or BackupShutdown.

Applications need a busy timeout longer than the freeze window, so their
writes wait for the thaw instead of failing (docs/writer-sqlite.md).

The writer is front-end level, frozen with the applications. When the
application writing the database has a writer of its own that must pause it
first (a front-end writer, perhaps on another host of a cluster set), run
this one with --level back-end: it takes the lock only after every
front-end writer froze.`,
		Example: `  lvss-writer sqlite --db /srv/app/app.db
  lvss-writer sqlite --name shop --db /srv/shop/orders.db --db /srv/shop/users.db --checkpoint FULL
  lvss-writer sqlite --name ledger --level back-end --db /srv/ledger/ledger.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if len(cfg.Databases) == 0 {
				return clierr.Usagef("--db is required")
			}
			for i, p := range cfg.Databases {
				if cfg.Databases[i], err = filepath.Abs(p); err != nil {
					return clierr.Usagef("--db %s: %v", p, err)
				}
			}
			cfg.Checkpoint = sqlitewriter.CheckpointMode(checkpoint)
			if level != "" {
				if cfg.Level, err = execwriter.ParseLevel(level); err != nil {
					return clierr.Usagef("--level: %v", err)
				}
			}
			cfg.Logger = log
			id, w, err := sqlitewriter.New(cfg)
			if err != nil {
				return clierr.Usagef("%v", err)
			}
			defer w.Close()
			return host(cmd.Context(), g, log, id, w, 0)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&cfg.Databases, "db", nil, "database file (repeatable)")
	f.StringVar(&cfg.Name, "name", "", "writer name (default sqlite)")
	f.StringVar(&cfg.InstanceName, "instance-name", "", "instance name, unique per class (needed to run several sqlite writers)")
	f.DurationVar(&cfg.FreezeTimeout, "freeze-timeout", 0, "Freeze→Thaw window to ask for (default 60s; lvssd may grant less)")
	f.DurationVar(&cfg.LockTimeout, "lock-timeout", 0, "how long Freeze waits for the write lock (default 5s)")
	f.StringVar(&level, "level", "", "application level: front-end (default), back-end or system")
	f.StringVar(&checkpoint, "checkpoint", "PASSIVE", "WAL checkpoint at PrepareForSnapshot: PASSIVE, FULL, RESTART, TRUNCATE or NONE")
	return cmd
}
