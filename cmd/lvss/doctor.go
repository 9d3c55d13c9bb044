package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/internal/version"
	"github.com/lvss/lvss/vsserr"
)

// doctorTimeout bounds lvssd's preflight: it looks at every mounted
// filesystem, each look bounded on its own.
const doctorTimeout = 2 * time.Minute

func newDoctorCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check this host for what stands in the way of a backup",
		Long: `Check this host, as lvssd and you see it, and say what is in the way of a
backup and how to fix it. It changes nothing.

lvss checks that lvssd's socket is there and answers, and that you may use it.
lvssd then reports, for every mounted filesystem that holds data, every volume
a provider's configuration names and every volume with snapshots: which
provider would take it and why each other would not, whether the kernel can
freeze it (FIFREEZE, which the exec provider's commits run inside), what would
make its snapshot fail or miss data (a btrfs snapshot directory on another
filesystem, nested subvolumes, too little free space, the per-volume cap);
whether its run dir is on a tmpfs and its state dir on a filesystem no
provider freezes; each subscribed writer's state and last failure; that
every writer configured for lvss-writer@NAME.service (/etc/lvss/writers/
NAME.conf, or $LVSS_WRITERS_DIR) is subscribed; and, for each
[[previous_versions]] path of lvssd's config, its snapdir and the share of
smb.conf ([samba] config) that serves it, read with Samba's testparm: a share
whose shadow_copy2 settings differ is an error with the lines to set, no
share or no Samba a warning.

Each finding has a severity (ok, info, warning, error) and, when there is
something to do, a fix. When lvssd does not answer, the checks lvss can make
alone are still reported: the socket, and each filesystem's type and freeze
support.

Exit status: 0 when nothing is an error, 1 when something is, 69 when lvssd
is unreachable (the report says why), 2 for a wrong command line. --json
prints one JSON object (docs/cli.md has its fields); standard error stays
empty, since the report is the result.`,
		Example: `  lvss doctor
  lvss doctor --json | jq '.volumes[] | {path, provider, freeze}'
  lvss doctor >/dev/null || echo "fix the errors above before the first backup"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return doctor(cmd.Context(), g.socket, g.json, cmd.OutOrStdout())
		},
	}
}

// reportedError is a failure the verb's output already reports: lvss
// prints nothing more, and exits by what it wraps.
type reportedError struct{ err error }

func (e *reportedError) Error() string { return e.err.Error() }
func (e *reportedError) Unwrap() error { return e.err }

var errDoctorFound = errors.New("lvss doctor found errors")

// groupedFinding is a finding with the group the report shows it in.
type groupedFinding struct {
	group string
	client.Finding
}

// doctorReport is everything lvss doctor prints.
type doctorReport struct {
	socket     string
	writersDir string // where the writer units' NAME.conf files are
	reachable  bool
	daemon     *client.DaemonInfo
	diag       *client.Diagnosis
	findings   []groupedFinding
	// volumes are lvssd's, or (local) the ones lvss could see alone.
	volumes []client.VolumeDiagnosis
	local   bool
}

// Groups, in the order the text shows them.
var doctorGroups = []struct{ key, title string }{
	{"lvssd", "lvssd"}, {"directories", "Directories"}, {"writers", "Writers"}, {"previous_versions", "Previous versions (Samba)"},
}

// groupOf places a finding of lvssd's by its check's name.
func groupOf(check string) string {
	switch {
	case strings.HasPrefix(check, "run_dir."), strings.HasPrefix(check, "state_dir."):
		return "directories"
	case strings.HasPrefix(check, "writer"):
		return "writers"
	}
	return "lvssd"
}

func (r *doctorReport) add(group string, f client.Finding) {
	r.findings = append(r.findings, groupedFinding{group, f})
}

func doctor(ctx context.Context, socket string, asJSON bool, out io.Writer) error {
	r := &doctorReport{socket: client.SocketPath(socket), writersDir: writersDir}
	if d := os.Getenv("LVSS_WRITERS_DIR"); d != "" {
		r.writersDir = d
	}
	err := r.run(ctx, socket)
	if ctx.Err() != nil {
		return ctx.Err() // interrupted: 130, and no half report
	}
	if perr := r.print(out, asJSON); perr != nil {
		return perr
	}
	if err != nil {
		return &reportedError{err}
	}
	if r.count()[client.SeverityError] > 0 {
		return &reportedError{errDoctorFound}
	}
	return nil
}

// run makes the checks; the error it returns (lvssd unreachable) decides
// the exit status once the report is printed.
func (r *doctorReport) run(ctx context.Context, socket string) error {
	sockMode, sockOK := r.socketFile()
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		r.add("lvssd", client.Finding{Check: "socket.reachable", Severity: client.SeverityError, Subject: r.socket,
			Message: vsserr.Message(err), Fix: clierr.Hint(clierr.Unreachable, vsserr.Code(err), "lvss doctor")})
		r.localVolumes()
		return err
	}
	defer conn.Close()
	r.reachable = true
	dctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	dg, err := conn.Doctor(dctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		r.add("lvssd", client.Finding{Check: "socket.reachable", Severity: client.SeverityOK, Subject: r.socket,
			Message: "lvssd answers at " + r.socket})
		r.addSocketMode(sockMode, sockOK)
		if vsserr.Code(err) == vsserr.AccessDenied {
			r.add("lvssd", client.Finding{Check: "access.caller", Severity: client.SeverityError, Subject: callerText(uint32(os.Getuid())),
				Message: vsserr.Message(err), Fix: clierr.Hint(clierr.Other, vsserr.AccessDenied, "lvss doctor")})
		} else {
			r.add("lvssd", client.Finding{Check: "lvssd.doctor", Severity: client.SeverityError, Subject: r.socket,
				Message: "lvssd did not run its checks: " + vsserr.Code(err).String() + ": " + vsserr.Message(err),
				Fix:     "an lvssd older than this lvss lacks them: restart lvssd after an upgrade"})
		}
		r.localVolumes()
		return nil
	}
	r.diag, r.daemon = dg, &dg.Daemon
	d := dg.Daemon
	msg := fmt.Sprintf("lvssd %s answers at %s (pid %d, up %s)", d.Version, r.socket, d.PID, age(d.Uptime()))
	if d.ConfigFile != "" {
		msg += ", config " + d.ConfigFile
	} else {
		msg += ", no config file (defaults)"
	}
	r.add("lvssd", client.Finding{Check: "socket.reachable", Severity: client.SeverityOK, Subject: r.socket, Message: msg})
	r.addSocketMode(sockMode, sockOK)
	r.add("lvssd", client.Finding{Check: "access.caller", Severity: client.SeverityOK, Subject: callerText(dg.CallerUID),
		Message: fmt.Sprintf("%s may use lvssd: allowed as %s", callerText(dg.CallerUID), dg.CallerAllowedBy)})
	r.add("lvssd", versionFinding(d))
	for _, f := range dg.Findings {
		r.add(groupOf(f.Check), f)
	}
	r.addConfiguredWriters(ctx, conn, r.writersDir)
	r.addPreviousVersions(dctx, conn)
	r.volumes = dg.Volumes
	return nil
}

// socketFile looks at the socket's mode; ok is false when it is not a
// socket there (Dial says why).
func (r *doctorReport) socketFile() (mode os.FileMode, ok bool) {
	fi, err := os.Stat(r.socket)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return 0, false
	}
	return fi.Mode().Perm(), true
}

// addSocketMode: lvssd makes its socket 0666 so that every caller reaches
// it and is judged by its credentials; a tighter mode turns callers away
// before lvssd can say why.
func (r *doctorReport) addSocketMode(mode os.FileMode, ok bool) {
	if ok && mode&0o666 != 0o666 {
		r.add("lvssd", client.Finding{Check: "socket.mode", Severity: client.SeverityWarning, Subject: r.socket,
			Message: fmt.Sprintf("the socket's mode is %04o, not 0666: callers the mode shuts out get EACCES instead of lvssd's E_ACCESSDENIED with its reason", mode),
			Fix:     "let lvssd create its socket (it sets 0666 and decides by access.users and access.groups); do not change its mode"})
	}
}

func versionFinding(d client.DaemonInfo) client.Finding {
	mine := version.Get()
	f := client.Finding{Check: "version.match", Severity: client.SeverityOK, Subject: "lvss " + mine.Version,
		Message: "lvss and lvssd are the same build: " + mine.String()}
	if mine.Version != d.Version || mine.Commit != d.Commit || mine.Dirty != d.Dirty {
		theirs := version.Info{Version: d.Version, Commit: d.Commit, Date: d.BuildDate, Dirty: d.Dirty}
		f.Severity = client.SeverityWarning
		f.Message = "lvss is " + mine.String() + ", lvssd is " + theirs.String()
		f.Fix = "restart lvssd after an upgrade, or use the lvss of lvssd's build"
	}
	return f
}

func callerText(uid uint32) string {
	s := "uid " + strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		s += " (" + u.Username + ")"
	}
	return s
}

// localVolumes is what lvss can tell about the filesystems without lvssd:
// their types and whether the kernel can freeze them. Which provider
// would take each is lvssd's to say.
func (r *doctorReport) localVolumes() {
	r.local = true
	ms, err := mountinfo.Read()
	if err != nil {
		return
	}
	byPoint := map[string]client.VolumeDiagnosis{}
	for _, m := range ms {
		if mountinfo.Pseudo(m.FSType) || strings.Contains(m.Root, "/.lvss-snapshots") {
			continue
		}
		fr, why := mountinfo.FreezeSupport(m.FSType)
		byPoint[m.MountPoint] = client.VolumeDiagnosis{Path: m.MountPoint, MountPoint: m.MountPoint, Device: m.Device(), Type: m.FSType,
			Source: m.Source, ReadOnly: m.ReadOnly(), Mounted: true, Freeze: string(fr), FreezeReason: why}
	}
	for _, v := range byPoint {
		r.volumes = append(r.volumes, v)
	}
	sort.Slice(r.volumes, func(i, j int) bool { return r.volumes[i].Path < r.volumes[j].Path })
}

// all is every finding, the volumes' included.
func (r *doctorReport) all() []client.Finding {
	var out []client.Finding
	for _, f := range r.findings {
		out = append(out, f.Finding)
	}
	for _, v := range r.volumes {
		out = append(out, v.Findings...)
	}
	return out
}

func (r *doctorReport) count() map[client.Severity]int {
	n := map[client.Severity]int{}
	for _, f := range r.all() {
		n[f.Severity]++
	}
	return n
}

func findingObj(group string, f client.Finding) obj {
	o := obj{}
	if group != "" {
		o = append(o, field{"group", group})
	}
	return append(o, field{"check", f.Check}, field{"severity", string(f.Severity)}, field{"subject", f.Subject},
		field{"message", f.Message}, field{"fix", f.Fix})
}

func (r *doctorReport) print(out io.Writer, asJSON bool) error {
	if asJSON {
		return writeObj(out, r.obj())
	}
	_, err := io.WriteString(out, r.text())
	return err
}

func (r *doctorReport) obj() obj {
	n := r.count()
	lvssd := obj{{"reachable", r.reachable}, {"socket", r.socket}}
	if d := r.daemon; d != nil {
		lvssd = append(lvssd, field{"version", d.Version}, field{"commit", d.Commit}, field{"pid", d.PID},
			field{"config_file", d.ConfigFile}, field{"state_dir", d.StateDir}, field{"run_dir", d.RunDir})
	}
	var caller any
	maxSnaps := 0
	if dg := r.diag; dg != nil {
		groups := make([]int64, 0, len(dg.CallerGroups))
		for _, g := range dg.CallerGroups {
			groups = append(groups, int64(g))
		}
		caller = obj{{"uid", dg.CallerUID}, {"gid", dg.CallerGID}, {"groups", groups}, {"pid", dg.CallerPID}, {"allowed_by", dg.CallerAllowedBy}}
		maxSnaps = dg.MaxSnapshotsPerVolume
	}
	findings := []obj{}
	for _, f := range r.findings {
		findings = append(findings, findingObj(f.group, f.Finding))
	}
	vols := []obj{}
	for _, v := range r.volumes {
		provs := []obj{}
		for _, p := range v.Providers {
			provs = append(provs, obj{{"name", p.Name}, {"provider_id", p.ProviderID.String()}, {"supported", p.Supported}, {"reason", p.Reason}})
		}
		fs := []obj{}
		for _, f := range v.Findings {
			fs = append(fs, findingObj("", f))
		}
		vols = append(vols, obj{{"path", v.Path}, {"mount_point", v.MountPoint}, {"device", v.Device}, {"type", v.Type}, {"source", v.Source},
			{"read_only", v.ReadOnly}, {"mounted", v.Mounted}, {"configured", v.Configured}, {"freeze", v.Freeze}, {"freeze_reason", v.FreezeReason},
			{"provider", v.Provider}, {"providers", provs}, {"snapshot_dir", v.SnapshotDir}, {"free_bytes", v.FreeBytes},
			{"total_bytes", v.TotalBytes}, {"snapshots", v.Snapshots}, {"findings", fs}})
	}
	source := "lvssd"
	if r.local {
		source = "lvss"
	}
	return obj{
		{"ok", n[client.SeverityError] == 0},
		{"summary", obj{{"ok", n[client.SeverityOK]}, {"info", n[client.SeverityInfo]}, {"warning", n[client.SeverityWarning]}, {"error", n[client.SeverityError]}}},
		{"lvssd", lvssd},
		{"caller", caller},
		{"max_snapshots_per_volume", maxSnaps},
		{"findings", findings},
		{"volumes_from", source},
		{"volumes", vols},
	}
}

// findingText writes one finding: its severity in a column of width w,
// the message, and the fix on the next line, under the message.
func findingText(b *strings.Builder, indent string, w int, f client.Finding) {
	fmt.Fprintf(b, "%s%-*s %s\n", indent, w, f.Severity, f.Message)
	if f.Fix != "" {
		fmt.Fprintf(b, "%s%-*s fix: %s\n", indent, w, "", f.Fix)
	}
}

func (r *doctorReport) text() string {
	var b strings.Builder
	for _, g := range doctorGroups {
		var fs []client.Finding
		for _, f := range r.findings {
			if f.group == g.key {
				fs = append(fs, f.Finding)
			}
		}
		if len(fs) == 0 {
			continue
		}
		b.WriteString(g.title + "\n")
		for _, f := range fs {
			findingText(&b, "  ", 8, f)
		}
	}
	if len(r.volumes) > 0 {
		b.WriteString("Volumes")
		if r.local {
			b.WriteString(" (as lvss sees them: which provider would take each is lvssd's to say)")
		}
		b.WriteByte('\n')
	}
	for _, v := range r.volumes {
		r.volumeText(&b, v)
	}
	n := r.count()
	fmt.Fprintf(&b, "\n%d error%s, %d warning%s, %d info, %d ok", n[client.SeverityError], plural(n[client.SeverityError], "", "s"),
		n[client.SeverityWarning], plural(n[client.SeverityWarning], "", "s"), n[client.SeverityInfo], n[client.SeverityOK])
	switch {
	case !r.reachable:
		b.WriteString(": lvssd is unreachable\n")
	case n[client.SeverityError] > 0:
		b.WriteString(": fix the errors before relying on a backup\n")
	default:
		b.WriteString(": nothing stands in the way of a backup\n")
	}
	return b.String()
}

func (r *doctorReport) volumeText(b *strings.Builder, v client.VolumeDiagnosis) {
	head := v.Path
	var attrs []string
	if v.Type != "" {
		attrs = append(attrs, v.Type)
	}
	if v.Source != "" && v.Source != "none" {
		attrs = append(attrs, v.Source)
	}
	if v.MountPoint != "" && v.MountPoint != v.Path {
		attrs = append(attrs, "on "+v.MountPoint)
	}
	if v.ReadOnly {
		attrs = append(attrs, "read-only")
	}
	if v.Configured {
		attrs = append(attrs, "configured")
	}
	if len(attrs) > 0 {
		head += " (" + strings.Join(attrs, ", ") + ")"
	}
	fmt.Fprintf(b, "  %s\n", head)
	line := func(key, val string) { fmt.Fprintf(b, "    %-10s %s\n", key, val) }
	switch {
	case r.local:
		line("provider", "unknown: lvssd did not answer")
	case v.Provider != "":
		for _, p := range v.Providers {
			if p.Name == v.Provider {
				line("provider", p.Name+": "+p.Reason)
			}
		}
	case len(v.Providers) > 0:
		line("provider", "none")
	}
	for _, p := range v.Providers {
		if p.Name != v.Provider {
			verdict := "would not take it: "
			if p.Supported {
				verdict = "would take it too, after " + v.Provider + ": "
			}
			line("", p.Name+" "+verdict+p.Reason)
		}
	}
	if v.Freeze != "" {
		fr := v.Freeze
		if v.FreezeReason != "" {
			fr += ": " + v.FreezeReason
		}
		line("freeze", fr)
	}
	if !r.local && v.Provider != "" {
		s := fmt.Sprintf("%d", v.Snapshots)
		if r.diag != nil && r.diag.MaxSnapshotsPerVolume > 0 {
			s += fmt.Sprintf(" of %d", r.diag.MaxSnapshotsPerVolume)
		}
		if v.SnapshotDir != "" {
			s += ", kept in " + v.SnapshotDir + " (" + spaceText(v.FreeBytes, v.TotalBytes, "") + ")"
		}
		line("snapshots", s)
	}
	for _, f := range v.Findings {
		// The provider line says what an ok provider or freeze finding would.
		if f.Severity == client.SeverityOK && (f.Check == "volume.provider" || f.Check == "volume.freeze") {
			continue
		}
		findingText(b, "    ", 10, f)
	}
}
