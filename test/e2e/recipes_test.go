package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/testenv/lvssdtest"
	"github.com/lvss/lvss/writer"
)

// The recipes of docs/recipes.md, run as they are written there: the test
// reads each `lvss backup ...` line from the document, so that what users
// copy is what was tested. The document writes /srv/data for the path
// backed up and /backup for where backups go; the test puts its own
// directories in their place.
const (
	recipesDoc    = "../../docs/recipes.md"
	recipeData    = "/srv/data"
	recipeBackups = "/backup"
)

// recipe is one tool's command line: lvss's flags, and the script lvss
// runs as `sh -c SCRIPT`.
type recipe struct {
	line   string
	flags  []string
	script string
}

// recipeLine is the shape every recipe has (docs/recipes.md, "What every
// recipe has in common"): flags without quotes, then a COMMAND that is a
// single-quoted sh script.
var recipeLine = regexp.MustCompile(`^lvss backup ([^'"]*) -- sh -c '([^']*)'$`)

// continuation is a backslash-newline and the next line's indentation.
var continuation = regexp.MustCompile(`\\\n\s*`)

// recipeTools are the tools with a tested recipe: each has a section
// "## TOOL" in docs/recipes.md.
var recipeTools = []string{"restic", "borg", "tar", "rsync"}

// readRecipes returns, for each tool of recipeTools, the first code block
// of its section that is an `lvss backup` command line (continuation
// lines joined).
func readRecipes(t *testing.T) map[string]recipe {
	t.Helper()
	text, err := os.ReadFile(recipesDoc)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]recipe{}
	var section string
	var block []string
	inBlock := false
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case !inBlock && strings.HasPrefix(l, "## "):
			section = strings.TrimPrefix(l, "## ")
		case !inBlock && strings.HasPrefix(l, "```"):
			inBlock, block = true, nil
		case inBlock && strings.HasPrefix(l, "```"):
			inBlock = false
			line := continuation.ReplaceAllString(strings.Join(block, "\n"), "")
			if _, done := out[section]; done || !slices.Contains(recipeTools, section) || !strings.HasPrefix(line, "lvss backup ") {
				continue
			}
			m := recipeLine.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("%s, section %q: the recipe %q is not `lvss backup FLAGS -- sh -c 'SCRIPT'`", recipesDoc, section, line)
			}
			out[section] = recipe{line: line, flags: strings.Fields(m[1]), script: m[2]}
		case inBlock:
			block = append(block, l)
		}
	}
	for _, tool := range recipeTools {
		if _, ok := out[tool]; !ok {
			t.Fatalf("%s has no `lvss backup` recipe in a section %q", recipesDoc, "## "+tool)
		}
	}
	return out
}

// with is the recipe with the test's directories for /srv/data and
// /backup.
func (r recipe) with(data, backups string) recipe {
	sub := strings.NewReplacer(recipeData, data, recipeBackups, backups)
	out := recipe{line: sub.Replace(r.line), script: sub.Replace(r.script)}
	for _, f := range r.flags {
		out.flags = append(out.flags, sub.Replace(f))
	}
	return out
}

// The tree each recipe backs up, and the writer's exclusions over it:
// recursive (*.tmp at any depth; everything under "cache [1]", a name
// that is a glob pattern unless quoted) and non-recursive (lock and *.pid
// directly in the directory only). Files named like excluded ones but
// not excluded (sub/lock, sub/other.pid, "cache 1") must be kept.
// recipeKept is sorted.
var (
	recipeTree = []string{
		"keep.txt", "sub/keep2.txt",
		"a.tmp", "sub/deep/b.tmp",
		"lock", "sub/lock", "sub/deep/lock",
		"run.pid", "sub/other.pid",
		"cache [1]/x.bin", "cache [1]/in/y.bin", "cache 1/x.bin",
	}
	recipeKept = []string{"cache 1/x.bin", "keep.txt", "sub/deep/lock", "sub/keep2.txt", "sub/lock", "sub/other.pid"}
)

func recipeExclusions(data string) []document.FileSpec {
	return []document.FileSpec{ // and dirWriter's own recursive *.tmp
		{Path: data, Filespec: "lock"},
		{Path: data, Filespec: "*.pid"},
		{Path: filepath.Join(data, "cache [1]"), Filespec: "*", Recursive: true},
	}
}

const (
	beforeSnapshot = "before the snapshot\n"
	afterSnapshot  = "changed after the snapshot\n"
)

// entry is one path a backup recorded, absolute.
type entry struct {
	path string
	dir  bool
}

// recipeEnv is what the subtests share: the volume, the daemon with the
// writer, and the recipes.
type recipeEnv struct {
	fs      *testenv.FS
	data    string
	d       *daemon
	recipes map[string]recipe
}

// TestRecipes runs each recipe of docs/recipes.md with the real tool,
// against the real lvssd, on a loop btrfs with an SDK writer. For each
// tool: the backup records the original paths and nothing under
// .lvss-snapshots; it leaves out exactly what the writer excludes (tar:
// as documented, more for a non-recursive wildcard); it holds the
// snapshot's content although COMMAND changed the live file before the
// tool read it; nothing stays mounted or snapshotted. For restic, the
// second backup finds the first as its parent and reads only the changed
// file.
func TestRecipes(t *testing.T) {
	testenv.RequireRoot(t)
	recipes := readRecipes(t)
	lfs := testenv.LoopFS(t, "btrfs", 256<<20)
	e := &recipeEnv{fs: lfs, data: filepath.Join(lfs.Mount, "data"), recipes: recipes}
	e.d = startDaemon(t, shortTimeouts)
	id := writer.Identity{ClassID: uuid.NewSHA1(uuid.NameSpaceOID, []byte("recipewriter")), Name: "recipewriter"}
	lvssdtest.RunWriter(t, e.d.socket, id, dirWriter{dir: e.data, more: recipeExclusions(e.data)})

	t.Run("restic", e.restic)
	t.Run("borg", e.borg)
	t.Run("tar", e.tar)
	t.Run("rsync", e.rsync)
}

// needTool stops the test (a failure on CI) when the tool is not
// installed; pkg is its Debian package.
func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		testenv.Missing(t, fmt.Sprintf("%s (apt-get install %s)", name, pkg))
	}
}

// toolOutput runs a command the test needs besides the recipe, failing t
// if it fails, and returns its standard output.
func toolOutput(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return string(out)
}

// populate makes the recipe tree in the data directory, afresh.
func (e *recipeEnv) populate(t *testing.T) {
	t.Helper()
	if err := os.RemoveAll(e.data); err != nil {
		t.Fatal(err)
	}
	for _, f := range recipeTree {
		p := filepath.Join(e.data, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		content := f + "\n"
		if f == "keep.txt" {
			content = beforeSnapshot
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// backup runs the tool's recipe with lvss backup --json, with the test's
// directories. When changeLive is set, COMMAND first writes afterSnapshot
// to keep.txt on the live volume, which the namespace hides under the
// snapshot: it reaches it through /proc/PID/root of the test process, a
// view of the host's mounts. It checks lvss's summary and that nothing is
// left mounted or snapshotted, and returns what COMMAND printed (on
// lvss's standard error, as --json sends it there).
func (e *recipeEnv) backup(t *testing.T, tool, backups string, changeLive bool) string {
	t.Helper()
	r := e.recipes[tool].with(e.data, backups)
	script := r.script
	if changeLive {
		live := fmt.Sprintf("/proc/%d/root%s", os.Getpid(), filepath.Join(e.data, "keep.txt"))
		script = "printf '" + strings.TrimSuffix(afterSnapshot, "\n") + `\n' > ` + live + "\n" + script
	}
	t.Logf("recipe: %s", r.line)
	args := append(append([]string{"backup"}, r.flags...), "--json", "--", "sh", "-c", script)
	res := lvssdtest.Lvss(t, e.d.socket, "", args...)
	if res.Code != 0 {
		t.Fatalf("lvss %s: exit %d\n%s\n%s", strings.Join(args, " "), res.Code, res.Stdout, res.Stderr)
	}
	var sum backupSummary
	if err := json.Unmarshal([]byte(res.Stdout), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, res.Stdout)
	}
	if !sum.Created || len(sum.Snapshots) != 1 || sum.Snapshots[0].OriginalVolume != e.data || sum.Snapshots[0].Consistency != "application" ||
		len(sum.Writers) != 1 || sum.Writers[0].State != "VSS_WS_STABLE" || sum.Command.ExitStatus != 0 || len(sum.DeletedSnapshots) != 1 {
		t.Fatalf("summary: %+v\n%s", sum, res.Stderr)
	}
	if changeLive {
		if b, err := os.ReadFile(filepath.Join(e.data, "keep.txt")); err != nil || string(b) != afterSnapshot {
			t.Fatalf("COMMAND did not change the live keep.txt: %q %v", b, err)
		}
	}
	e.nothingLeft(t)
	return res.Stderr
}

// nothingLeft checks that no snapshot and no mount is left: lvssd lists
// no snapshot, the btrfs has none in .lvss-snapshots, and no mount of the
// host is at the data directory or comes from one of its snapshots. Other
// tests' snapshots (other packages run at the same time) are theirs.
func (e *recipeEnv) nothingLeft(t *testing.T) {
	t.Helper()
	var shadows []json.RawMessage
	r := lvssdtest.Lvss(t, e.d.socket, "", "list", "shadows", "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &shadows); r.Code != 0 || err != nil || len(shadows) != 0 {
		t.Fatalf("lvss list shadows after the backup: exit %d, %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(e.fs.Mount, ".lvss-snapshots", "*")); len(left) != 0 {
		t.Fatalf("snapshots left behind: %v", left)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, " "+e.data+" ") || strings.Contains(l, ".lvss-snapshots") && strings.Contains(l, " "+e.fs.Device+" ") {
			t.Fatalf("a mount was left behind: %s", l)
		}
	}
}

// checkRecorded checks the paths a backup recorded: each is the data
// directory, one of its parents, or under it (never under
// .lvss-snapshots); and the files under it are exactly kept.
func (e *recipeEnv) checkRecorded(t *testing.T, what string, entries []entry, kept []string) {
	t.Helper()
	var files []string
	sawData := false
	for _, en := range entries {
		p := en.path
		switch {
		case strings.Contains(p, ".lvss-snapshots"):
			t.Errorf("%s records %s", what, p)
		case p == e.data:
			sawData = true
		case strings.HasPrefix(p, e.data+"/"):
			if !en.dir {
				files = append(files, strings.TrimPrefix(p, e.data+"/"))
			}
		case !strings.HasPrefix(e.data, p+"/") && p != "/":
			t.Errorf("%s records %s, which is neither under nor above %s", what, p, e.data)
		}
	}
	if !sawData {
		t.Errorf("%s does not record %s itself", what, e.data)
	}
	slices.Sort(files)
	if !slices.Equal(files, kept) {
		t.Errorf("%s holds the files\n  %q\nwant\n  %q", what, files, kept)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// restic: the recipe, then an incremental backup after one file changed.
func (e *recipeEnv) restic(t *testing.T) {
	needTool(t, "restic", "restic")
	backups := t.TempDir()
	password := filepath.Join(backups, "password")
	if err := os.WriteFile(password, []byte("recipes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RESTIC_REPOSITORY", filepath.Join(backups, "restic"))
	t.Setenv("RESTIC_PASSWORD_FILE", password)
	t.Setenv("RESTIC_CACHE_DIR", t.TempDir())
	toolOutput(t, "restic", "init")
	e.populate(t)
	e.backup(t, "restic", backups, true)

	type snapshot struct {
		ID     string   `json:"id"`
		Parent string   `json:"parent"`
		Paths  []string `json:"paths"`
	}
	snapshots := func() []snapshot {
		var s []snapshot
		if err := json.Unmarshal([]byte(toolOutput(t, "restic", "snapshots", "--json")), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	snaps := snapshots()
	if len(snaps) != 1 || !slices.Equal(snaps[0].Paths, []string{e.data}) {
		t.Fatalf("restic snapshots: %+v, want one of [%s]", snaps, e.data)
	}
	var entries []entry
	sc := bufio.NewScanner(strings.NewReader(toolOutput(t, "restic", "ls", "--json", "latest")))
	for sc.Scan() {
		var n struct {
			StructType string `json:"struct_type"`
			Type       string `json:"type"`
			Path       string `json:"path"`
		}
		if err := json.Unmarshal(sc.Bytes(), &n); err != nil {
			t.Fatalf("restic ls --json: %v: %s", err, sc.Bytes())
		}
		if n.StructType == "node" {
			entries = append(entries, entry{path: n.Path, dir: n.Type == "dir"})
		}
	}
	e.checkRecorded(t, "restic's snapshot", entries, recipeKept)
	keep := filepath.Join(e.data, "keep.txt")
	if got := toolOutput(t, "restic", "dump", "latest", keep); got != beforeSnapshot {
		t.Fatalf("keep.txt in restic's snapshot: %q, want %q", got, beforeSnapshot)
	}

	// The next backup, after one file changed: same paths, so restic
	// takes the first snapshot as its parent and reads only that file.
	if err := os.WriteFile(keep, []byte("second backup\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := e.backup(t, "restic", backups, false)
	snaps = snapshots()
	if len(snaps) != 2 || snaps[1].Parent != snaps[0].ID || !slices.Equal(snaps[1].Paths, []string{e.data}) {
		t.Fatalf("restic snapshots after the second backup: %+v, want the second with the first as parent", snaps)
	}
	if !strings.Contains(out, "using parent snapshot "+snaps[0].ID[:8]) {
		t.Errorf("restic did not say it used the parent snapshot %s:\n%s", snaps[0].ID[:8], out)
	}
	m := regexp.MustCompile(`Files:\s+(\d+) new,\s+(\d+) changed,\s+(\d+) unmodified`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("restic's summary has no Files: line:\n%s", out)
	}
	counts := [3]int{}
	for i := range counts {
		counts[i], _ = strconv.Atoi(m[i+1])
	}
	if want := [3]int{0, 1, len(recipeKept) - 1}; counts != want {
		t.Errorf("restic's second backup: %d new, %d changed, %d unmodified; want %v", counts[0], counts[1], counts[2], want)
	}
	if got := toolOutput(t, "restic", "dump", "latest", keep); got != "second backup\n" {
		t.Fatalf("keep.txt in restic's second snapshot: %q", got)
	}
}

func (e *recipeEnv) borg(t *testing.T) {
	needTool(t, "borg", "borgbackup")
	backups := t.TempDir()
	t.Setenv("BORG_REPO", filepath.Join(backups, "borg"))
	t.Setenv("BORG_PASSPHRASE", "recipes")
	t.Setenv("BORG_BASE_DIR", t.TempDir())
	toolOutput(t, "borg", "init", "--encryption=repokey")
	e.populate(t)
	e.backup(t, "borg", backups, true)

	archives := strings.Fields(toolOutput(t, "borg", "list", "--short"))
	if len(archives) != 1 {
		t.Fatalf("borg archives: %q, want one", archives)
	}
	var entries []entry
	sc := bufio.NewScanner(strings.NewReader(toolOutput(t, "borg", "list", "--json-lines", "::"+archives[0])))
	for sc.Scan() {
		var n struct{ Type, Path string }
		if err := json.Unmarshal(sc.Bytes(), &n); err != nil {
			t.Fatalf("borg list --json-lines: %v: %s", err, sc.Bytes())
		}
		// borg records every path without its leading '/'.
		if strings.HasPrefix(n.Path, "/") {
			t.Fatalf("borg recorded %q with a leading /", n.Path)
		}
		entries = append(entries, entry{path: "/" + n.Path, dir: n.Type == "d"})
	}
	e.checkRecorded(t, "borg's archive", entries, recipeKept)
	keep := strings.TrimPrefix(filepath.Join(e.data, "keep.txt"), "/")
	if got := toolOutput(t, "borg", "extract", "--stdout", "::"+archives[0], keep); got != beforeSnapshot {
		t.Fatalf("keep.txt in borg's archive: %q, want %q", got, beforeSnapshot)
	}
}

func (e *recipeEnv) tar(t *testing.T) {
	needTool(t, "tar", "tar")
	backups := t.TempDir()
	e.populate(t)
	e.backup(t, "tar", backups, true)

	archives, _ := filepath.Glob(filepath.Join(backups, "data-*.tar.gz"))
	if len(archives) != 1 {
		t.Fatalf("archives in %s: %v, want one data-*.tar.gz", backups, archives)
	}
	var entries []entry
	for _, n := range strings.Split(strings.TrimSuffix(toolOutput(t, "tar", "-tzf", archives[0]), "\n"), "\n") {
		entries = append(entries, entry{path: "/" + strings.TrimSuffix(n, "/"), dir: strings.HasSuffix(n, "/")})
	}
	// GNU tar's '*' crosses '/' in exclusions: the non-recursive *.pid
	// also leaves out sub/other.pid (docs/recipes.md, tar). The
	// non-recursive lock, without a wildcard, is exact.
	kept := slices.DeleteFunc(slices.Clone(recipeKept), func(f string) bool { return f == "sub/other.pid" })
	e.checkRecorded(t, "the tar archive", entries, kept)
	keep := strings.TrimPrefix(filepath.Join(e.data, "keep.txt"), "/")
	if got := toolOutput(t, "tar", "-xOzf", archives[0], keep); got != beforeSnapshot {
		t.Fatalf("keep.txt in the tar archive: %q, want %q", got, beforeSnapshot)
	}
}

func (e *recipeEnv) rsync(t *testing.T) {
	needTool(t, "rsync", "rsync")
	backups := t.TempDir()
	e.populate(t)
	// What an earlier run may have left in the mirror: a file since
	// deleted from the source, and one a writer excludes now. The
	// recipe's --delete --delete-excluded remove both (checkRecorded).
	mirror := filepath.Join(backups, "rsync", e.data)
	for _, f := range []string{"gone.txt", "a.tmp"} {
		if err := os.MkdirAll(mirror, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mirror, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.backup(t, "rsync", backups, true)

	var entries []entry
	root := filepath.Join(backups, "rsync")
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		entries = append(entries, entry{path: strings.TrimPrefix(p, root), dir: de.IsDir()})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.checkRecorded(t, "rsync's destination", entries, recipeKept)
	if b, err := os.ReadFile(filepath.Join(mirror, "keep.txt")); err != nil || string(b) != beforeSnapshot {
		t.Fatalf("keep.txt in rsync's destination: %q %v, want %q", b, err, beforeSnapshot)
	}
}

// TestRecipesDocument: each tested recipe is the in-place pattern of
// docs/recipes.md, with the exclude file in its tool's format. (Needs no
// root: it only reads the document.)
func TestRecipesDocument(t *testing.T) {
	for tool, r := range readRecipes(t) {
		i := slices.Index(r.flags, "--exclude-file-format")
		if !slices.Contains(r.flags, "--in-place") || i < 0 || i+1 >= len(r.flags) || r.flags[i+1] != tool ||
			!strings.Contains(r.script, `"${LVSS_EXCLUDE_FILE:-/dev/null}"`) || !strings.Contains(r.script, recipeData) {
			t.Errorf("%s: the recipe %q does not back up %s in place with the writers' exclusions in its format", tool, r.line, recipeData)
		}
	}
}
