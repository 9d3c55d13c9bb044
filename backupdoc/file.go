package backupdoc

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vsserr"
)

// WriteFile writes the archive (as Write does) to path, replacing what is
// there atomically: the archive goes to a temporary file in the same
// directory (.NAME.tmp-N, so that it is on the same filesystem), is
// synced, and is renamed over path; then the directory is synced so that
// the rename itself survives a crash. A backup interrupted at any point
// leaves either the previous archive or the new one, never a torn one;
// when writing fails the previous archive stays and the temporary file
// is removed. Only a process killed outright can leave a temporary file
// behind, which is never mistaken for the archive.
//
// A new file gets mode 0644 less the umask; a file replaced keeps its
// mode. When path is a symbolic link, the file it points to is replaced
// and the link stays.
func WriteFile(path string, m Manifest, bcdXML string, wmds map[uuid.UUID]string) error {
	// Built in memory first, so that an archive Write refuses never
	// touches the disk; archives are small (see the limits).
	var b bytes.Buffer
	if err := Write(&b, m, bcdXML, wmds); err != nil {
		return err
	}
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(b.Bytes())
		return err
	})
}

// ReadFile reads and checks the archive at path (see Read). Every error
// names the path.
func ReadFile(path string) (*Archive, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileErr(path, ioErr("open", unwrapPath(err)))
	}
	defer f.Close()
	a, err := Read(f)
	if err != nil {
		return nil, fileErr(path, err)
	}
	return a, nil
}

// ReadAnyFile reads and checks the archive at path, a single host's or a
// cluster set's (see ReadAny). Every error names the path.
func ReadAnyFile(path string) (*Archive, *ClusterArchive, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fileErr(path, ioErr("open", unwrapPath(err)))
	}
	defer f.Close()
	a, c, err := ReadAny(f)
	if err != nil {
		return nil, nil, fileErr(path, err)
	}
	return a, c, nil
}

// fileErr puts the archive's path in front of the problem, keeping its code.
func fileErr(path string, err error) error {
	return vsserr.New(vsserr.Code(err), "%s: %s", path, vsserr.Message(err))
}

// unwrapPath drops the path an *os.PathError repeats, for messages that
// already start with it.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// writeAtomic replaces path with what write writes, as WriteFile
// describes.
func writeAtomic(path string, write func(io.Writer) error) error {
	target := linkTarget(path)
	perm, keepMode := os.FileMode(0o644), false
	if fi, serr := os.Stat(target); serr == nil {
		if !fi.Mode().IsRegular() {
			return vsserr.New(vsserr.InvalidArg, "%s is not a regular file; the backup archive would replace it", path)
		}
		perm, keepMode = fi.Mode().Perm(), true
	}
	dir := filepath.Dir(target)
	f, tmp, err := createTemp(dir, filepath.Base(target), perm)
	if err != nil {
		return fileErr(path, ioErr("create a temporary file beside it", err))
	}
	closed, renamed := false, false
	defer func() {
		if !closed {
			f.Close()
		}
		if !renamed {
			os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return fileErr(path, ioErr("write", err))
	}
	if keepMode {
		// The umask applied when the temporary file was created; the
		// file it replaces had exactly this mode.
		if err := f.Chmod(perm); err != nil {
			return fileErr(path, ioErr("chmod", err))
		}
	}
	if err := f.Sync(); err != nil {
		return fileErr(path, ioErr("sync", err))
	}
	closed = true
	if err := f.Close(); err != nil {
		return fileErr(path, ioErr("close", err))
	}
	if err := os.Rename(tmp, target); err != nil {
		return fileErr(path, ioErr("rename", unwrapLink(err)))
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		// The new archive is in place; only its surviving a crash of
		// the machine is in doubt, which the caller should hear about.
		return fileErr(path, ioErr("sync directory "+dir, err))
	}
	return nil
}

// createTemp is os.CreateTemp with a mode: os.CreateTemp always uses 0600,
// and an archive should be as readable as any file the user creates.
func createTemp(dir, base string, perm os.FileMode) (*os.File, string, error) {
	for range 100 {
		name := filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(uint64(rand.Uint32()), 10))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, name, unwrapPath(err)
	}
	return nil, "", errors.New("no unused temporary file name")
}

func unwrapLink(err error) error {
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return unwrapPath(err)
	}
	defer d.Close()
	err = d.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil // the filesystem cannot sync a directory (some FUSE and network ones): nothing more to do
	}
	return unwrapPath(err)
}

// linkTarget follows symbolic links from path to the file they name, which
// need not exist yet (a link made ready for the first backup).
// filepath.EvalSymlinks would fail on that; a loop stops at 40 links, as
// the kernel does.
func linkTarget(path string) string {
	for range 40 {
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return path
		}
		to, err := os.Readlink(path)
		if err != nil {
			return path
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(path), to)
		}
		path = to
	}
	return path
}
