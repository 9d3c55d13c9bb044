package prevver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lvss/lvss/internal/mountinfo"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/vsserr"
)

// StartError is a [[previous_versions]] path lvssd refuses to start with:
// the VSS error and what to do about it (lvssd prints the hint).
type StartError struct {
	Err  error
	hint string
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// Hint says what to do about it.
func (e *StartError) Hint() string { return e.hint }

// Check resolves a [[previous_versions]] path (symlinks: Samba's share
// path and shadow_copy2's mountpoint are compared resolved) and checks that
// lvss can snapshot it: it must be a directory, and a provider must support
// the volume holding it. A path on no lvss volume would have no previous
// versions ever; lvssd says so at start rather than keep an empty
// snapdir.
func Check(ctx context.Context, key, path string, provs []provider.Provider) (string, error) {
	const remove = "or remove the [[previous_versions]] entry from lvssd's config"
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", &StartError{vsserr.New(vsserr.ObjectNotFound, "%s %s does not exist", key, path),
				"create the directory, or mount its filesystem before lvssd starts (a drop-in for lvssd.service with " +
					"RequiresMountsFor=" + path + "; docs/previous-versions.md), " + remove}
		}
		return "", &StartError{vsserr.Wrap(vsserr.ObjectNotFound, err, "%s %s", key, path), "check the path's permissions, " + remove}
	}
	fi, err := os.Stat(resolved)
	if err == nil && !fi.IsDir() {
		err = errors.New("not a directory")
	}
	if err != nil {
		return "", &StartError{vsserr.Wrap(vsserr.InvalidArg, err, "%s %s", key, path), "name the directory the Samba share serves, " + remove}
	}
	var names []string
	for _, p := range provs {
		names = append(names, p.Info().Name)
		ok, err := p.IsVolumeSupported(ctx, resolved)
		if err == nil && ok {
			return resolved, nil
		}
	}
	where := ""
	if m, err := mountinfo.ForPath(resolved); err == nil {
		where = fmt.Sprintf(" (it is on %s, mounted at %s)", m.FSType, m.MountPoint)
	}
	return "", &StartError{vsserr.New(vsserr.VolumeNotSupported, "%s %s: no provider can snapshot it%s; providers: %s",
		key, path, where, strings.Join(names, ", ")),
		"keep the share on a volume a provider snapshots (a btrfs filesystem, or a volume named in [providers.copy] or a " +
			"[[providers.exec]]; lvss doctor shows which provider takes which volume), " + remove}
}
