package smbshare

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lvss/lvss/internal/cmdout"
	"github.com/lvss/lvss/internal/procgroup"
	"github.com/lvss/lvss/vsserr"
)

// DefaultConf is the smb.conf Debian's Samba runs with.
const DefaultConf = "/etc/samba/smb.conf"

// DefaultTimeout bounds each Samba command when Options.Timeout is zero.
// The commands read or write a few records of Samba's registry: they take
// a fraction of a second, and one that takes this long is stuck.
const DefaultTimeout = 30 * time.Second

// installHint is what to do when Samba's tools are missing.
const installHint = "install Samba (apt-get install samba; it brings net, testparm and smbcontrol)"

// Options configure a Manager.
type Options struct {
	// Conf is the smb.conf the Samba server runs with; "" is DefaultConf.
	Conf string
	// Net is Samba's net command: a path, or "" to look "net" up in PATH.
	// testparm and smbcontrol are looked for beside it first, then in
	// PATH.
	Net string
	// Timeout bounds each command; 0 is DefaultTimeout.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Manager runs Samba's tools for one smb.conf. Its methods may be called
// concurrently: Samba's registry serialises its own writers.
type Manager struct {
	conf    string
	net     string
	timeout time.Duration
	log     *slog.Logger
}

// New returns a Manager. Nothing is checked or run yet: Usable says
// whether Samba is there and set up.
func New(o Options) *Manager {
	m := &Manager{conf: o.Conf, net: o.Net, timeout: o.Timeout, log: o.Logger}
	if m.conf == "" {
		m.conf = DefaultConf
	}
	if m.net == "" {
		m.net = "net"
	}
	if m.timeout <= 0 {
		m.timeout = DefaultTimeout
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m
}

// Conf is the smb.conf the Manager gives Samba's tools.
func (m *Manager) Conf() string { return m.conf }

// Share is one share of Samba's registry.
type Share struct {
	Name    string
	Path    string
	Comment string
}

// tool finds one of Samba's commands: net as configured, the others
// beside it (a Samba installed under /opt keeps them together), then in
// PATH. A missing one is VSS_E_NOT_SUPPORTED.
func (m *Manager) tool(name string) (string, error) {
	if name == "net" {
		p, err := exec.LookPath(m.net)
		if err != nil {
			return "", vsserr.New(vsserr.NotSupported, "Samba's net command (%s) is not there: %s, or set net in the [samba] section of lvssd's config", m.net, installHint)
		}
		return p, nil
	}
	if strings.Contains(m.net, "/") {
		p := filepath.Join(filepath.Dir(m.net), name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", vsserr.New(vsserr.NotSupported, "Samba's %s command is not there: %s", name, installHint)
	}
	return p, nil
}

// Usable returns nil when shares can be added now: net and testparm are
// there, testparm reads the smb.conf, and it says `registry shares =
// yes`. Otherwise VSS_E_NOT_SUPPORTED says what to install or set.
func (m *Manager) Usable(ctx context.Context) error {
	if _, err := m.tool("net"); err != nil {
		return err
	}
	out, err := m.run(ctx, "testparm", "-s", "--parameter-name", "registry shares", m.conf)
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			// testparm exits 1 when it cannot load the file: Samba
			// cannot run with it either.
			return vsserr.Wrap(vsserr.NotSupported, err,
				"Samba cannot load %s (config in the [samba] section of lvssd's config): %s, or name the smb.conf Samba runs with", m.conf, installHint)
		}
		return err
	}
	if v := strings.TrimSpace(string(out)); !strings.EqualFold(v, "yes") {
		return vsserr.New(vsserr.NotSupported,
			"%s does not let Samba serve shares from its registry (testparm: registry shares = %s): add 'registry shares = yes' to its [global] section and reload Samba (smbcontrol smbd reload-config)",
			m.conf, orNone(v))
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(nothing)"
	}
	return s
}

// Defined reports whether a share of that name exists already, in the
// smb.conf (or a file it includes) or in the registry, as testparm reads
// them. Share names compare without regard to case, as SMB clients use
// them.
func (m *Manager) Defined(ctx context.Context, name string) (bool, error) {
	out, err := m.run(ctx, "testparm", "-s", m.conf)
	if err != nil {
		return false, err
	}
	for _, s := range sections(out) {
		if strings.EqualFold(s, name) {
			return true, nil
		}
	}
	return false, nil
}

// sections lists the section names of testparm's or net conf list's
// output: the lines "[NAME]".
func sections(out []byte) []string {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") && len(l) > 2 {
			names = append(names, l[1:len(l)-1])
		}
	}
	return names
}

// Add publishes dir as the read-only share name with comment, in the
// registry: writeable = no, guest ok = no, so that Samba's users reach it
// with their own accounts and their own permissions on its files. A name
// already defined in the registry is VSS_E_OBJECT_ALREADY_EXISTS (Samba
// refuses it); the caller checks the smb.conf's names first (Defined),
// which net does not.
func (m *Manager) Add(ctx context.Context, name, dir, comment string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if strings.ContainsAny(comment, "\n\r\x00") {
		return vsserr.New(vsserr.InvalidArg, "share comment %q has a line break or NUL", comment)
	}
	_, err := m.run(ctx, "net", "-s", m.conf, "conf", "addshare", name, dir, "writeable=n", "guest_ok=n", comment)
	if err == nil {
		m.log.Info("share added", "share", name, "path", dir)
		return nil
	}
	if ctx.Err() == nil {
		// net refuses a registry share that exists; say so with the
		// code it means rather than net's text.
		if shares, lerr := m.List(ctx); lerr == nil && has(shares, name) {
			return vsserr.Wrap(vsserr.ObjectAlreadyExists, err, "a share named %s is in Samba's registry already", name)
		}
	}
	return err
}

func has(shares []Share, name string) bool {
	for _, s := range shares {
		if strings.EqualFold(s.Name, name) {
			return true
		}
	}
	return false
}

// Remove withdraws the registry share name and then ends the connections
// still open to it (smbcontrol smbd close-share), so that no client keeps
// reading what is no longer shared. A share that is not there is not an
// error. Closing connections is best effort: with no smbd running there
// are none, and smbcontrol's failure is only logged.
func (m *Manager) Remove(ctx context.Context, name string) error {
	_, err := m.run(ctx, "net", "-s", m.conf, "conf", "delshare", name)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		// net fails for a share that is not there too: look rather than
		// read its message.
		shares, lerr := m.List(ctx)
		if lerr != nil || has(shares, name) {
			return err
		}
	} else {
		m.log.Info("share removed", "share", name)
	}
	if _, cerr := m.run(ctx, "smbcontrol", "-s", m.conf, "smbd", "close-share", name); cerr != nil {
		m.log.Debug("close-share (no smbd running?)", "share", name, "error", cerr)
	}
	return nil
}

// List returns the shares of Samba's registry (not those of the smb.conf
// file), in the registry's order.
func (m *Manager) List(ctx context.Context) ([]Share, error) {
	out, err := m.run(ctx, "net", "-s", m.conf, "conf", "list")
	if err != nil {
		return nil, err
	}
	return parseList(out), nil
}

// parseList reads net conf list's output: smb.conf syntax, one section per
// share, "[global]" being the registry's global parameters.
func parseList(out []byte) []Share {
	var shares []Share
	var cur *Share
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") && len(l) > 2:
			name := l[1 : len(l)-1]
			if strings.EqualFold(name, "global") {
				cur = nil
				continue
			}
			shares = append(shares, Share{Name: name})
			cur = &shares[len(shares)-1]
		case cur != nil:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				continue
			}
			switch strings.ToLower(strings.Join(strings.Fields(k), " ")) {
			case "path":
				cur.Path = strings.TrimSpace(v)
			case "comment":
				cur.Comment = strings.TrimSpace(v)
			}
		}
	}
	return shares
}

// maxOutput caps what a command's standard output may hand back (net conf
// list of a registry with thousands of shares is well under it).
const maxOutput = 16 << 20

// run runs one of Samba's tools under the Manager's deadline and ctx, in
// a process group of its own that is killed whole at the deadline. It
// returns standard output; a failure carries the tool's last line of
// standard error (or output), where Samba's tools say why.
func (m *Manager) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	bin, err := m.tool(name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, vsserr.Wrap(vsserr.Unexpected, err, "%s %s not started", name, firstArgs(args))
	}
	cctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, args...)
	cmd.SysProcAttr = procgroup.Attr()
	cmd.Cancel = func() error { procgroup.Kill(cmd.Process.Pid); return nil }
	// A killed tool whose children keep its pipes open must not hold
	// Wait: past the grace, lvssd goes on without them.
	cmd.WaitDelay = procgroup.KillGrace
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	stdout := &cmdout.Capped{Max: maxOutput}
	stderr := &cmdout.Tail{Max: 4 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	start := time.Now()
	err = cmd.Run()
	out, _ := stdout.Bytes()
	m.log.Debug("samba command", "command", name, "args", strings.Join(args, " "), "took", time.Since(start), "error", err)
	if err == nil {
		return out, nil
	}
	what := name + " " + firstArgs(args)
	switch {
	case ctx.Err() != nil:
		return nil, vsserr.Wrap(vsserr.Unexpected, ctx.Err(), "%s: cancelled", what)
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		return nil, vsserr.New(vsserr.UnexpectedProviderError, "Samba's %s did not finish within %s and was killed", what, m.timeout)
	}
	why := stderr.LastLine()
	if why == "" {
		why = lastLine(out)
	}
	return nil, vsserr.Wrap(vsserr.UnexpectedProviderError, err, "Samba's %s failed: %s", what, orNone(why))
}

// firstArgs names a command line without its values: "conf addshare".
func firstArgs(args []string) string {
	var kept []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-s" || a == "--parameter-name":
			i++
		case strings.HasPrefix(a, "/"):
		default:
			kept = append(kept, a)
			if len(kept) == 2 {
				return strings.Join(kept, " ")
			}
		}
	}
	return strings.Join(kept, " ")
}

func lastLine(b []byte) string {
	t := &cmdout.Tail{Max: 4 << 10}
	t.Write(b)
	return t.LastLine()
}

// MaxNameLen is the longest share name Windows accepts (NNLEN).
const MaxNameLen = 80

// forbidden are the characters Windows refuses in a share name, with
// Samba's own additions (% starts its substitutions).
const forbidden = `"/\[]:|<>+=;,?*%`

// reserved are names Samba gives a meaning of its own.
var reserved = []string{"global", "homes", "printers", "ipc$"}

// CheckName refuses, with E_INVALIDARG saying why, a share name Windows
// or Samba would refuse or read differently: empty, longer than 80
// characters, not UTF-8, with a control character, one of
// "/\[]:|<>+=;,?*% or leading or trailing white space, or one of Samba's
// own sections (global, homes, printers, IPC$).
func CheckName(name string) error {
	bad := func(why string) error {
		return vsserr.New(vsserr.InvalidArg, "share name %q %s", name, why)
	}
	switch {
	case name == "":
		return bad("is empty")
	case !utf8.ValidString(name):
		return bad("is not UTF-8")
	case utf8.RuneCountInString(name) > MaxNameLen:
		return bad(fmt.Sprintf("is longer than %d characters", MaxNameLen))
	case strings.TrimSpace(name) != name:
		return bad("begins or ends with white space")
	case strings.ContainsFunc(name, unicode.IsControl):
		return bad("has a control character")
	case strings.ContainsAny(name, forbidden):
		return bad("has one of the characters Windows refuses in share names: " + forbidden)
	}
	for _, r := range reserved {
		if strings.EqualFold(name, r) {
			return bad("is a name Samba reserves (global, homes, printers, IPC$)")
		}
	}
	return nil
}
