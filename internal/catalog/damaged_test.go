package catalog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/uuid"
)

// A catalog file damaged in the middle (a bad disk block, a partial copy)
// is refused at Open with a CorruptError that names the file and says how
// to recover; lvssd must never start over it or panic on it later.
func TestOpenRefusesDamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		s := Snapshot{ID: uuid.New(), SetID: uuid.New(), OriginalVolume: "/srv/" + strings.Repeat("v", 100)}
		if err := db.PutSnapshots(s); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	// Every page after the two meta pages gets garbage: whatever bbolt
	// reads first, it finds damage.
	junk := []byte(strings.Repeat("\xde\xad\xbe\xef", 1024))
	for off := int64(2 * 4096); off < st.Size(); off += 4096 {
		if _, err := f.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	_, err = Open(path)
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("Open of a damaged file: %v (%T), want a CorruptError", err, err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(ce.Hint(), "--adopt-snapshots") {
		t.Fatalf("error %q, hint %q", err, ce.Hint())
	}
}

// A filesystem that refuses writes (read-only, full, permissions) is not a
// damaged catalog: Open says so, and its hint is not to move the file
// aside. (test/e2e's fault matrix opens one on a read-only ext4.)
func TestUnwritableIsNotDamage(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EROFS, syscall.EACCES, syscall.ENOSPC} {
		err := &os.PathError{Op: "open", Path: "/var/lib/lvss/catalog.db", Err: errno}
		if !unwritable(fmt.Errorf("open: %w", err)) {
			t.Errorf("%v is not taken for an unwritable filesystem", errno)
		}
	}
	if unwritable(errors.New("invalid database")) {
		t.Error("a damaged file is taken for an unwritable filesystem")
	}
	u := &UnwritableError{Path: "/var/lib/lvss/catalog.db", Err: syscall.EROFS}
	if !strings.Contains(u.Hint(), "not damaged") || strings.Contains(u.Hint(), "mv ") {
		t.Errorf("hint: %s", u.Hint())
	}
}
