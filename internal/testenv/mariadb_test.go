package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMariaDBStartsAndACopyRecovers: a server starts in a test's temp dir
// as the mysql user, with the binary log on; a second server starts on a
// copy of its data directory (taken while the first runs, as from a
// snapshot), recovers, and has the first one's data, and neither touches
// the other's files.
func TestMariaDBStartsAndACopyRecovers(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	m := StartMariaDB(t, MariaDBOptions{DataDir: data})
	if fi, err := os.Stat(m.Socket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %s: %v", m.Socket, err)
	}
	m.MustExec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO app.t VALUES (1),(2),(3)")
	if got := m.MustExec("SELECT @@log_bin, @@innodb_flush_log_at_trx_commit, @@datadir"); got != "1\t1\t"+data+"/" {
		t.Fatalf("server settings %q", got)
	}
	gtid := m.MustExec("SELECT @@gtid_binlog_pos")
	if gtid == "" {
		t.Fatal("no GTID after three commits with the binary log on")
	}
	copyDir := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", data, copyDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	c := StartMariaDBCopy(t, copyDir, MariaDBOptions{})
	if c.Port == m.Port || c.Socket == m.Socket {
		t.Fatal("the copy's server shares the original's port or socket")
	}
	if got := c.MustExec("SELECT COUNT(*) FROM app.t"); got != "3" {
		t.Fatalf("the copy has %s rows", got)
	}
	if got := c.MustExec("SELECT @@gtid_binlog_pos"); got != gtid {
		t.Fatalf("the copy's gtid_binlog_pos is %q, the original's %q", got, gtid)
	}
	c.MustExec("INSERT INTO app.t VALUES (4)")
	if got := m.MustExec("SELECT COUNT(*) FROM app.t"); got != "3" {
		t.Fatalf("a write to the copy reached the original: %s rows", got)
	}
	c.Stop()
	if c.Running() {
		t.Fatal("Stop left the copy's server running")
	}
	if !strings.Contains(c.Log(), "Shutdown complete") {
		t.Errorf("no clean shutdown in the copy's log:\n%s", c.Log())
	}
}
