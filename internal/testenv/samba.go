package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SambaShare is one share section of a throwaway smbd's smb.conf.
type SambaShare struct {
	Name string
	Path string
	// Params are further lines of the section, "key = value".
	Params []string
}

// SambaOptions configure a throwaway smbd.
type SambaOptions struct {
	Shares []SambaShare
	// RegistryShares serves the shares kept in Samba's registry (`net
	// conf addshare`) besides those of the file.
	RegistryShares bool
	// Global are further lines of [global], "key = value".
	Global []string
	// Extra is more smb.conf text, appended as it is after the shares
	// (a share section that lvss samba-config printed, pasted).
	Extra string
	// Users are accounts of the machine (such as "nobody") added to the
	// private passdb beside root, with the same password, so that a test
	// can connect as a user who is not root (ClientAs). The machine's
	// accounts are only read.
	Users []string
}

// Samba is a running throwaway smbd, with the samba-dcerpcd that answers
// its RPC (share listing): a private smb.conf whose every directory
// (private, lock, state, cache, pid, ncalrpc, logs) is in a temp dir of
// its own, listening on a free TCP port of 127.0.0.1 only, with one
// tdbsam user. The machine's own Samba configuration and services are
// never read or touched: every Samba command the test runs is given
// this Conf.
type Samba struct {
	Port     int
	Conf     string // its smb.conf
	Dir      string // the temp dir holding the config and Samba's own files
	User     string // the tdbsam user (root)
	Password string

	t     testing.TB
	procs []*sambaProc
}

type sambaProc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	once   sync.Once
}

// sambaDcerpcd is where Debian's samba package puts samba-dcerpcd.
const sambaDcerpcd = "/usr/libexec/samba/samba-dcerpcd"

// StartSamba starts smbd (and samba-dcerpcd) as opts say and waits until
// they list their shares. Cleanup kills both (SIGKILL to their process
// groups, the per-connection smbd children included) and removes the temp
// dir, also when the test fails; the logs are shown then. Missing Samba
// parts (smbd, smbclient, net, smbpasswd, samba-dcerpcd, the
// shadow_copy2 module) are reported with Missing. It needs root: smbd
// switches to the connecting user.
func StartSamba(t testing.TB, opts SambaOptions) *Samba {
	t.Helper()
	RequireRoot(t)
	for _, bin := range []string{"smbd", "smbclient", "net", "smbpasswd"} {
		if _, err := exec.LookPath(bin); err != nil {
			Missing(t, bin+" (apt-get install samba smbclient)")
		}
	}
	if _, err := os.Stat(sambaDcerpcd); err != nil {
		Missing(t, sambaDcerpcd+" (apt-get install samba)")
	}
	if mods := sambaModulesDir(); mods == "" {
		Missing(t, "smbd -b naming its MODULESDIR")
	} else if _, err := os.Stat(filepath.Join(mods, "vfs", "shadow_copy2.so")); err != nil {
		Missing(t, "Samba's shadow_copy2 module (apt-get install samba-vfs-modules)")
	}
	// A short path of its own: Samba's sockets (ncalrpc, messaging) live
	// under it and must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "lvss-smb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := startSamba(t, dir, attempt, opts)
		if err == nil {
			return s
		}
		lastErr = err
		if !errors.Is(err, errSambaPortTaken) {
			break
		}
	}
	t.Fatalf("smbd: %v", lastErr)
	return nil
}

var errSambaPortTaken = errors.New("port taken")

func startSamba(t testing.TB, top string, attempt int, opts SambaOptions) (*Samba, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(top, strconv.Itoa(attempt))
	s := &Samba{Port: port, Dir: dir, Conf: filepath.Join(dir, "smb.conf"), User: "root", Password: "lvss-test", t: t}
	for _, d := range []string{"private", "lock", "state", "cache", "pid", "ncalrpc", "log"} {
		// Samba checks modes: ncalrpc and lock must be 0755, private 0700.
		mode := os.FileMode(0o755)
		if d == "private" {
			mode = 0o700
		}
		if err := os.MkdirAll(filepath.Join(dir, d), mode); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(s.Conf, []byte(sambaConf(dir, port, opts)), 0o600); err != nil {
		return nil, err
	}
	for _, u := range append([]string{s.User}, opts.Users...) {
		add := exec.Command("smbpasswd", "-c", s.Conf, "-s", "-a", u)
		add.Stdin = strings.NewReader(s.Password + "\n" + s.Password + "\n")
		if out, err := add.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("smbpasswd -a %s: %v\n%s", u, err, out)
		}
	}
	t.Cleanup(func() {
		for _, p := range s.procs {
			p.stop()
		}
		if t.Failed() {
			for _, p := range s.procs {
				b, _ := os.ReadFile(p.log)
				t.Logf("--- %s (port %d) log:\n%s", p.name, port, b)
			}
		}
	})
	// samba-dcerpcd first: smbd hands it the RPC pipes (srvsvc answers
	// the share listing). smbd would start it on demand, but with the
	// machine's default config path, not this one.
	for _, p := range [][]string{
		{sambaDcerpcd, "-s", s.Conf, "-F", "--no-process-group", "--libexec-rpcds", "--debug-stdout", "-d", "1"},
		{"smbd", "-s", s.Conf, "-F", "--no-process-group", "--debug-stdout", "-d", "1"},
	} {
		if err := s.start(p[0], p[1:]); err != nil {
			return nil, err
		}
	}
	end := time.Now().Add(20 * time.Second)
	for {
		shares, err := s.list()
		if err == nil && contains(shares, "IPC$") {
			return s, nil
		}
		for _, p := range s.procs {
			select {
			case <-p.exited:
				b, _ := os.ReadFile(p.log)
				if strings.Contains(string(b), "Address already in use") {
					return nil, errSambaPortTaken
				}
				return nil, fmt.Errorf("%s exited at start (%v); its log:\n%s", p.name, p.cmd.ProcessState, b)
			default:
			}
		}
		if time.Now().After(end) {
			return nil, fmt.Errorf("no share listing from port %d within 20s (last: %v)", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sambaConf(dir string, port int, opts SambaOptions) string {
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	line("[global]")
	line("  smb ports = %d", port)
	line("  interfaces = 127.0.0.1")
	line("  bind interfaces only = yes")
	line("  server role = standalone server")
	line("  disable netbios = yes")
	line("  private dir = %s", filepath.Join(dir, "private"))
	line("  lock directory = %s", filepath.Join(dir, "lock"))
	line("  state directory = %s", filepath.Join(dir, "state"))
	line("  cache directory = %s", filepath.Join(dir, "cache"))
	line("  pid directory = %s", filepath.Join(dir, "pid"))
	line("  ncalrpc dir = %s", filepath.Join(dir, "ncalrpc"))
	line("  log file = %s", filepath.Join(dir, "log", "log.%m"))
	line("  passdb backend = tdbsam:%s", filepath.Join(dir, "private", "passdb.tdb"))
	line("  rpc start on demand helpers = no")
	line("  load printers = no")
	line("  printing = bsd")
	line("  printcap name = /dev/null")
	line("  disable spoolss = yes")
	if opts.RegistryShares {
		line("  registry shares = yes")
	}
	for _, g := range opts.Global {
		line("  %s", g)
	}
	for _, sh := range opts.Shares {
		line("[%s]", sh.Name)
		line("  path = %s", sh.Path)
		for _, p := range sh.Params {
			line("  %s", p)
		}
	}
	b.WriteString(opts.Extra)
	return b.String()
}

func (s *Samba) start(bin string, args []string) error {
	p := &sambaProc{name: filepath.Base(bin), log: filepath.Join(s.Dir, "log", filepath.Base(bin)+".out"), exited: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return err
	}
	defer f.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// A process group of its own: smbd forks a child per connection, and
	// the cleanup kills them all at once.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return err
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	s.procs = append(s.procs, p)
	return nil
}

func (p *sambaProc) stop() {
	p.once.Do(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	})
}

// Stop kills smbd and samba-dcerpcd at once and waits for them; it is
// idempotent.
func (s *Samba) Stop() {
	for _, p := range s.procs {
		p.stop()
	}
}

// Client runs smbclient's commands (`-c`, separated by ';') on a share as
// the test's user, and returns what it printed (stdout and stderr).
func (s *Samba) Client(share, commands string) (string, error) {
	return s.ClientAs(s.User, share, commands)
}

// ClientAs is Client as another user of SambaOptions.Users: smbd opens
// the files as that user.
func (s *Samba) ClientAs(user, share, commands string) (string, error) {
	return s.run("smbclient", "-s", s.Conf, "-p", strconv.Itoa(s.Port), "-U", user+"%"+s.Password,
		"//127.0.0.1/"+share, "-c", commands)
}

// SambaClient is an interactive smbclient with a share open: one
// connection that stays, as a Windows client's does, so that a test can
// see what happens to it when the share goes away.
type SambaClient struct {
	in  io.WriteCloser
	out *bufio.Reader
}

// Open connects an interactive smbclient to the share; cleanup ends it.
// Its output is unbuffered (stdbuf), so each answer arrives when it is
// made.
func (s *Samba) Open(t testing.TB, share string) *SambaClient {
	t.Helper()
	cmd := exec.Command("stdbuf", "-o0", "-e0", "smbclient", "-s", s.Conf, "-p", strconv.Itoa(s.Port), "-U", s.User+"%"+s.Password,
		"//127.0.0.1/"+share)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); r.Close() })
	return &SambaClient{in: in, out: bufio.NewReader(r)}
}

// Ls lists the share's root on the open connection and returns what
// smbclient printed: the listing up to its last line ("N blocks of size
// ... available"), or the error (NT_STATUS_...), or all it printed before
// it ended.
func (c *SambaClient) Ls(t testing.TB) string {
	t.Helper()
	io.WriteString(c.in, "ls\n")
	var b strings.Builder
	for {
		line, err := c.out.ReadString('\n')
		b.WriteString(line)
		if err != nil || strings.Contains(line, "blocks available") || strings.Contains(line, "NT_STATUS_") {
			return b.String()
		}
	}
}

// Shares lists the shares smbd offers, as `smbclient -L` sees them (the
// srvsvc share enumeration a Windows client makes).
func (s *Samba) Shares(t testing.TB) []string {
	t.Helper()
	shares, err := s.list()
	if err != nil {
		t.Fatalf("smbclient -L: %v", err)
	}
	return shares
}

func (s *Samba) list() ([]string, error) {
	out, err := s.run("smbclient", "-s", s.Conf, "-p", strconv.Itoa(s.Port), "-U", s.User+"%"+s.Password,
		"-L", "//127.0.0.1", "-g")
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	var shares []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "|")
		if len(f) >= 2 && (f[0] == "Disk" || f[0] == "IPC") {
			shares = append(shares, f[1])
		}
	}
	return shares, nil
}

// Net runs Samba's `net` with this smbd's config (`net conf ...` edits
// its registry shares).
func (s *Samba) Net(args ...string) (string, error) {
	return s.run("net", append([]string{"-s", s.Conf}, args...)...)
}

func (s *Samba) run(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// sambaModulesDir is smbd's module directory (`smbd -b`), "" if unknown.
func sambaModulesDir() string {
	out, err := exec.Command("smbd", "-b").Output()
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && k == "MODULESDIR" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
