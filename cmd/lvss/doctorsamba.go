package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vsserr"
)

// testparmTimeout bounds Samba's testparm: it reads smb.conf and its
// includes, and a hung network filesystem must not hang lvss doctor.
const testparmTimeout = 30 * time.Second

// smbSection is one section of smb.conf as Samba's testparm prints it:
// every parameter that is not at its default, keys lower-cased.
type smbSection struct {
	name   string
	params map[string]string
}

// testparm reads an smb.conf the way smbd does, includes and all, through
// Samba's own testparm (what it prints is Samba's reading, not lvss's
// guess at smb.conf's syntax).
func testparm(ctx context.Context, conf string) ([]smbSection, error) {
	bin, err := exec.LookPath("testparm")
	if err != nil {
		return nil, errNoTestparm
	}
	ctx, cancel := context.WithTimeout(ctx, testparmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--suppress-prompt", conf)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errOut.String())
		if i := strings.LastIndex(msg, "\n"); i >= 0 && len(msg) > 400 {
			msg = "…" + msg[i+1:]
		}
		if ctx.Err() != nil {
			msg = "it did not finish within " + testparmTimeout.String()
		}
		return nil, fmt.Errorf("testparm %s: %v: %s", conf, err, msg)
	}
	return parseTestparm(out.Bytes()), nil
}

var errNoTestparm = errors.New("testparm is not installed")

// parseTestparm reads testparm's dump: "[name]" lines open a section,
// "\tkey = value" lines are its parameters, '#' and ';' start comments.
func parseTestparm(dump []byte) []smbSection {
	var out []smbSection
	sc := bufio.NewScanner(bytes.NewReader(dump))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			out = append(out, smbSection{name: l[1 : len(l)-1], params: map[string]string{}})
		case len(out) > 0:
			if k, v, ok := strings.Cut(l, "="); ok {
				out[len(out)-1].params[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

// smbBool reads a Samba boolean as Samba does (yes/no, true/false, 1/0,
// on/off); ok is false for anything else.
func smbBool(s string) (v, ok bool) {
	switch strings.ToLower(s) {
	case "yes", "true", "1", "on":
		return true, true
	case "no", "false", "0", "off":
		return false, true
	}
	return false, false
}

// samePath compares two paths as Samba would find them: clean, and with
// symlinks resolved where they exist.
func samePath(a, b string) bool {
	norm := func(p string) string {
		p = filepath.Clean(p)
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return p
	}
	return a != "" && b != "" && norm(a) == norm(b)
}

// shareMismatches compares a share section with the parameters lvssd says
// a share of the path needs, and returns what differs: one line per
// parameter, "key = value" as it must be.
func shareMismatches(sec smbSection, want []client.SambaParam) (wrong []string, fixes []string) {
	for _, p := range want {
		have, set := sec.params[p.Key]
		ok := false
		switch p.Key {
		case "path":
			continue // how the section was found
		case "vfs objects":
			for _, m := range strings.FieldsFunc(have, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
				ok = ok || m == p.Value
			}
			if !ok {
				fix := p.Value
				if set && have != "" {
					fix = have + " " + p.Value
				}
				wrong = append(wrong, fmt.Sprintf("vfs objects is %q, without %s", have, p.Value))
				fixes = append(fixes, "vfs objects = "+fix)
				continue
			}
		case "shadow:snapdir", "shadow:mountpoint":
			ok = set && filepath.Clean(have) == filepath.Clean(p.Value)
		case "shadow:localtime":
			w, _ := smbBool(p.Value)
			h, valid := smbBool(have)
			ok = !set && !w || valid && h == w // no is Samba's default
		default:
			ok = set && have == p.Value
		}
		if ok {
			continue
		}
		if set {
			wrong = append(wrong, fmt.Sprintf("%s is %q, not %q", p.Key, have, p.Value))
		} else {
			wrong = append(wrong, p.Key+" is not set")
		}
		fixes = append(fixes, p.Key+" = "+p.Value)
	}
	return wrong, fixes
}

// addPreviousVersions checks each [[previous_versions]] path of lvssd:
// that lvssd keeps its snapdir (its last reconcile), and that a share of
// the smb.conf [samba] config names serves it with matching shadow_copy2
// settings. Samba missing, or no share of the path, is a warning: lvss
// works without it, Windows clients just see nothing. A share whose
// settings do not match is an error, with the lines to fix.
func (r *doctorReport) addPreviousVersions(ctx context.Context, conn *client.Conn) {
	const group = "previous_versions"
	pv, err := conn.PreviousVersions(ctx, "")
	if err != nil {
		r.add(group, client.Finding{Check: "previous_versions.lvssd", Severity: client.SeverityWarning, Subject: "lvssd",
			Message: "lvssd did not say which paths it keeps previous versions of: " + vsserr.Message(err),
			Fix:     "an lvssd older than this lvss lacks the call: restart lvssd after an upgrade"})
		return
	}
	if len(pv.Shares) == 0 {
		return
	}
	for _, sh := range pv.Shares {
		f := client.Finding{Check: "previous_versions.snapdir", Severity: client.SeverityOK, Subject: sh.Path}
		switch {
		case sh.Error != nil:
			f.Severity, f.Message = client.SeverityError, "lvssd could not update the snapdir "+sh.Snapdir+": "+vsserr.Message(sh.Error)
			f.Fix = "see 'lvss events --level error'; lvssd tries again at the next change of the snapshots, and at its next start"
		case sh.Reconciled.IsZero():
			f.Severity, f.Message = client.SeverityInfo, "lvssd has not made the snapdir "+sh.Snapdir+" yet (it does so right after it starts)"
		default:
			f.Message = fmt.Sprintf("%d previous version%s in %s", len(sh.Versions), plural(len(sh.Versions), "", "s"), sh.Snapdir)
			if n := len(sh.Skipped); n > 0 {
				f.Severity = client.SeverityWarning
				f.Message += fmt.Sprintf("; %d snapshot%s of it cannot be shown", n, plural(n, "", "s"))
				f.Fix = "'lvss samba-config " + sh.Path + " --json' lists them with the reason"
			}
		}
		r.add(group, f)
		if sh.ShutDir != "" {
			r.add(group, client.Finding{Check: "previous_versions.reach", Severity: client.SeverityWarning, Subject: sh.Path,
				Message: fmt.Sprintf("%s (mode %04o) is on the way to the previous versions of %s and other users may not search it: "+
					"Samba opens the versions as each connected user, so only root can open them", sh.ShutDir, sh.ShutMode, sh.Path),
				Fix: "chmod o+x " + sh.ShutDir + " (others may then pass through it to the files their own permissions let them read, " +
					"as in the share; they still cannot list it; docs/previous-versions.md)"})
		}
	}
	conf := pv.SambaConfig
	_, err = os.Stat(conf)
	var sections []smbSection
	if err == nil {
		sections, err = testparm(ctx, conf)
	}
	switch {
	case errors.Is(err, errNoTestparm):
		r.add(group, client.Finding{Check: "samba.testparm", Severity: client.SeverityWarning, Subject: conf,
			Message: "Samba's testparm is not installed: the shares of " + conf + " were not checked",
			Fix:     "install Samba (apt-get install samba) to serve the previous versions to Windows clients"})
		return
	case errors.Is(err, os.ErrNotExist):
		r.add(group, client.Finding{Check: "samba.config", Severity: client.SeverityWarning, Subject: conf,
			Message: conf + " does not exist: no Samba share serves the previous versions",
			Fix:     "install Samba (apt-get install samba), or set [samba] config in lvssd's config to the smb.conf Samba runs with"})
		return
	case err != nil:
		r.add(group, client.Finding{Check: "samba.config", Severity: client.SeverityWarning, Subject: conf,
			Message: "Samba's testparm cannot read " + conf + ": " + err.Error(),
			Fix:     "run 'testparm " + conf + "' and fix what it reports"})
		return
	}
	for _, sh := range pv.Shares {
		found := false
		for _, sec := range sections {
			if strings.EqualFold(sec.name, "global") || !samePath(sec.params["path"], sh.Path) {
				continue
			}
			found = true
			subject := "[" + sec.name + "] of " + conf
			wrong, fixes := shareMismatches(sec, sh.SambaParams)
			if len(wrong) == 0 {
				r.add(group, client.Finding{Check: "samba.share", Severity: client.SeverityOK, Subject: subject,
					Message: "share [" + sec.name + "] serves " + sh.Path + " with its previous versions"})
				continue
			}
			r.add(group, client.Finding{Check: "samba.share", Severity: client.SeverityError, Subject: subject,
				Message: "share [" + sec.name + "] serves " + sh.Path + ", but Windows clients will not see its previous versions: " +
					strings.Join(wrong, "; "),
				Fix: "in [" + sec.name + "] of " + conf + " set: " + strings.Join(fixes, "; ") + " (lvss samba-config " + sh.Path +
					" prints the whole section), then 'smbcontrol smbd reload-config'"})
		}
		if !found {
			r.add(group, client.Finding{Check: "samba.share", Severity: client.SeverityWarning, Subject: sh.Path,
				Message: "no share of " + conf + " serves " + sh.Path + ": Windows clients see no previous versions of it",
				Fix: "add the section 'lvss samba-config " + sh.Path + "' prints to " + conf +
					", then 'smbcontrol smbd reload-config'"})
		}
	}
}
