package redis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/lvss/lvss/writer"
)

// minMajor is the oldest Redis the writer serves: CLIENT PAUSE ... WRITE
// came with 6.2, the multi-part AOF (a directory with a manifest, which
// the writer declares) with 7.0.
const minMajor = 7

// Bounds of the writer's own round trips when the handler's context has
// no earlier deadline.
const (
	dialTimeout = 5 * time.Second
	ioTimeout   = 10 * time.Second
)

// layout is where the server keeps its data, as CONFIG GET reports it.
// What a restart loads follows from it: the AOF directory when appendonly
// is yes (the RDB file is then ignored), else the RDB file.
type layout struct {
	Dir         string // the server's working directory, absolute
	DBFilename  string // the RDB file, in Dir
	AOF         bool   // appendonly yes
	AOFDirname  string // the AOF directory, in Dir (7.0: base, incr files and manifest)
	AOFFilename string // the AOF files' base name, also the manifest's
}

func (l layout) rdbPath() string { return filepath.Join(l.Dir, l.DBFilename) }
func (l layout) aofDir() string  { return filepath.Join(l.Dir, l.AOFDirname) }

// mode names how the server persists, for messages and logs.
func (l layout) mode() string {
	if l.AOF {
		return "AOF"
	}
	return "RDB"
}

// tempIncr is the file Redis 7.0 appends to while appendonly has just been
// switched on and the first rewrite (the AOF's base) is still being
// written: until that rewrite ends, the manifest names no complete AOF.
func (l layout) tempIncr() string {
	return filepath.Join(l.aofDir(), "temp-"+l.AOFFilename+".incr")
}

// server is the writer's connection to Redis: a go-redis client limited to
// one connection, and that connection pinned (goredis.Conn), so that every
// command of a session goes over the same socket and nothing is retried
// behind the writer's back on another.
type server struct {
	cfg    *Config
	client *goredis.Client
	conn   *goredis.Conn // nil when closed
}

// options are the go-redis options of every connection the writer opens.
// RESP2, no client identity (CLIENT SETINFO is 7.2+) and no maintenance
// notifications keep the handshake to HELLO, which every user may send,
// so that the ACL rules in docs/writer-redis.md are all the writer needs.
func (c *Config) options() *goredis.Options {
	network, addr := c.network()
	return &goredis.Options{
		Network: network, Addr: addr,
		Username: c.Username, Password: c.Password,
		ClientName:               "lvss-writer",
		Protocol:                 2,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		PoolSize:                 1,
		MaxRetries:               -1, // a lost connection is the writer's to handle, never silently replaced
		DialTimeout:              dialTimeout,
		DialerRetries:            1,
		ReadTimeout:              ioTimeout,
		WriteTimeout:             ioTimeout,
		ContextTimeoutEnabled:    true, // the handler's deadline bounds every command
	}
}

// connect opens a connection and checks the server on it (INFO server):
// the dial and the authentication happen there, so their errors come from
// here.
func connect(ctx context.Context, cfg *Config) (*server, error) {
	s := &server{cfg: cfg, client: goredis.NewClient(cfg.options())}
	s.conn = s.client.Conn()
	if err := s.checkVersion(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// close closes the connection. A pause the connection set stays in force
// until its bound or an UNPAUSE: it belongs to the server, not to the
// connection.
func (s *server) close() error {
	if s == nil || s.conn == nil {
		return nil
	}
	err := errors.Join(s.conn.Close(), s.client.Close())
	s.conn = nil
	if errors.Is(err, goredis.ErrClosed) {
		err = nil
	}
	return err
}

// broken reports whether err, from a command, means the connection cannot
// be used again: a network error, a timeout, or a command cut short (its
// reply would come later and be taken for the next command's). Redis's own
// error replies leave it usable, and so do the writer's own verdicts
// (writer.Failure); a connection wrongly kept is found out at its next
// use, which falls back to a fresh one where it matters.
func broken(err error) bool {
	if err == nil {
		return false
	}
	var (
		re goredis.Error
		f  *writer.Failure
	)
	return !errors.As(err, &re) && !errors.As(err, &f)
}

var versionRE = regexp.MustCompile(`^(\d+)\.(\d+)`)

// checkVersion reads INFO server and refuses a Redis older than 7.0.
func (s *server) checkVersion(ctx context.Context) error {
	info, err := s.info(ctx, "server")
	if err != nil {
		return err
	}
	v := info["redis_version"]
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return fmt.Errorf("INFO server reports no usable redis_version (%q)", v)
	}
	if major, _ := strconv.Atoi(m[1]); major < minMajor {
		return errTooOld{version: v}
	}
	return nil
}

type errTooOld struct{ version string }

func (e errTooOld) Error() string {
	return fmt.Sprintf("Redis %s is too old: the writer needs 7.0 or later (CLIENT PAUSE WRITE, multi-part AOF)", e.version)
}

// info runs INFO for one section and returns its fields.
func (s *server) info(ctx context.Context, section string) (map[string]string, error) {
	txt, err := s.conn.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	return parseInfo(txt), nil
}

// parseInfo splits INFO's "field:value" lines; "# Section" lines and blank
// lines are skipped.
func parseInfo(txt string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(txt, "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "" || l[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(l, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// infoInt reads an integer field; a missing or malformed field is an
// error, since every field the writer reads exists in Redis 7.0.
func infoInt(info map[string]string, field string) (int64, error) {
	v, ok := info[field]
	if !ok {
		return 0, fmt.Errorf("INFO persistence has no field %s", field)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("INFO persistence field %s is %q, not a number", field, v)
	}
	return n, nil
}

// layout reads where the server keeps its data (one CONFIG GET).
func (s *server) layout(ctx context.Context) (layout, error) {
	cmd := goredis.NewMapStringStringCmd(ctx, "config", "get", "dir", "dbfilename", "appendonly", "appenddirname", "appendfilename")
	if err := s.conn.Process(ctx, cmd); err != nil {
		return layout{}, err
	}
	m := cmd.Val()
	l := layout{
		Dir: m["dir"], DBFilename: m["dbfilename"], AOF: m["appendonly"] == "yes",
		AOFDirname: m["appenddirname"], AOFFilename: m["appendfilename"],
	}
	for _, k := range []string{"dir", "dbfilename", "appendonly", "appenddirname", "appendfilename"} {
		if _, ok := m[k]; !ok {
			return layout{}, fmt.Errorf("CONFIG GET returned no %s (a server older than 7.0, or a proxy?)", k)
		}
	}
	if !filepath.IsAbs(l.Dir) {
		return layout{}, fmt.Errorf("CONFIG GET dir returned %q, not an absolute path", l.Dir)
	}
	return l, nil
}

// checkLocal checks that the server's files are on this host: the writer
// declares them by path, and the snapshot must find them there.
func (l layout) checkLocal() error {
	fi, err := os.Stat(l.Dir)
	if err != nil {
		return fmt.Errorf("the server's dir %s is not on this host (%v): the writer must run on the machine (and in the mount namespace) of the server", l.Dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("the server's dir %s is not a directory here: the writer must run on the machine of the server", l.Dir)
	}
	return nil
}

// pause sends CLIENT PAUSE <ms> WRITE: the server stops executing write
// commands from every client (they wait, unanswered) for ms milliseconds
// or until CLIENT UNPAUSE. Reads, INFO, BGSAVE and the like go on.
func (s *server) pause(ctx context.Context, bound time.Duration) error {
	return s.conn.Do(ctx, "client", "pause", bound.Milliseconds(), "write").Err()
}

// unpause sends CLIENT UNPAUSE, which ends every pause on the server.
func (s *server) unpause(ctx context.Context) error {
	return s.conn.ClientUnpause(ctx).Err()
}

// bounded gives ctx the writer's own I/O bound when it has no earlier
// deadline (SDK-raised events may come with a long one).
func bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
