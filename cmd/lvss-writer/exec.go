package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/internal/clierr"
	execwriter "github.com/lvss/lvss/writers/exec"
)

func init() { writerCommands = append(writerCommands, newExecCommand) }

func newExecCommand(g *globalOptions) *cobra.Command {
	var (
		cfg                                    execwriter.Config
		classID, level, usage, source, restore string
		timeouts, components                   []string
		hooks                                  = map[string]*string{}
	)
	cmd := &cobra.Command{
		Use:   "exec --name NAME --component NAME=PATH [--on-EVENT CMD...] [flags]",
		Short: "Turn hook scripts into a VSS writer",
		Long: `exec runs a shell command (sh -c) for each writer event, so existing
pre/post snapshot hooks become a long-lived VSS writer: the freeze hook runs
at Freeze, the thaw hook at Thaw, and lvss guarantees the thaw (or the
abort hook) within the freeze window, on every failure path.

Exit 0 is success, 75 is VSS_E_WRITERERROR_RETRYABLE, anything else
VSS_E_WRITERERROR_NONRETRYABLE; the last line of stderr is the message. A
hook that overruns its timeout is VSS_E_WRITERERROR_TIMEOUT: keep hook
timeouts below lvssd's deadline for the event. Abort may arrive more than
once: hooks must be idempotent. Hooks run in /, with TMPDIR on a tmpfs and
the event's facts in LVSS_* variables (docs/writer-exec.md lists them).

--hook-dir runs a directory of fsfreeze-hook.d scripts (each called with
"freeze", then "thaw" at Thaw and Abort), so qemu-guest-agent hooks
migrate unchanged.

With --on-pre-restore or --on-post-restore the writer takes part in
restores: pre-restore runs before the files are put back (stop the
application, or exit 75 to refuse), post-restore after, with the restore
facts in LVSS_RESTORE_COMPONENTS, LVSS_RESTORE_OPTIONS, LVSS_NEW_TARGETS,
LVSS_FILE_RESTORE_STATUS (VSS_RS_ALL, VSS_RS_NONE, VSS_RS_FAILED, ...) and
LVSS_ALTERNATE_LOCATIONS.`,
		Example: `  lvss-writer exec --name nginx --component html=/srv/www \
      --on-freeze 'nginx -s stop' --on-thaw 'systemctl start nginx'
  lvss-writer exec --name legacy --hook-dir /etc/qemu/fsfreeze-hook.d \
      --component data=/srv/data --timeout freeze=10s
  lvss-writer exec --name app --component data=/srv/app \
      --on-pre-restore 'systemctl stop app' \
      --on-post-restore '[ "$LVSS_FILE_RESTORE_STATUS" != VSS_RS_FAILED ] && systemctl start app'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			cfg.Logger = log
			cfg.Hooks = map[string]string{}
			for ev, c := range hooks {
				if *c != "" {
					cfg.Hooks[ev] = *c
				}
			}
			if classID != "" {
				if cfg.ClassID, err = uuid.Parse(strings.Trim(classID, "{}")); err != nil {
					return clierr.Usagef("--class-id: %v", err)
				}
			}
			for _, p := range []struct {
				flag, val string
				set       func(string) error
			}{
				{"--level", level, func(s string) (err error) { cfg.Level, err = execwriter.ParseLevel(s); return }},
				{"--usage", usage, func(s string) (err error) { cfg.Usage, err = execwriter.ParseUsage(s); return }},
				{"--source", source, func(s string) (err error) { cfg.Source, err = execwriter.ParseSource(s); return }},
				{"--restore-method", restore, func(s string) (err error) { cfg.RestoreMethod, err = execwriter.ParseRestoreMethod(s); return }},
			} {
				if p.val != "" {
					if err := p.set(p.val); err != nil {
						return clierr.Usagef("%s: %v", p.flag, err)
					}
				}
			}
			cfg.Timeouts = map[string]time.Duration{}
			for _, t := range timeouts {
				ev, d, err := execwriter.ParseTimeout(t)
				if err != nil {
					return clierr.Usagef("--timeout: %v", err)
				}
				cfg.Timeouts[ev] = d
			}
			for _, c := range components {
				comp, err := execwriter.ParseComponent(c)
				if err != nil {
					return clierr.Usagef("--component: %v", err)
				}
				cfg.Components = append(cfg.Components, comp)
			}
			id, w, err := execwriter.New(cfg)
			if err != nil {
				return clierr.Usagef("%v", err)
			}
			// The SDK's own releases (window expiry, lost lvssd, SIGTERM)
			// wait for the abort hook to finish.
			return host(cmd.Context(), g, log, id, w, w.Timeout(execwriter.EventAbort)+5*time.Second)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", "", "writer name (required)")
	f.StringVar(&classID, "class-id", "", "writer class ID (default: derived from --name, the same on every start)")
	f.StringVar(&cfg.InstanceName, "instance-name", "", "instance name, unique per class (optional)")
	f.StringVar(&level, "level", "", "application level: front-end (default), back-end or system")
	f.DurationVar(&cfg.FreezeTimeout, "freeze-timeout", 0, "Freeze→Thaw window to ask for (default 60s; lvssd may grant less)")
	f.StringVar(&usage, "usage", "", "usage type (default user-data)")
	f.StringVar(&source, "source", "", "source type (default other)")
	f.StringVar(&restore, "restore-method", "", "restore method (default restore-if-can-replace)")
	f.StringArrayVar(&components, "component", nil, "NAME=PATH: a directory (recursive) or file as a file-group component; repeatable")
	f.StringArrayVar(&timeouts, "timeout", nil, "EVENT=DURATION hook timeout, EVENT as in the --on-EVENT flags (e.g. prepare-snapshot=2m); repeatable")
	f.DurationVar(&cfg.DefaultTimeout, "default-timeout", execwriter.DefaultTimeout, "timeout of hooks without their own --timeout")
	f.StringVar(&cfg.HookDir, "hook-dir", "", "directory of fsfreeze-hook.d style scripts (called with freeze / thaw)")
	f.StringVar(&cfg.TmpDir, "tmpdir", "", "tmpfs directory for the hooks' TMPDIRs (default: a tmpfs such as "+execwriter.DefaultTmpDir+")")
	for _, ev := range execwriter.Events() {
		hooks[ev] = f.String("on-"+ev, "", fmt.Sprintf("command (sh -c) to run at %s", ev))
	}
	_ = cmd.MarkFlagRequired("name")
	return cmd
}
