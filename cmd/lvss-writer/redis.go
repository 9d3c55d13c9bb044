//go:build !lvss_noredis

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	goredis "github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/internal/clierr"
	rediswriter "github.com/lvss/lvss/writers/redis"
)

func init() { writerCommands = append(writerCommands, newRedisCommand) }

func newRedisCommand(g *globalOptions) *cobra.Command {
	var (
		cfg          rediswriter.Config
		passwordFile string
	)
	cmd := &cobra.Command{
		Use:   "redis [--addr HOST:PORT | --socket-path PATH] [flags]",
		Short: "Hold a Redis 7 server's files consistent for each snapshot",
		Long: `redis is the writer for a Redis 7 server on this machine. At every Identify it
asks the server where it keeps its data (CONFIG GET dir, dbfilename,
appendonly, appenddirname) and declares one component, "dataset": the AOF
directory when appendonly is yes (plus dump.rdb if present), else the RDB
file.

What it holds, and for how long: at Freeze it sends
CLIENT PAUSE <bound> WRITE, which holds every client's write commands
(reads go on), then makes the files match the paused dataset: with the AOF
on it waits until the AOF buffer is written out (usually at once); with it
off it waits out a save already running, runs BGSAVE and waits for it. The
pause lasts until Thaw, Abort or BackupShutdown (CLIENT UNPAUSE): normally a
few milliseconds with the AOF, the length of a BGSAVE without. The bound is
the Freeze→Thaw window plus one second, so if this process dies while
frozen the server's writes resume by themselves at that bound. If the files
cannot be made to match within half the window, the pause is lifted and
Freeze fails.

The password comes from --password-file, else $REDISCLI_AUTH. The ACL user
needs: +client|pause +client|unpause +client|setname +config|get +info
+bgsave +lastsave (docs/writer-redis.md).

Restores: PreRestore refuses while the server answers (it would write its
in-memory dataset over the restored files); PostRestore checks the
restored RDB or AOF files and leaves the server stopped. With
--stop-command the writer runs that command instead of refusing and waits
until the server no longer answers; with --start-command PostRestore
starts the server after checking the files (VSS_RS_ALL), or after a
restore that wrote nothing (VSS_RS_NONE) if the writer stopped it, and
waits until it answers PING. VSS_RS_FAILED never starts it.`,
		Example: `  lvss-writer redis
  lvss-writer redis --socket-path /run/redis/redis-server.sock --user lvss --password-file /etc/lvss/redis.pass
  lvss-writer redis --addr 127.0.0.1:6380 --instance-name cache --freeze-timeout 20s
  lvss-writer redis --stop-command 'systemctl stop redis-server' --start-command 'systemctl start redis-server'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("addr") && cfg.SocketPath != "" {
				return clierr.Usagef("--addr and --socket-path exclude each other")
			}
			switch {
			case passwordFile != "":
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return clierr.Usagef("--password-file: %v", err)
				}
				// The first line: a trailing newline is not part of it.
				cfg.Password, _, _ = strings.Cut(string(b), "\n")
				cfg.Password = strings.TrimSuffix(cfg.Password, "\r")
			default:
				cfg.Password = os.Getenv("REDISCLI_AUTH")
			}
			// go-redis reports what it does on its own (reconnects, ...)
			// through a global logger that writes to stderr; route it
			// through ours so that --log-format json stays JSON.
			goredis.SetLogger(redisDriverLog{log})
			cfg.Logger = log
			id, w, err := rediswriter.New(cfg)
			if err != nil {
				return clierr.Usagef("%v", err)
			}
			defer w.Close()
			return host(cmd.Context(), g, log, id, w, 0)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", rediswriter.DefaultAddr, "the server's TCP address, HOST:PORT")
	f.StringVar(&cfg.SocketPath, "socket-path", "", "the server's Unix socket (instead of --addr)")
	f.StringVar(&cfg.Username, "user", "", "ACL user (default: the default user)")
	f.StringVar(&passwordFile, "password-file", "", "file whose first line is the password (default $REDISCLI_AUTH)")
	f.StringVar(&cfg.Name, "name", "", "writer name (default redis)")
	f.StringVar(&cfg.InstanceName, "instance-name", "", "instance name, unique per class (default the server's address)")
	f.StringVar(&cfg.StopCommand, "stop-command", "", "shell command that stops the server, run by PreRestore while it answers (e.g. 'systemctl stop redis-server'); default: refuse")
	f.StringVar(&cfg.StartCommand, "start-command", "", "shell command that starts the server, run by PostRestore after a restore (e.g. 'systemctl start redis-server'); default: leave it stopped")
	f.DurationVar(&cfg.FreezeTimeout, "freeze-timeout", 0, "Freeze→Thaw window to ask for, and the pause's bound (default 60s; lvssd may grant less)")
	f.DurationVar(&cfg.PersistTimeout, "persist-timeout", 0, "how long Freeze may wait for the files under the pause (default half the window)")
	return cmd
}

// redisDriverLog is go-redis's logger interface over slog, at debug level:
// the writer reports whatever matters itself.
type redisDriverLog struct{ log *slog.Logger }

func (l redisDriverLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
