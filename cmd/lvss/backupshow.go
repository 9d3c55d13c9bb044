package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/backupdoc"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vsserr"
)

// newBackupShowCommand is `lvss backup show FILE`, which prints the
// archive `lvss backup --bcd FILE` writes (docs/backup-archive.md). It
// needs no daemon: the archive is all there is to show, and it is most
// needed when the machine that wrote it is gone.
func newBackupShowCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show FILE",
		Short: "Print a backup archive written by 'lvss backup --bcd FILE' or 'lvss cluster backup --bcd FILE'",
		Long: `Read and check the backup archive FILE, which 'lvss backup --bcd FILE' wrote,
and print what it holds: the snapshot set, the stage the backup had reached
when the archive was written, time, host, context, backup type, the backup
command and its exit status; each snapshot with its original volume, where
its content was (Shadow Copy Volume), provider and consistency; each writer
that took part with its state, failure and the components the Backup
Components Document records for it, with whether their backup succeeded.

The archive of a cluster set ('lvss cluster backup --bcd FILE') is
recognised as such: the set (stage, time, requester, backup type,
consistency), then each host's part as above.

Needs no lvssd. An archive that is damaged, of an unknown version or not an
archive at all is an error naming the problem (exit status 1).

--json prints one object: "manifest", exactly as in the archive's
manifest.json, and "components", every component of its Backup Components
Document. For a cluster archive: "cluster", exactly as its cluster.json,
and "hosts", each with "host", "manifest" and "components". The format is
described in docs/backup-archive.md.`,
		Example: `  lvss backup show /backup/srv.lvss.tar
  lvss backup show /backup/srv.lvss.tar --json | jq -r '.components[] | select(.backup_succeeded | not) | .component'
  lvss backup show /backup/shop.cluster.tar --json | jq -r '.hosts[] | "\(.host) \(.manifest.snapshots | length)"'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return showBackup(args[0], g.json, cmd.OutOrStdout())
		},
	}
	return cmd
}

func showBackup(path string, asJSON bool, out io.Writer) error {
	a, c, err := backupdoc.ReadAnyFile(path)
	if err != nil {
		return archiveError{err}
	}
	if c != nil {
		return showCluster(path, c, asJSON, out)
	}
	if asJSON {
		return writeObj(out, obj{{"manifest", a.Manifest}, {"components", archiveComponents(a)}})
	}
	_, err = io.WriteString(out, archiveText("Backup archive "+path, a))
	return err
}

// showCluster prints a cluster set's archive: the set, then each host's
// part as a single host's archive is printed, indented.
func showCluster(path string, c *backupdoc.ClusterArchive, asJSON bool, out io.Writer) error {
	m := &c.Manifest
	if asJSON {
		hosts := make([]obj, 0, len(c.Hosts))
		for _, h := range c.Hosts {
			hosts = append(hosts, obj{{"host", h.Host}, {"manifest", h.Archive.Manifest}, {"components", archiveComponents(h.Archive)}})
		}
		return writeObj(out, obj{{"cluster", c.Manifest}, {"hosts", hosts}})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Cluster backup archive %s\n", path)
	fmt.Fprintf(&b, "   Cluster snapshot set: %s\n", guidText(m.SnapshotSetID))
	writeStage(&b, m.Stage)
	fmt.Fprintf(&b, "   Time: %s\n", m.Time.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "   Requester: %s\n", orUnknown(m.Requester))
	fmt.Fprintf(&b, "   lvss version: %s\n", orUnknown(m.LvssVersion))
	fmt.Fprintf(&b, "   Backup type: %s\n", m.BackupType)
	fmt.Fprintf(&b, "   Consistency: %s\n", m.Consistency)
	var hosts []string
	for _, h := range m.Hosts {
		hosts = append(hosts, h.Host+" ("+h.Consistency+")")
	}
	fmt.Fprintf(&b, "   Hosts: %s\n", strings.Join(hosts, ", "))
	for _, h := range c.Hosts {
		text := archiveText(fmt.Sprintf("Host %s (%s)", h.Host, backupdoc.HostArchiveName(h.Host)), h.Archive)
		for i, l := range strings.SplitAfter(text, "\n") {
			if l == "" {
				continue
			}
			if i > 0 {
				b.WriteString("   ")
			}
			b.WriteString(l)
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func writeStage(b *strings.Builder, st backupdoc.Stage) {
	switch st {
	case backupdoc.StageBackupComplete:
		b.WriteString("   Stage: backup complete (BackupComplete was sent)\n")
	default:
		b.WriteString("   Stage: snapshot taken (written before the backup command ended and before BackupComplete)\n")
	}
}

// archiveError is an archive that does not read: the HRESULT and the
// problem (backupdoc names the file and the part of it at fault). Its hint
// says what to do about an archive, which the table's advice for the same
// HRESULT (about snapshots and IDs) would not.
type archiveError struct{ err error }

func (e archiveError) Error() string { return e.err.Error() }

func (e archiveError) Hint() string {
	switch vsserr.Code(e.err) {
	case vsserr.CorruptXMLDocument, vsserr.InvalidXMLDocument:
		return "a document in the archive is damaged or was changed after 'lvss backup' wrote it: restore cannot use this copy of the archive"
	case vsserr.ObjectNotFound:
		return "give the path of the archive 'lvss backup --bcd FILE' wrote"
	case vsserr.AccessDenied:
		return "run lvss as a user who may read the archive"
	}
	return "FILE must be an archive written by 'lvss backup --bcd FILE' or 'lvss cluster backup --bcd FILE', as it wrote it (see docs/backup-archive.md)"
}

func (e archiveError) Unwrap() error { return e.err }

// archiveComponents is every component of the archive's BCD, with the
// writer it belongs to, for --json.
func archiveComponents(a *backupdoc.Archive) []obj {
	out := []obj{}
	for _, wc := range a.BCD.Writers {
		for _, c := range wc.Components {
			o := obj{{"instance_id", guidText(wc.InstanceID)}, {"writer_id", guidText(wc.WriterID)},
				{"writer", archiveWriterName(a, wc.InstanceID)},
				{"component", componentPath(c.LogicalPath, c.Name)}, {"logical_path", c.LogicalPath}, {"name", c.Name},
				{"type", c.Type.String()}, {"backup_succeeded", c.BackupSucceeded}, {"backup_stamp", c.BackupStamp},
				{"previous_backup_stamp", c.PreviousBackupStamp}, {"backup_options", c.BackupOptions},
				{"prepare_for_backup_failure_msg", c.PrepareForBackupFailureMsg},
				{"post_snapshot_failure_msg", c.PostSnapshotFailureMsg}}
			var f document.ComponentFailure
			if c.Failure != nil {
				f = *c.Failure
			}
			o = hrFields(o, "failure", vsserr.HRESULT(f.HR)).add("failure_message", f.Message)
			out = append(out, o)
		}
	}
	return out
}

// archiveWriterName is a writer's name from the manifest, else from its
// metadata document.
func archiveWriterName(a *backupdoc.Archive, instance uuid.UUID) string {
	if w := a.Manifest.Writer(instance); w != nil && w.Name != "" {
		return w.Name
	}
	if wm := a.WMDs[instance]; wm != nil {
		return wm.Identity.FriendlyName
	}
	return ""
}

// archiveText prints an archive in the style of `lvss list`: a headline,
// then one "Key: value" per line, indented by three spaces per level.
func archiveText(headline string, a *backupdoc.Archive) string {
	m := &a.Manifest
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", headline)
	fmt.Fprintf(&b, "   Snapshot set: %s\n", guidText(m.SnapshotSetID))
	writeStage(&b, m.Stage)
	fmt.Fprintf(&b, "   Time: %s\n", m.Time.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "   Host: %s\n", orUnknown(m.Host))
	fmt.Fprintf(&b, "   lvss version: %s\n", orUnknown(m.LvssVersion))
	fmt.Fprintf(&b, "   Context: %s\n", m.Context)
	fmt.Fprintf(&b, "   Backup type: %s\n", m.BackupType)
	if len(m.Command) == 0 {
		b.WriteString("   Command: none\n")
	} else {
		fmt.Fprintf(&b, "   Command: %s\n", shellJoin(m.Command))
		if m.ExitStatus != nil {
			fmt.Fprintf(&b, "   Exit status: %d\n", *m.ExitStatus)
		} else {
			b.WriteString("   Exit status: not known (the command had not ended when the archive was written)\n")
		}
	}
	for _, h := range []struct {
		what string
		d    time.Duration
	}{{"Writers held frozen", m.WritersFrozen}, {"Filesystems held frozen", m.FreezeHeld}} {
		if h.d > 0 {
			fmt.Fprintf(&b, "   %s: %s\n", h.what, h.d)
		} else {
			// 0 is also what a set with nothing to freeze records (no
			// writer, or a provider such as btrfs that needs no freeze).
			fmt.Fprintf(&b, "   %s: none recorded\n", h.what)
		}
	}

	if len(m.Snapshots) == 0 {
		b.WriteString("Snapshots: none\n")
	} else {
		b.WriteString("Snapshots:\n")
	}
	for _, s := range m.Snapshots {
		fmt.Fprintf(&b, "   Shadow Copy ID: %s\n", guidText(s.SnapshotID))
		fmt.Fprintf(&b, "      Original Volume: %s\n", s.OriginalVolume)
		fmt.Fprintf(&b, "      Shadow Copy Volume: %s\n", s.DevicePath)
		if s.ProviderName != "" {
			fmt.Fprintf(&b, "      Provider: '%s' (%s)\n", s.ProviderName, guidText(s.ProviderID))
		} else {
			fmt.Fprintf(&b, "      Provider: %s\n", guidText(s.ProviderID))
		}
		if s.ConsistencyReason != "" {
			fmt.Fprintf(&b, "      Consistency: %s (%s)\n", orUnknown(s.Consistency), s.ConsistencyReason)
		} else {
			fmt.Fprintf(&b, "      Consistency: %s\n", orUnknown(s.Consistency))
		}
	}

	// The manifest's writers, then any the BCD has components of but the
	// manifest does not list (an archive from a backup that could not
	// read their status): their components must not go unmentioned.
	type shown struct {
		backupdoc.Writer
		listed bool // in the manifest, so its state is known
	}
	var ws []shown
	for _, w := range m.Writers {
		ws = append(ws, shown{w, true})
	}
	for _, wc := range a.BCD.Writers {
		if m.Writer(wc.InstanceID) == nil {
			ws = append(ws, shown{Writer: backupdoc.Writer{InstanceID: wc.InstanceID, WriterID: wc.WriterID,
				InstanceName: wc.InstanceName, Name: archiveWriterName(a, wc.InstanceID)}})
		}
	}
	if len(ws) == 0 {
		b.WriteString("Writers: none took part\n")
	} else {
		b.WriteString("Writers:\n")
	}
	for _, w := range ws {
		fmt.Fprintf(&b, "   Writer name: '%s'\n", w.Name)
		fmt.Fprintf(&b, "      Writer Id: %s\n", guidText(w.WriterID))
		fmt.Fprintf(&b, "      Writer Instance Id: %s\n", guidText(w.InstanceID))
		if w.InstanceName != "" {
			fmt.Fprintf(&b, "      Instance name: %s\n", w.InstanceName)
		}
		if w.listed {
			fmt.Fprintf(&b, "      State: %s (%d)\n", w.State, int32(w.State))
			fmt.Fprintf(&b, "      Last error: %s\n", w.Failure)
		} else {
			b.WriteString("      State: not known (the manifest does not list this writer)\n")
		}
		if w.ApplicationMessage != "" || w.ApplicationHRESULT != vsserr.OK {
			fmt.Fprintf(&b, "      Application: %s", w.ApplicationHRESULT)
			if w.ApplicationMessage != "" {
				fmt.Fprintf(&b, ": %s", w.ApplicationMessage)
			}
			b.WriteByte('\n')
		}
		if _, ok := a.WMDs[w.InstanceID]; !ok {
			b.WriteString("      Metadata: not in the archive\n")
		}
		writeArchiveComponents(&b, a.BCD.Writer(w.InstanceID))
	}
	return b.String()
}

func writeArchiveComponents(b *strings.Builder, wc *document.WriterComponents) {
	if wc == nil || len(wc.Components) == 0 {
		b.WriteString("      Components: none in the Backup Components Document\n")
		return
	}
	b.WriteString("      Components:\n")
	for _, c := range wc.Components {
		fmt.Fprintf(b, "         %s (%s): backup succeeded: %s\n", componentPath(c.LogicalPath, c.Name), c.Type, yesNo(c.BackupSucceeded))
		if c.PrepareForBackupFailureMsg != "" {
			fmt.Fprintf(b, "            PrepareForBackup failure: %s\n", c.PrepareForBackupFailureMsg)
		}
		if c.PostSnapshotFailureMsg != "" {
			fmt.Fprintf(b, "            PostSnapshot failure: %s\n", c.PostSnapshotFailureMsg)
		}
		if f := c.Failure; f != nil {
			fmt.Fprintf(b, "            Failure: %s", vsserr.HRESULT(f.HR))
			if f.Message != "" {
				fmt.Fprintf(b, ": %s", f.Message)
			}
			b.WriteByte('\n')
		}
	}
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

// shellJoin prints an argument list so that it can be pasted into a shell:
// words that need it are single-quoted.
func shellJoin(argv []string) string {
	out := make([]string, 0, len(argv))
	for _, a := range argv {
		out = append(out, shellQuote(a))
	}
	return strings.Join(out, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
