package inplace

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ChildArg is argv[1] of the hidden mode: a binary whose main calls
// MaybeRunChild runs as the in-place child when started with it.
const ChildArg = "__lvss-inplace"

// The hidden mode's own exit statuses, used only when COMMAND was never
// started (those of env(1) and chroot(1)); see the package doc.
const (
	ExitSetup     = 125 // the namespace, a mount, the working directory or the spec failed
	ExitCannotRun = 126 // COMMAND was found but could not be executed
	ExitNotFound  = 127 // COMMAND was not found
)

// StopGrace is how long COMMAND has, after SIGTERM, to end before it is
// killed (Command's cmd.WaitDelay). A backup tool told to stop removes its
// lock and may write a checkpoint; the snapshots are not frozen, so there
// is time for that.
const StopGrace = 30 * time.Second

// Mount puts a snapshot at its volume's path: Snapshot is where the
// snapshot's content is (its snapshot_path, for a btrfs snapshot the
// volume's directory inside the snapshot), Original the volume's own
// path. Both are absolute paths of the host; Original is resolved again
// inside the namespace at its mount, after the originals above it are in
// place.
type Mount struct {
	Snapshot string `json:"snapshot"`
	Original string `json:"original"`
}

// ErrNoCapability is the answer without CAP_SYS_ADMIN. It says what to do
// instead, since the user meets it on the command line.
var ErrNoCapability = errors.New("--in-place needs CAP_SYS_ADMIN to make a private mount namespace " +
	"(run as root, or drop --in-place and read the snapshots at the paths in LVSS_SNAPSHOT_*)")

// capSysAdmin is CAP_SYS_ADMIN's bit in the capability sets
// (linux/capability.h).
const capSysAdmin = 21

// checkStatus is Check on the text of /proc/self/status: nil, or
// ErrNoCapability.
func checkStatus(status string) error {
	ok, err := hasSysAdmin(status)
	if err != nil {
		return fmt.Errorf("--in-place: checking for CAP_SYS_ADMIN in /proc/self/status: %w", err)
	}
	if !ok {
		return ErrNoCapability
	}
	return nil
}

// hasSysAdmin reads CapEff from the text of /proc/<pid>/status and reports
// whether CAP_SYS_ADMIN is in it. The effective set is what the kernel
// checks at unshare and mount; being uid 0 is not enough in a container
// that dropped the capability.
func hasSysAdmin(status string) (bool, error) {
	for _, line := range strings.Split(status, "\n") {
		v, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		bits, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return false, fmt.Errorf("CapEff %q: %w", strings.TrimSpace(v), err)
		}
		return bits&(1<<capSysAdmin) != 0, nil
	}
	return false, errors.New("no CapEff line")
}

// spec is what the parent tells the child, as JSON in argv[2]. COMMAND's
// argv follows it verbatim and its environment is the child's own, so
// neither needs encoding.
type spec struct {
	Mounts []Mount `json:"mounts"`
	// Dir is the working directory, resolved by path after the mounts.
	Dir string `json:"dir"`
	// HostNS is the parent's mount namespace (readlink /proc/self/ns/mnt):
	// the child mounts nothing while it is still in it.
	HostNS string `json:"host_ns"`
}

// newSpec cleans and checks what Command was given. Only the form is
// checked here: whether the paths exist is the child's to find, in the
// namespace, so that every such failure takes one path (ExitSetup).
func newSpec(mounts []Mount, dir, hostNS string) (spec, error) {
	s := spec{Dir: filepath.Clean(dir), HostNS: hostNS}
	for _, m := range mounts {
		s.Mounts = append(s.Mounts, Mount{Snapshot: filepath.Clean(m.Snapshot), Original: filepath.Clean(m.Original)})
	}
	return s, s.validate()
}

func (s spec) validate() error {
	if len(s.Mounts) == 0 {
		// An in-place backup with nothing in place would read the live
		// data and look like it worked.
		return errors.New("--in-place: no snapshot to mount")
	}
	if !filepath.IsAbs(s.Dir) {
		return fmt.Errorf("--in-place: working directory %q is not an absolute path", s.Dir)
	}
	if s.HostNS == "" {
		return errors.New("--in-place: the parent's mount namespace is unknown")
	}
	seen := map[string]bool{}
	for _, m := range s.Mounts {
		for _, p := range []string{m.Snapshot, m.Original} {
			if !filepath.IsAbs(p) {
				return fmt.Errorf("--in-place: %q is not an absolute path", p)
			}
		}
		if m.Original == "/" {
			return fmt.Errorf("--in-place: cannot put snapshot %s over /: COMMAND would lose /proc, /dev and every other mount; "+
				"snapshot the directories below / instead, or drop --in-place", m.Snapshot)
		}
		if seen[m.Original] {
			return fmt.Errorf("--in-place: two snapshots for %s", m.Original)
		}
		seen[m.Original] = true
	}
	return nil
}

// mountOrder returns the indexes of mounts, parents before children:
// by the depth of Original, then as given. Two originals of one depth
// cannot contain each other, so their order does not matter.
func mountOrder(mounts []Mount) []int {
	idx := make([]int, len(mounts))
	for i := range idx {
		idx[i] = i
	}
	depth := func(p string) int {
		if p == "/" {
			return 0
		}
		return strings.Count(filepath.Clean(p), "/")
	}
	slices.SortStableFunc(idx, func(a, b int) int { return depth(mounts[a].Original) - depth(mounts[b].Original) })
	return idx
}
