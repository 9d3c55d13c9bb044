package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Mount is one line of mountinfo (proc(5)).
type Mount struct {
	ID, Parent   int
	Major, Minor uint32 // the filesystem's superblock device
	Root         string // path of the mount's root inside the filesystem (btrfs: the subvolume)
	MountPoint   string
	Options      string // per-mount options
	FSType       string
	Source       string
	SuperOptions string // per-superblock options (btrfs: subvol=, subvolid=)
}

// Device is "major:minor", the key that names one superblock.
func (m Mount) Device() string { return fmt.Sprintf("%d:%d", m.Major, m.Minor) }

// ReadOnly reports whether the mount is read-only.
func (m Mount) ReadOnly() bool {
	for _, o := range strings.Split(m.Options, ",") {
		if o == "ro" {
			return true
		}
	}
	return false
}

// Read returns the mounts of this process's mount namespace, in mount order.
func Read() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// Parse reads mountinfo text.
func Parse(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		m, err := parseLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", n, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

func parseLine(l string) (Mount, error) {
	f := strings.Fields(l)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 10 || sep < 0 || len(f) < sep+4 {
		return Mount{}, fmt.Errorf("malformed %q", l)
	}
	var m Mount
	var err error
	if m.ID, err = strconv.Atoi(f[0]); err != nil {
		return m, err
	}
	if m.Parent, err = strconv.Atoi(f[1]); err != nil {
		return m, err
	}
	maj, min, ok := strings.Cut(f[2], ":")
	if !ok {
		return m, fmt.Errorf("bad device %q", f[2])
	}
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return m, fmt.Errorf("bad device %q", f[2])
	}
	m.Major, m.Minor = uint32(a), uint32(b)
	m.Root, m.MountPoint, m.Options = unescape(f[3]), unescape(f[4]), f[5]
	m.FSType, m.Source, m.SuperOptions = f[sep+1], unescape(f[sep+2]), f[sep+3]
	return m, nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space...).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ForPath returns the mount that holds path: the last-mounted mount whose
// mount point is the longest prefix of the path with symlinks resolved.
func ForPath(path string) (Mount, error) {
	ms, err := Read()
	if err != nil {
		return Mount{}, err
	}
	return Find(ms, path)
}

// Find is ForPath over a given mount list.
func Find(ms []Mount, path string) (Mount, error) {
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		return Mount{}, err
	}
	p = filepath.Clean(p)
	best := -1
	for i, m := range ms {
		if !within(p, m.MountPoint) {
			continue
		}
		// Later lines stack over earlier ones at the same point.
		if best < 0 || len(m.MountPoint) >= len(ms[best].MountPoint) {
			best = i
		}
	}
	if best < 0 {
		return Mount{}, fmt.Errorf("no mount holds %s", p)
	}
	return ms[best], nil
}

func within(p, root string) bool {
	return root == "/" || p == root || strings.HasPrefix(p, root+"/")
}
