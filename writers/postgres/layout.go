package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// tablespace is one user tablespace of the cluster.
type tablespace struct {
	OID  uint32
	Name string
	// Location is the directory the server keeps it in, with symbolic
	// links resolved (pg_tablespace_location names the target of the
	// link in pg_tblspc).
	Location string
}

// layout is where a cluster keeps its files, as the server reports them
// and resolved on this machine. Every path is absolute, clean and free of
// symbolic links, so that it matches the volumes a requester adds to the
// snapshot set and the placements lvssd computes from them.
type layout struct {
	Version    string // server_version, e.g. "15.18 (Debian 15.18-0+deb12u1)"
	VersionNum int    // server_version_num, e.g. 150018
	SystemID   uint64 // pg_control's system identifier: tells clusters apart
	DataDir    string
	// WALDir is where pg_wal really is: DataDir/pg_wal, or the target of
	// that link when the cluster was made with initdb --waldir.
	WALDir      string
	Tablespaces []tablespace // by name
}

// within reports whether path is root or lies below it (both clean).
func within(path, root string) bool {
	return path == root || root == "/" || strings.HasPrefix(path, root+"/")
}

// root is one directory tree a cluster needs captured, and what it is.
type root struct {
	Role string // "data directory", "WAL directory", "tablespace NAME"
	Path string
}

// roots are the directory trees that hold the cluster: the data directory,
// and the WAL directory and each tablespace when they lie outside it
// (inside it they are part of its tree). Each is one file set of the
// component, and all of them must be captured at one instant.
func (l *layout) roots() []root {
	out := []root{{"data directory", l.DataDir}}
	covered := func(p string) bool {
		for _, r := range out {
			if within(p, r.Path) {
				return true
			}
		}
		return false
	}
	if !covered(l.WALDir) {
		out = append(out, root{"WAL directory", l.WALDir})
	}
	for _, ts := range l.Tablespaces {
		if !covered(ts.Location) {
			out = append(out, root{"tablespace " + ts.Name, ts.Location})
		}
	}
	return out
}

// describe is a one-line summary for captions and messages.
func (l *layout) describe() string {
	s := fmt.Sprintf("data %s, WAL %s", l.DataDir, l.WALDir)
	for _, ts := range l.Tablespaces {
		s += fmt.Sprintf(", tablespace %s %s", ts.Name, ts.Location)
	}
	return s
}

// diff says how other differs from l in what the requester's metadata
// depends on ("" if it does not).
func (l *layout) diff(other *layout) string {
	var d []string
	if l.DataDir != other.DataDir {
		d = append(d, fmt.Sprintf("data directory %s is now %s", l.DataDir, other.DataDir))
	}
	if l.WALDir != other.WALDir {
		d = append(d, fmt.Sprintf("WAL directory %s is now %s", l.WALDir, other.WALDir))
	}
	was := map[string]string{}
	for _, ts := range l.Tablespaces {
		was[ts.Name] = ts.Location
	}
	for _, ts := range other.Tablespaces {
		old, ok := was[ts.Name]
		switch {
		case !ok:
			d = append(d, fmt.Sprintf("tablespace %s was created in %s", ts.Name, ts.Location))
		case old != ts.Location:
			d = append(d, fmt.Sprintf("tablespace %s moved from %s to %s", ts.Name, old, ts.Location))
		}
		delete(was, ts.Name)
	}
	for _, name := range slices.Sorted(maps.Keys(was)) {
		d = append(d, fmt.Sprintf("tablespace %s was dropped", name))
	}
	return strings.Join(d, "; ")
}

// readLayout asks the server where its files are and resolves the paths
// on this machine. It refuses servers older than MinServerVersion and a
// server whose data directory is not here (a DSN that reaches another
// host): the snapshot of this machine's volumes would not hold its files.
func readLayout(ctx context.Context, conn *pgx.Conn) (*layout, error) {
	l := &layout{}
	// server_version_num and pg_control_system() are readable by every
	// role; data_directory needs pg_read_all_settings, so the version is
	// checked first and an old server gets the clearer message.
	var sysid int64
	err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int, current_setting('server_version'), "+
		"(SELECT system_identifier FROM pg_control_system())").Scan(&l.VersionNum, &l.Version, &sysid)
	if err != nil {
		return nil, fail(ctx, err, "reading the server's version")
	}
	l.SystemID = uint64(sysid)
	if l.VersionNum < MinServerVersion {
		return nil, writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"postgres writer: PostgreSQL %s is not supported: the writer needs PostgreSQL 15 or later", l.Version)
	}
	var dataDir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dataDir); err != nil {
		return nil, fail(ctx, err, "reading data_directory (the role needs pg_read_all_settings or superuser)")
	}
	rows, err := conn.Query(ctx, "SELECT oid::int8, spcname::text, pg_tablespace_location(oid) FROM pg_tablespace "+
		"WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY spcname")
	if err != nil {
		return nil, fail(ctx, err, "listing tablespaces")
	}
	type spc struct {
		oid       int64
		name, loc string
	}
	spcs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (spc, error) {
		var s spc
		err := r.Scan(&s.oid, &s.name, &s.loc)
		return s, err
	})
	if err != nil {
		return nil, fail(ctx, err, "listing tablespaces")
	}

	if l.DataDir, err = resolve(dataDir, "data directory"); err != nil {
		return nil, err
	}
	if err := checkSameCluster(l.DataDir, l.SystemID); err != nil {
		return nil, err
	}
	if l.WALDir, err = resolve(filepath.Join(l.DataDir, "pg_wal"), "WAL directory"); err != nil {
		return nil, err
	}
	for _, s := range spcs {
		loc := s.loc
		if loc == "" || !filepath.IsAbs(loc) {
			// An in-place tablespace (allow_in_place_tablespaces): a
			// directory in pg_tblspc itself.
			loc = filepath.Join(l.DataDir, "pg_tblspc", strconv.FormatInt(s.oid, 10))
		}
		real, err := resolve(loc, "tablespace "+s.name)
		if err != nil {
			return nil, err
		}
		l.Tablespaces = append(l.Tablespaces, tablespace{OID: uint32(s.oid), Name: s.name, Location: real})
	}
	return l, nil
}

// resolve returns path with every symbolic link resolved. A path that is
// missing or not a directory here fails NONRETRYABLE: the writer is not on
// the server's machine, or cannot see its files.
func resolve(path, what string) (string, error) {
	real, err := filepath.EvalSymlinks(path)
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Stat(real); err == nil && !fi.IsDir() {
			err = fmt.Errorf("not a directory")
		}
	}
	switch {
	case err == nil:
		return filepath.Clean(real), nil
	case errors.Is(err, fs.ErrNotExist):
		return "", writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"postgres writer: the server's %s %s does not exist on this machine: the writer must run on the server's host", what, path)
	case errors.Is(err, fs.ErrPermission):
		return "", writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"postgres writer: cannot resolve the server's %s %s: %v (run the writer as root or as the server's OS user)", what, path, err)
	}
	return "", writer.Fail(vsserr.WriterErrorNonRetryable, 0, "postgres writer: the server's %s %s: %v", what, path, err)
}

// checkSameCluster compares the system identifier in dataDir's pg_control
// with the server's: a DSN that reaches another host whose cluster happens
// to live at the same path (Debian's /var/lib/postgresql/15/main) must not
// make the writer declare this machine's files as that server's. The
// identifier is the first field of pg_control, in the machine's byte
// order.
func checkSameCluster(dataDir string, sysid uint64) error {
	local, err := readSystemID(dataDir)
	if err != nil {
		return err
	}
	if local != sysid {
		return writer.Fail(vsserr.WriterErrorNonRetryable, 0,
			"postgres writer: the server the DSN reaches is not the cluster in %s (system identifier %d, the files say %d): "+
				"the writer must run on the server's host", dataDir, sysid, local)
	}
	return nil
}

// readSystemID reads the system identifier from dataDir's pg_control: its
// first field, in the machine's byte order.
func readSystemID(dataDir string) (uint64, error) {
	path := filepath.Join(dataDir, "global", "pg_control")
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return 0, writer.Fail(vsserr.WriterErrorNonRetryable, 0,
				"postgres writer: cannot read %s: %v (run the writer as root or as the server's OS user)", path, err)
		}
		return 0, writer.Fail(vsserr.WriterErrorNonRetryable, 0, "postgres writer: %s: %v", path, err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, writer.Fail(vsserr.WriterErrorNonRetryable, 0, "postgres writer: reading %s: %v", path, err)
	}
	return binary.NativeEndian.Uint64(b[:]), nil
}

// readLayoutOffline is the layout of a cluster whose server is stopped,
// read from its data directory: PG_VERSION, where pg_wal leads, and the
// links in pg_tblspc (named by OID: their names are in the catalog). A
// data directory that does not exist (a restore after the data was lost)
// gives just its own path.
func readLayoutOffline(dataDir string) *layout {
	dataDir = filepath.Clean(dataDir)
	if real, err := filepath.EvalSymlinks(dataDir); err == nil {
		dataDir = real
	}
	l := &layout{DataDir: dataDir, WALDir: filepath.Join(dataDir, "pg_wal")}
	if b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		l.Version = strings.TrimSpace(string(b))
	}
	if id, err := readSystemID(dataDir); err == nil {
		l.SystemID = id
	}
	if real, err := filepath.EvalSymlinks(l.WALDir); err == nil {
		l.WALDir = real
	}
	ents, _ := os.ReadDir(filepath.Join(dataDir, "pg_tblspc"))
	for _, e := range ents {
		oid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		real, err := filepath.EvalSymlinks(filepath.Join(dataDir, "pg_tblspc", e.Name()))
		if err != nil {
			continue
		}
		l.Tablespaces = append(l.Tablespaces, tablespace{OID: uint32(oid), Name: "oid " + e.Name(), Location: real})
	}
	return l
}
