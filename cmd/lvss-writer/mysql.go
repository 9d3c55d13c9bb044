//go:build !lvss_nomysql

package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lvss/lvss/internal/clierr"
	mysqlwriter "github.com/lvss/lvss/writers/mysql"
)

func init() { writerCommands = append(writerCommands, newMySQLCommand) }

func newMySQLCommand(g *globalOptions) *cobra.Command {
	var (
		cfg                           mysqlwriter.Config
		passwordFile, strategy, stage string
	)
	cmd := &cobra.Command{
		Use:   "mysql [--dsn DSN] [--password-file FILE] [flags]",
		Short: "Hold a MariaDB or MySQL server's commits for each snapshot",
		Long: `mysql is the writer for a MariaDB or MySQL server; it runs on the server's
host. For each snapshot set it takes part in, it opens one connection to the
server and holds it from PrepareForSnapshot until Thaw, Abort or
BackupShutdown:

  backup-stage (MariaDB 10.4.1 and later; the default there):
    PrepareForSnapshot  BACKUP STAGE START (--prepare-stage: also FLUSH,
                        BLOCK_DDL); nothing transactional is blocked yet
    Freeze              BACKUP STAGE BLOCK_COMMIT: no transaction commits
    Thaw/Abort/...      BACKUP STAGE END
  ftwrl (MySQL, older MariaDB):
    PrepareForSnapshot  FLUSH TABLES (nothing held)
    Freeze              FLUSH TABLES WITH READ LOCK: no write, no commit
    Thaw/Abort/...      UNLOCK TABLES

Commits are held for the freeze window only: from Freeze until Thaw (the
snapshot's commit, typically milliseconds), never longer than the
Freeze→Thaw window (--freeze-timeout, capped by lvssd), after which the
writer releases on its own. Each lock statement waits at most
--lock-timeout (the session's lock_wait_timeout) for the server's locks,
then fails the event with the server's error. The binary log position and
GTIDs of the frozen point go into the component's backup metadata.

The server's page flushing goes on while commits are held: the snapshot is
consistent only when all the server's files are captured at one instant
(an atomic snapshot, e.g. btrfs), and the writer vetoes a snapshot set that
splits them or copies them file by file (the copy provider).

The account needs RELOAD and BINLOG MONITOR (MariaDB 10.5+) or REPLICATION
CLIENT; PROCESS too if tables use DATA DIRECTORY (docs/writer-mysql.md).

Restores: PreRestore refuses while the server runs (naming its PID);
PostRestore checks the restored files and leaves the server stopped. With
--stop-command the writer runs that command instead of refusing and waits
until the server is gone; with --start-command PostRestore starts the
server after checking the files (VSS_RS_ALL), or after a restore that
wrote nothing (VSS_RS_NONE) if the writer stopped it, and waits until it
answers. VSS_RS_FAILED never starts it.`,
		Example: `  lvss-writer mysql      # as root, through /run/mysqld/mysqld.sock (unix_socket auth)
  lvss-writer mysql --dsn 'lvss@unix(/run/mysqld/mysqld.sock)/' --password-file /etc/lvss/mysql.pw
  lvss-writer mysql --dsn 'lvss@tcp(127.0.0.1:3307)/' --password-file /etc/lvss/mysql.pw --instance-name db2 --strategy ftwrl
  lvss-writer mysql --stop-command 'systemctl stop mariadb' --start-command 'systemctl start mariadb'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return clierr.Usagef("--password-file: %v", err)
				}
				cfg.Password = strings.TrimRight(string(b), "\r\n")
				if cfg.Password == "" {
					return clierr.Usagef("--password-file %s is empty", passwordFile)
				}
			}
			if cfg.Password == "" {
				cfg.Password = os.Getenv("LVSS_MYSQL_PASSWORD")
			}
			cfg.Strategy = mysqlwriter.Strategy(strategy)
			cfg.PrepareStage = mysqlwriter.Stage(stage)
			cfg.Logger = log
			id, w, err := mysqlwriter.New(cfg)
			if err != nil {
				return clierr.Usagef("%v", err)
			}
			defer w.Close()
			log.Info("mysql writer", "server", w.Server(), "strategy", strategy)
			return host(cmd.Context(), g, log, id, w, 0)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DSN, "dsn", mysqlwriter.DefaultDSN, "server connection in go-sql-driver/mysql format: USER[:PASSWORD]@unix(SOCKET)/ or USER@tcp(HOST:PORT)/ (put the password in --password-file, not here)")
	f.StringVar(&passwordFile, "password-file", "", "file holding the account's password (one line); else $LVSS_MYSQL_PASSWORD, else the DSN's")
	f.StringVar(&strategy, "strategy", "auto", "backup-stage, ftwrl, or auto (backup-stage on MariaDB 10.4.1+, ftwrl otherwise)")
	f.StringVar(&stage, "prepare-stage", "START", "how far BACKUP STAGE goes at PrepareForSnapshot: START, FLUSH or BLOCK_DDL")
	f.StringVar(&cfg.Name, "name", "", "writer name (default mysql)")
	f.StringVar(&cfg.InstanceName, "instance-name", "", "instance name, unique per class (needed to run several mysql writers)")
	f.StringVar(&cfg.StopCommand, "stop-command", "", "shell command that stops the server, run by PreRestore while it runs (e.g. 'systemctl stop mariadb'); default: refuse")
	f.StringVar(&cfg.StartCommand, "start-command", "", "shell command that starts the server, run by PostRestore after a restore (e.g. 'systemctl start mariadb'); default: leave it stopped")
	f.DurationVar(&cfg.FreezeTimeout, "freeze-timeout", 0, "Freeze→Thaw window to ask for (default 60s; lvssd may grant less)")
	f.DurationVar(&cfg.LockTimeout, "lock-timeout", 0, "longest wait of a lock statement for the server's locks (default 5s, whole seconds)")
	return cmd
}
