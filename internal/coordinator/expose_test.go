package coordinator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// A requester that is not root may expose a snapshot only over a
// directory of its own whose path it cannot change: not over system
// directories, not in a directory of its own or one everyone may write
// (where it could swap its directory for a symlink before the mount).
func TestExposeByNonRootNeedsItsOwnFixedDirectory(t *testing.T) {
	testenv.RequireRoot(t)
	const uid = 61234
	e := newEnv(t, nil)
	_, snap := e.persistentSet(false)
	base := t.TempDir() // root's, 0700, in the sticky /tmp
	mk := func(rel string, owner int, mode os.FileMode) string {
		p := filepath.Join(base, rel)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, owner, owner); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mk("exposures", 0, 0o755)
	good := mk("exposures/alice", uid, 0o755)
	rootsDir := mk("exposures/root", 0, 0o755)
	mk("mine", uid, 0o755)
	inMine := mk("mine/x", uid, 0o755)
	open := mk("open", 0, 0o777)
	inOpen := mk("open/x", uid, 0o755)

	s := e.c.NewSession(Peer{UID: uid, GID: uid, PID: 1})
	must(t, s.InitializeForBackup(""))
	must(t, s.SetContext(vss.CtxAll))
	defer s.Release(context.Background())
	ctx := context.Background()
	for _, refused := range []string{rootsDir, "/etc", inMine, inOpen, open} {
		if _, err := s.ExposeSnapshot(ctx, snap, "", vss.AttrExposedLocally, refused); !errors.Is(err, vsserr.AccessDenied) {
			t.Errorf("expose at %s by uid %d: %v, want E_ACCESSDENIED", refused, uid, err)
		}
	}
	name, err := s.ExposeSnapshot(ctx, snap, "", vss.AttrExposedLocally, good)
	if err != nil {
		t.Fatalf("expose at its own directory %s: %v", good, err)
	}
	if name == "" {
		t.Fatal("no exposed name")
	}
	must(t, s.UnexposeSnapshot(ctx, snap))
}
