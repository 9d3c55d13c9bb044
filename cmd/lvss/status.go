package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/clierr"
)

func newStatusCommand(g *globalOptions) *cobra.Command {
	var errs int
	cmd := &cobra.Command{
		Use:   "status [--errors N]",
		Short: "Show what lvssd is doing now: sessions, creation lock, frozen filesystems, writers, snapshots",
		Long: `Show what lvssd is doing right now: its version and uptime, its config
file and directories; the sessions in progress (the requester's pid, user and
command, the session's state and age, the asynchronous call it runs); the
creation lock's holder and how long its lease has left; the filesystems
frozen right now and for how long; the writers, and which are failing; the
snapshots of each volume against limits.max_snapshots_per_volume with the free
space where they are kept; and the latest errors of the event log.

It starts no session, and lvssd answers it without waiting for any writer,
provider or frozen filesystem: it is safe, and useful, while a backup hangs.

--errors N shows the N latest errors (default 10, 0 for none). --json prints
one JSON object (docs/cli.md has its fields).`,
		Example: `  lvss status
  lvss status --errors 0
  lvss status --json | jq '.frozen[] | .mount_point'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if errs < 0 {
				return clierr.Usagef("--errors %d: give a count of 0 or more", errs)
			}
			return status(cmd.Context(), g.socket, errs, g.json, cmd.OutOrStdout())
		},
	}
	cmd.Flags().IntVar(&errs, "errors", 10, "how many of the latest errors to show (0: none)")
	return cmd
}

func status(ctx context.Context, socket string, errs int, asJSON bool, out io.Writer) error {
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	n := errs
	if n == 0 {
		n = -1 // none; 0 would be lvssd's default
	}
	st, err := conn.Status(ctx, n)
	if err != nil {
		return failed("Status", err)
	}
	if asJSON {
		return writeObj(out, statusObj(st))
	}
	_, err = io.WriteString(out, statusText(st))
	return err
}

// ms is a duration in whole milliseconds, for JSON.
func ms(d time.Duration) int64 { return d.Milliseconds() }

// writerFailing: failed in its last session, or its last answer was a
// failure.
func writerFailing(w client.WriterInfo) bool { return w.State.Failed() || w.Failure.Failed() }

func statusObj(st *client.Status) obj {
	now, d := st.Daemon.Now, st.Daemon
	sessions := []obj{}
	for _, s := range st.Sessions {
		sessions = append(sessions, obj{{"session_id", s.SessionID.String()}, {"pid", s.PID}, {"uid", s.UID}, {"command", s.Command},
			{"state", s.State}, {"context", s.Context.String()}, {"snapshot_set_id", sessionText(s.SetID)},
			{"operation", s.Operation}, {"volumes", s.Volumes}, {"started", timeText(s.Started)}, {"age_ms", ms(now.Sub(s.Started))}})
	}
	var lock any
	if l := st.CreationLock; l != nil {
		lock = obj{{"session_id", l.SessionID.String()}, {"snapshot_set_id", sessionText(l.SetID)}, {"since", timeText(l.Since)},
			{"held_ms", ms(now.Sub(l.Since))}, {"lease_expires", timeText(l.LeaseExpiry)}, {"lease_remaining_ms", ms(l.LeaseExpiry.Sub(now))}}
	}
	frozen := []obj{}
	for _, f := range st.Frozen {
		frozen = append(frozen, obj{{"mount_point", f.MountPoint}, {"device", f.Device}, {"type", f.Type}, {"paths", f.Paths},
			{"since", timeText(f.Since)}, {"frozen_ms", ms(now.Sub(f.Since))}, {"guard_pid", f.GuardPID}, {"guard_running", f.GuardRunning}})
	}
	writers, failing := []obj{}, 0
	for _, w := range st.Writers {
		if writerFailing(w) {
			failing++
		}
		o := obj{{"name", w.Name}, {"instance_name", w.InstanceName}, {"instance_id", w.InstanceID.String()}, {"writer_id", w.WriterID.String()},
			{"pid", w.PID}, {"uid", w.UID}}
		o = stateFields(o, "state", w.State)
		o = hrFields(o, "last_error", w.Failure)
		o = append(o, field{"application_message", w.ApplicationMessage}, field{"last_session_id", sessionText(w.LastSessionID)},
			field{"failing", writerFailing(w)})
		writers = append(writers, o)
	}
	volumes := []obj{}
	for _, v := range st.Volumes {
		volumes = append(volumes, obj{{"volume", v.Volume}, {"snapshots", v.Snapshots}, {"max_snapshots", st.MaxSnapshotsPerVolume},
			{"provider", v.Provider}, {"snapshot_dir", v.SnapshotDir}, {"free_bytes", v.FreeBytes}, {"total_bytes", v.TotalBytes},
			{"space_error", v.SpaceError}})
	}
	provs := []obj{}
	for _, p := range st.Providers {
		provs = append(provs, obj{{"name", p.Name}, {"provider_id", p.ProviderID.String()}, {"needs_freeze", p.NeedsFreeze},
			{"snapshot_dir", p.SnapshotDir}, {"free_bytes", p.FreeBytes}, {"total_bytes", p.TotalBytes}, {"space_error", p.SpaceError}})
	}
	errs := []obj{}
	for _, e := range st.RecentErrors {
		errs = append(errs, eventObj(e))
	}
	recActions := []obj{}
	for _, a := range st.Recovery.Actions {
		o := obj{{"action", a.Action}, {"object", a.Object}, {"volume", a.Volume}, {"detail", a.Detail}}
		recActions = append(recActions, hrFields(o, "error", a.Error))
	}
	return obj{
		{"daemon", obj{{"version", d.Version}, {"commit", d.Commit}, {"build_date", d.BuildDate}, {"dirty", d.Dirty}, {"pid", d.PID},
			{"started", timeText(d.Started)}, {"uptime_ms", ms(d.Uptime())}, {"config_file", d.ConfigFile}, {"socket", d.Socket},
			{"state_dir", d.StateDir}, {"run_dir", d.RunDir}}},
		{"sessions", sessions},
		{"creation_lock", lock},
		{"frozen", frozen},
		{"writers", obj{{"subscribed", len(st.Writers)}, {"failing", failing}, {"list", writers}}},
		{"max_snapshots_per_volume", st.MaxSnapshotsPerVolume},
		{"volumes", volumes},
		{"providers", provs},
		{"recent_errors", errs},
		{"recovery", obj{{"at", timeText(st.Recovery.At)}, {"took_ms", ms(st.Recovery.Took)}, {"actions", recActions}}},
	}
}

// age is a duration as status prints it: to the millisecond under a
// second, the tenth of a second under a minute, the second under an hour,
// the minute above.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// humanBytes is a size in binary units, one decimal.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, u := float64(n)/unit, 0
	for f >= unit && u < 5 {
		f /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTPE"[u])
}

// spaceText is "1.2 GiB free of 4.0 GiB", or why it is unknown.
func spaceText(free, total uint64, why string) string {
	if why != "" {
		return "free space unknown: " + why
	}
	return humanBytes(free) + " free of " + humanBytes(total)
}

func statusText(st *client.Status) string {
	var b strings.Builder
	d, now := st.Daemon, st.Daemon.Now
	v := d.Version
	if d.Commit != "" && d.Commit != "unknown" {
		c := d.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if d.Dirty {
			c += "+dirty"
		}
		v += " (commit " + c + ")"
	}
	fmt.Fprintf(&b, "lvssd %s, pid %d, up %s (since %s)\n", v, d.PID, age(d.Uptime()), d.Started.UTC().Format(time.RFC3339))
	cfg := d.ConfigFile
	if cfg == "" {
		cfg = "none (defaults)"
	}
	fmt.Fprintf(&b, "   Config file: %s\n", cfg)
	if d.Socket != "" {
		fmt.Fprintf(&b, "   Socket: %s, state dir: %s, run dir: %s\n", d.Socket, d.StateDir, d.RunDir)
	}

	fmt.Fprintf(&b, "Sessions: %d\n", len(st.Sessions))
	for _, s := range st.Sessions {
		who := fmt.Sprintf("pid %d, uid %d", s.PID, s.UID)
		if s.Command != "" {
			who += ": " + s.Command
		}
		fmt.Fprintf(&b, "   %s (%s)\n", s.SessionID, who)
		what := fmt.Sprintf("state %s, %s, age %s", s.State, s.Context, age(now.Sub(s.Started)))
		if s.Operation != "" {
			what = s.Operation + " running; " + what
		}
		fmt.Fprintf(&b, "      %s\n", what)
		if s.SetID != uuid.Nil {
			fmt.Fprintf(&b, "      Snapshot set %s, %d volume%s\n", s.SetID, s.Volumes, plural(s.Volumes, "", "s"))
		}
	}
	if l := st.CreationLock; l != nil {
		fmt.Fprintf(&b, "Creation lock: session %s (set %s), held %s, lease ends in %s\n",
			l.SessionID, l.SetID, age(now.Sub(l.Since)), age(l.LeaseExpiry.Sub(now)))
	} else {
		b.WriteString("Creation lock: free\n")
	}
	if len(st.Frozen) == 0 {
		b.WriteString("Frozen filesystems: none\n")
	} else {
		fmt.Fprintf(&b, "Frozen filesystems: %d\n", len(st.Frozen))
	}
	for _, f := range st.Frozen {
		fmt.Fprintf(&b, "   %s (%s, %s) frozen for %s by guard pid %d", f.MountPoint, f.Type, f.Device, age(now.Sub(f.Since)), f.GuardPID)
		if !f.GuardRunning {
			b.WriteString(", which is gone: lvssd thaws it when it reaps the guard or restarts")
		}
		if len(f.Paths) > 0 {
			fmt.Fprintf(&b, "; for %s", strings.Join(f.Paths, ", "))
		}
		b.WriteByte('\n')
	}
	failing := 0
	for _, w := range st.Writers {
		if writerFailing(w) {
			failing++
		}
	}
	fmt.Fprintf(&b, "Writers: %d subscribed, %d failing\n", len(st.Writers), failing)
	for _, w := range st.Writers {
		name := w.Name
		if w.InstanceName != "" {
			name += " (" + w.InstanceName + ")"
		}
		fmt.Fprintf(&b, "   '%s' pid %d: %s", name, w.PID, w.State)
		if writerFailing(w) {
			fmt.Fprintf(&b, ", last error %s", w.Failure)
			if w.ApplicationMessage != "" {
				fmt.Fprintf(&b, ": %s", w.ApplicationMessage)
			}
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "Snapshots (limit %d per volume): %d volume%s\n", st.MaxSnapshotsPerVolume, len(st.Volumes), plural(len(st.Volumes), "", "s"))
	for _, v := range st.Volumes {
		fmt.Fprintf(&b, "   %s: %d of %d (%s)", v.Volume, v.Snapshots, st.MaxSnapshotsPerVolume, v.Provider)
		if v.SnapshotDir != "" {
			fmt.Fprintf(&b, ", kept in %s: %s", v.SnapshotDir, spaceText(v.FreeBytes, v.TotalBytes, v.SpaceError))
		}
		b.WriteByte('\n')
	}
	b.WriteString("Providers:\n")
	for _, p := range st.Providers {
		switch {
		case p.SnapshotDir != "":
			fmt.Fprintf(&b, "   %s: snapshots in %s: %s\n", p.Name, p.SnapshotDir, spaceText(p.FreeBytes, p.TotalBytes, p.SpaceError))
		case p.NeedsFreeze:
			fmt.Fprintf(&b, "   %s: snapshots where its commands put them; commits inside a filesystem freeze\n", p.Name)
		default:
			fmt.Fprintf(&b, "   %s: snapshots kept per volume (above)\n", p.Name)
		}
	}
	if n := len(st.Recovery.Actions); n > 0 {
		fmt.Fprintf(&b, "Recovery at start (%s, took %s): %d action%s\n", st.Recovery.At.UTC().Format(time.RFC3339), age(st.Recovery.Took), n, plural(n, "", "s"))
		for _, a := range st.Recovery.Actions {
			fmt.Fprintf(&b, "   %s %s", a.Action, a.Object)
			if a.Volume != "" {
				fmt.Fprintf(&b, " (%s)", a.Volume)
			}
			if a.Detail != "" {
				fmt.Fprintf(&b, ": %s", a.Detail)
			}
			if a.Error != 0 {
				fmt.Fprintf(&b, " — failed: %s (0x%08X) %s", a.Error.Name(), uint32(a.Error), a.ErrorMessage)
			}
			b.WriteByte('\n')
		}
	}
	if len(st.RecentErrors) > 0 {
		fmt.Fprintf(&b, "Recent errors: %d\n", len(st.RecentErrors))
		for _, e := range st.RecentErrors {
			b.WriteString("  ")
			eventLine(&b, e)
		}
	}
	return b.String()
}
