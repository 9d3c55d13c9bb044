package mysql

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLocalDirAndDataFiles(t *testing.T) {
	dir := t.TempDir()
	real, _ := filepath.EvalSymlinks(dir)
	for _, tc := range []struct{ value, base, want string }{
		{"", real, real},
		{"./", real, real},
		{"logs/../", real, real},
		{dir + "/", "", real},
	} {
		got, err := localDir(tc.value, tc.base, "x")
		if err != nil || got != tc.want {
			t.Errorf("localDir(%q, %q) = %q, %v; want %q", tc.value, tc.base, got, err, tc.want)
		}
	}
	missing := filepath.Join(dir, "elsewhere")
	if _, err := localDir(missing, "", "datadir"); err == nil || !strings.Contains(err.Error(), "does not exist on this host") {
		t.Errorf("a datadir that is not here: %v", err)
	}
	if _, err := localDir("relative", "", "datadir"); err == nil {
		t.Error("a relative datadir was accepted")
	}
	if got := dataFiles("ibdata1:12M;/abs/ibdata2:50M:autoextend"); !slices.Equal(got, []string{"ibdata1", "/abs/ibdata2"}) {
		t.Errorf("dataFiles: %q", got)
	}
}

// TestLayoutDiffers: what PrepareForSnapshot tells apart from what
// Identify declared.
func TestLayoutDiffers(t *testing.T) {
	base := func() *layout {
		return &layout{
			dataDir:    "/d",
			data:       []fileSet{{"/d", "*"}, {"/d/app", "*"}, {"/d/mysql", "*"}},
			logs:       []fileSet{{"/d", "ib_logfile*"}, {"/d", "binlog.*"}},
			schemaDirs: []string{"app", "mysql"},
		}
	}
	if d := base().differs(base()); d != "" {
		t.Errorf("the same layout differs: %s", d)
	}
	now := base()
	now.data = append(now.data, fileSet{"/d/shop", "*"})
	now.schemaDirs = append(now.schemaDirs, "shop")
	if d := base().differs(now); !strings.Contains(d, "shop") {
		t.Errorf("a new database: %q", d)
	}
	now = base()
	now.data = []fileSet{{"/d", "*"}, {"/d/mysql", "*"}}
	now.schemaDirs = []string{"mysql"}
	if d := base().differs(now); d != "" {
		t.Errorf("a dropped database is harmless, but: %s", d)
	}
	now = base()
	now.logs[0] = fileSet{"/redo", "ib_logfile*"}
	if d := base().differs(now); !strings.Contains(d, "/redo") {
		t.Errorf("a moved redo log: %q", d)
	}
	now = base()
	now.dataDir = "/e"
	if d := base().differs(now); !strings.Contains(d, "/e") {
		t.Errorf("another data directory: %q", d)
	}
}
