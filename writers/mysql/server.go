package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// serverVersion is what VERSION() says about the server.
type serverVersion struct {
	text                string // VERSION() as returned
	mariaDB             bool
	major, minor, patch int
}

var versionRE = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`)

// parseVersion reads VERSION(): "10.11.19-MariaDB-0+deb12u1-log" or
// "8.0.36". Old MariaDB servers put "5.5.5-" before their real version (a
// trick for old replication clients); it is skipped.
func parseVersion(s string) serverVersion {
	v := serverVersion{text: s, mariaDB: strings.Contains(strings.ToLower(s), "mariadb")}
	s = strings.TrimPrefix(s, "5.5.5-")
	if m := versionRE.FindStringSubmatch(s); m != nil {
		v.major, _ = strconv.Atoi(m[1])
		v.minor, _ = strconv.Atoi(m[2])
		v.patch, _ = strconv.Atoi(m[3])
	}
	return v
}

func (v serverVersion) atLeast(major, minor, patch int) bool {
	return slices.Compare([]int{v.major, v.minor, v.patch}, []int{major, minor, patch}) >= 0
}

// hasBackupStage: BACKUP STAGE came with MariaDB 10.4.1.
func (v serverVersion) hasBackupStage() bool { return v.mariaDB && v.atLeast(10, 4, 1) }

// binlogStatusStatement is the statement that reports the binary log
// position: MySQL 8.2 renamed SHOW MASTER STATUS and 8.4 removed the old
// name; MariaDB keeps it.
func (v serverVersion) binlogStatusStatement() string {
	if !v.mariaDB && v.atLeast(8, 2, 0) {
		return "SHOW BINARY LOG STATUS"
	}
	return "SHOW MASTER STATUS"
}

func (v serverVersion) String() string {
	name := "MySQL"
	if v.mariaDB {
		name = "MariaDB"
	}
	return fmt.Sprintf("%s %d.%d.%d", name, v.major, v.minor, v.patch)
}

// resolve is the strategy a configured one means on this server.
func (s Strategy) resolve(v serverVersion) Strategy {
	if s != StrategyAuto {
		return s
	}
	if v.hasBackupStage() {
		return StrategyBackupStage
	}
	return StrategyFTWRL
}

// querier is what *sql.Conn offers; the writer runs everything on one.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// layoutVariables are the server variables that say where its files are.
var layoutVariables = []string{
	"datadir", "innodb_data_home_dir", "innodb_data_file_path", "innodb_log_group_home_dir",
	"innodb_undo_directory", "innodb_undo_tablespaces", "innodb_temp_data_file_path",
	"log_bin", "log_bin_basename", "relay_log_basename", "aria_log_dir_path",
	"tmpdir", "pid_file", "socket",
}

// variables reads the named global variables; those the server does not
// have (MySQL has no aria_log_dir_path) are absent from the map.
func variables(ctx context.Context, q querier, names []string) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('"+strings.Join(names, "','")+"')")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name string
		var value sql.NullString
		if err := rows.Scan(&name, &value); err != nil {
			return nil, err
		}
		out[strings.ToLower(name)] = value.String
	}
	return out, rows.Err()
}

// fileSet is a directory and a filespec in it (never recursive: a
// DATABASE component's file sets cannot be).
type fileSet struct{ dir, spec string }

// layout is where a server keeps what a backup needs, as the server
// reports it, in the terms of the Writer Metadata Document.
type layout struct {
	version serverVersion
	dataDir string
	// data and logs are the component's database and log file sets.
	data, logs []fileSet
	// excluded are files the server recreates or that are not data.
	excluded []fileSet
	// schemaDirs are the subdirectories of the data directory declared, by
	// name: a database created later has a directory the requester does
	// not know about.
	schemaDirs []string
	// dirs are the directories of every file set: they must all be
	// captured at one instant.
	dirs []string
	// remoteUnknown: the server would not list its tablespaces (no PROCESS
	// privilege), so tables made with DATA DIRECTORY elsewhere are missing.
	remoteUnknown error
	// systemFiles are InnoDB's system tablespace files, and pidFile the
	// server's pid file (absolute; "" if none): what a restore checks.
	systemFiles []string
	pidFile     string
}

// readLayout asks the server where its files are and lists the data
// directory's subdirectories (one per database). The paths are the
// server's: the writer must run on the server's host, which the listing
// checks.
func readLayout(ctx context.Context, q querier) (*layout, error) {
	var version string
	if err := q.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return nil, err
	}
	vars, err := variables(ctx, q, layoutVariables)
	if err != nil {
		return nil, err
	}
	l := &layout{version: parseVersion(version)}
	if l.dataDir, err = localDir(vars["datadir"], "", "datadir"); err != nil {
		return nil, err
	}
	rel := func(name, value string) (string, error) { return localDir(value, l.dataDir, name) }
	addDir := func(d string) {
		if !slices.Contains(l.dirs, d) {
			l.dirs = append(l.dirs, d)
		}
	}
	addDir(l.dataDir)

	// The data directory: its own files (system tablespace, Aria logs,
	// binary logs by default, ...) and one set per database directory.
	l.data = append(l.data, fileSet{l.dataDir, "*"})
	ents, err := os.ReadDir(l.dataDir)
	if err != nil {
		return nil, fmt.Errorf("listing the data directory %s: %w (the writer must run on the server's host, as root or the server's user)", l.dataDir, err)
	}
	tmp, _ := rel("tmpdir", firstPath(vars["tmpdir"]))
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(l.dataDir, e.Name())
		switch {
		case dir == tmp:
			continue // excluded below
		case e.Name() == "#innodb_temp": // MySQL 8's session temporary tablespaces
			l.excluded = append(l.excluded, fileSet{dir, "*"})
			continue
		case e.Name() == "#innodb_redo": // MySQL 8.0.30+'s redo log
			l.logs = append(l.logs, fileSet{dir, "*"})
			continue
		}
		l.schemaDirs = append(l.schemaDirs, e.Name())
		l.data = append(l.data, fileSet{dir, "*"})
	}

	// InnoDB's system tablespace files, undo tablespaces and redo log,
	// wherever they are configured to be.
	home, err := rel("innodb_data_home_dir", vars["innodb_data_home_dir"])
	if err != nil {
		return nil, err
	}
	for _, f := range dataFiles(vars["innodb_data_file_path"]) {
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(home, f)
		}
		l.systemFiles = append(l.systemFiles, p)
		if filepath.Dir(p) != l.dataDir {
			l.data = append(l.data, fileSet{filepath.Dir(p), filepath.Base(p)})
			addDir(filepath.Dir(p))
		}
	}
	if n, _ := strconv.Atoi(vars["innodb_undo_tablespaces"]); n > 0 {
		undo, err := rel("innodb_undo_directory", vars["innodb_undo_directory"])
		if err != nil {
			return nil, err
		}
		if undo != l.dataDir {
			l.data = append(l.data, fileSet{undo, "undo*"})
			addDir(undo)
		}
	}
	redo, err := rel("innodb_log_group_home_dir", vars["innodb_log_group_home_dir"])
	if err != nil {
		return nil, err
	}
	l.logs = append(l.logs, fileSet{redo, "ib_logfile*"})
	addDir(redo)

	// Binary and relay logs: the binary log decides, at recovery, whether a
	// transaction InnoDB had prepared is committed; it must be of the same
	// instant as InnoDB's files. The filespec covers the numbered files and
	// the index.
	for _, v := range []string{"log_bin_basename", "relay_log_basename"} {
		if vars[v] == "" || v == "log_bin_basename" && !on(vars["log_bin"]) {
			continue
		}
		base, err := rel(v, vars[v])
		if err != nil {
			return nil, err
		}
		l.logs = append(l.logs, fileSet{filepath.Dir(base), filepath.Base(base) + ".*"})
		addDir(filepath.Dir(base))
	}
	if v, ok := vars["aria_log_dir_path"]; ok && v != "" {
		aria, err := rel("aria_log_dir_path", v)
		if err != nil {
			return nil, err
		}
		l.logs = append(l.logs, fileSet{aria, "aria_log*"})
		addDir(aria)
	}

	// What the server recreates, or that is no data, when it lies among the
	// declared files.
	for _, f := range dataFiles(vars["innodb_temp_data_file_path"]) {
		if p := filepath.Join(l.dataDir, f); !filepath.IsAbs(f) && filepath.Dir(p) == l.dataDir {
			l.excluded = append(l.excluded, fileSet{l.dataDir, filepath.Base(p)})
		}
	}
	if tmp != "" && within(tmp, l.dataDir) {
		l.excluded = append(l.excluded, fileSet{tmp, "*"})
	}
	for _, v := range []string{"pid_file", "socket"} {
		if p := vars[v]; p != "" {
			if !filepath.IsAbs(p) {
				p = filepath.Join(l.dataDir, p)
			}
			if v == "pid_file" {
				l.pidFile = p
			}
			if filepath.Dir(p) == l.dataDir {
				l.excluded = append(l.excluded, fileSet{l.dataDir, filepath.Base(p)})
			}
		}
	}

	// Tablespaces created with DATA DIRECTORY elsewhere (MariaDB; needs the
	// PROCESS privilege).
	if l.version.mariaDB {
		remote, err := remoteTablespaces(ctx, q, l.dataDir)
		if err != nil {
			if serverErrorNumber(err) == 0 {
				return nil, err
			}
			l.remoteUnknown = err
		}
		for _, p := range remote {
			l.data = append(l.data, fileSet{filepath.Dir(p), filepath.Base(p)})
			addDir(filepath.Dir(p))
		}
	}
	// Every directory of a file set, in case one is a mount of its own.
	for _, f := range slices.Concat(l.data, l.logs) {
		addDir(f.dir)
	}
	for _, d := range l.dirs {
		if _, err := os.Stat(d); err != nil {
			return nil, fmt.Errorf("the server's directory %s: %w (the writer must run on the server's host)", d, err)
		}
	}
	return l, nil
}

// remoteTablespaces lists the InnoDB tablespace files outside the data
// directory.
func remoteTablespaces(ctx context.Context, q querier, dataDir string) ([]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT FILENAME FROM information_schema.INNODB_SYS_TABLESPACES")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name sql.NullString
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		if p := name.String; filepath.IsAbs(p) && !within(p, dataDir) && !slices.Contains(out, p) {
			out = append(out, filepath.Clean(p))
		}
	}
	return out, rows.Err()
}

// localDir makes a directory the server reported absolute (relative ones
// are relative to the data directory), clean, and resolves symbolic links
// where it exists here, since the snapshot must hold the real directory.
func localDir(value, dataDir, name string) (string, error) {
	if value == "" || value == "." || value == "./" {
		if dataDir == "" {
			return "", fmt.Errorf("the server reports no %s", name)
		}
		return dataDir, nil
	}
	p := value
	if !filepath.IsAbs(p) {
		if dataDir == "" {
			return "", fmt.Errorf("the server's %s %q is not absolute", name, value)
		}
		p = filepath.Join(dataDir, p)
	}
	p = filepath.Clean(p)
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	} else if name == "datadir" {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("the server's datadir %s does not exist on this host (the writer must run on the server's host)", p)
		}
		return "", fmt.Errorf("the server's datadir %s: %w", p, err)
	}
	return p, nil
}

// dataFiles are the file names of innodb_data_file_path and
// innodb_temp_data_file_path: "ibdata1:12M;ibdata2:50M:autoextend".
func dataFiles(spec string) []string {
	var out []string
	for _, part := range strings.Split(spec, ";") {
		name, _, _ := strings.Cut(strings.TrimSpace(part), ":")
		if name != "" {
			out = append(out, name)
		}
	}
	return out
}

// firstPath: tmpdir may list several directories, separated by colons.
func firstPath(s string) string {
	p, _, _ := strings.Cut(s, ":")
	return p
}

func on(v string) bool { return strings.EqualFold(v, "ON") || v == "1" }

// within reports whether path is root or lies below it.
func within(path, root string) bool {
	path, root = filepath.Clean(path), filepath.Clean(root)
	return path == root || root == "/" || strings.HasPrefix(path, root+"/")
}

// differs says how o (the server now) differs from l (what Identify
// declared), or "" if they declare the same files.
func (l *layout) differs(o *layout) string {
	if l.dataDir != o.dataDir {
		return fmt.Sprintf("the data directory is %s, Identify declared %s", o.dataDir, l.dataDir)
	}
	var added []string
	for _, d := range o.schemaDirs {
		if !slices.Contains(l.schemaDirs, d) {
			added = append(added, d)
		}
	}
	if len(added) > 0 {
		return fmt.Sprintf("database directories created after Identify: %s", strings.Join(added, ", "))
	}
	// A dropped database leaves a file set that matches nothing: harmless.
	keep := func(fs []fileSet) []fileSet {
		return slices.DeleteFunc(slices.Clone(fs), func(f fileSet) bool {
			return filepath.Dir(f.dir) == l.dataDir && f.spec == "*" && !slices.Contains(o.schemaDirs, filepath.Base(f.dir)) &&
				slices.Contains(l.schemaDirs, filepath.Base(f.dir))
		})
	}
	if !slices.Equal(keep(l.data), o.data) || !slices.Equal(l.logs, o.logs) || !slices.Equal(l.excluded, o.excluded) {
		return fmt.Sprintf("the server's files are now %v (logs %v), Identify declared %v (logs %v)", o.data, o.logs, l.data, l.logs)
	}
	return ""
}

// newSchemaDirs returns the subdirectories of the data directory that l
// does not declare: databases created since.
func (l *layout) newSchemaDirs() ([]string, error) {
	ents, err := os.ReadDir(l.dataDir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() || slices.Contains(l.schemaDirs, e.Name()) {
			continue
		}
		dir := filepath.Join(l.dataDir, e.Name())
		known := slices.ContainsFunc(l.excluded, func(f fileSet) bool { return f.dir == dir }) ||
			slices.ContainsFunc(l.logs, func(f fileSet) bool { return f.dir == dir })
		if !known {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
