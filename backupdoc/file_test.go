package backupdoc

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lvss/lvss/vsserr"
)

// dirNames lists a directory, to see that no temporary file was left.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFile(t *testing.T) {
	s := newSample(t)
	path := filepath.Join(t.TempDir(), "backup.tar")
	if err := WriteFile(path, s.m, s.bcd, s.wmds); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, s.write(t)) {
		t.Errorf("the file is not what Write writes")
	}
	a, err := ReadFile(path)
	if err != nil || a.Manifest.SnapshotSetID != setID {
		t.Fatalf("%v %+v", err, a)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm()&^0o644 != 0 || fi.Mode().Perm()&0o600 != 0o600 {
		t.Errorf("new archive has mode %v, want 0644 less the umask", fi.Mode())
	}
	// The second write of a backup (after BackupComplete) replaces the
	// first and keeps a mode the user chose.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	s.m.Stage, s.m.LvssVersion = StageBackupComplete, "0.9.1"
	if err := WriteFile(path, s.m, s.bcd, s.wmds); err != nil {
		t.Fatal(err)
	}
	if a, err := ReadFile(path); err != nil || a.Manifest.LvssVersion != "0.9.1" {
		t.Fatalf("%v %+v", err, a)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("replaced archive has mode %v, want the old 0600", fi.Mode())
	}
	if names := dirNames(t, filepath.Dir(path)); !slices.Equal(names, []string{"backup.tar"}) {
		t.Errorf("directory holds %v", names)
	}
}

// TestWriteFileFailureKeepsOld: a write that fails halfway (a full disk,
// an I/O error) leaves the previous archive whole and no temporary file.
func TestWriteFileFailureKeepsOld(t *testing.T) {
	s := newSample(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "backup.tar")
	if err := WriteFile(path, s.m, s.bcd, s.wmds); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path)

	full := errors.New("no space left on device")
	err := writeAtomic(path, func(w io.Writer) error {
		w.Write(s.write(t)[:1000])
		return full
	})
	if vsserr.Code(err) != vsserr.Fail || !strings.Contains(err.Error(), path+": write: no space left on device") {
		t.Errorf("failing writer: %v", err)
	}
	// An archive Write refuses never reaches the disk either.
	s.m.SnapshotSetID = setID
	s.bcd = "<BACKUP_COMPONENTS"
	if err := WriteFile(path, s.m, s.bcd, s.wmds); vsserr.Code(err) != vsserr.CorruptXMLDocument {
		t.Errorf("refused archive: %v", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, old) {
		t.Errorf("the previous archive changed")
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"backup.tar"}) {
		t.Errorf("directory holds %v, want only the old archive", names)
	}
}

func TestWriteFileErrors(t *testing.T) {
	s := newSample(t)
	dir := t.TempDir()
	err := WriteFile(filepath.Join(dir, "missing", "backup.tar"), s.m, s.bcd, s.wmds)
	if vsserr.Code(err) != vsserr.ObjectNotFound || !strings.Contains(err.Error(), "create a temporary file beside it") {
		t.Errorf("missing directory: %v", err)
	}
	if err := WriteFile(dir, s.m, s.bcd, s.wmds); vsserr.Code(err) != vsserr.InvalidArg || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory as FILE: %v", err)
	}
	_, err = ReadFile(filepath.Join(dir, "nothing.tar"))
	if vsserr.Code(err) != vsserr.ObjectNotFound || err.Error() != "VSS_E_OBJECT_NOT_FOUND (0x80042308): "+filepath.Join(dir, "nothing.tar")+": open: no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.tar")
	os.WriteFile(bad, tarOf(t, entry{name: "bcd.xml", data: s.bcd}), 0o644)
	if _, err := ReadFile(bad); vsserr.Code(err) != vsserr.InvalidArg || !strings.HasPrefix(vsserr.Message(err), bad+": the archive holds no manifest.json") {
		t.Errorf("bad archive: %v", err)
	}
}

// TestWriteFileSymlink: a link to the archive stays a link.
func TestWriteFileSymlink(t *testing.T) {
	s := newSample(t)
	dir := t.TempDir()
	real := filepath.Join(dir, "monday.tar")
	link := filepath.Join(dir, "latest.tar")
	if err := os.Symlink("monday.tar", link); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(link, s.m, s.bcd, s.wmds); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
	if _, err := ReadFile(real); err != nil {
		t.Errorf("the link's target was not written: %v", err)
	}
}
