//go:build lvss_failpoints

package failpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lvss/lvss/vsserr"
)

// Enabled reports whether this build acts on failpoints.
const Enabled = true

type rule struct {
	pattern, action string
	every           bool
}

var (
	mu    sync.Mutex
	rules = parse(os.Getenv("LVSSD_FAILPOINTS"))
	fired = map[string]bool{}
	// spec is the content of DIR/failpoints last read: the rules a test
	// set while lvssd runs (reload).
	spec string
)

// rulesFile is where a test may set the rules while lvssd runs, in
// LVSSD_FAILPOINTS's format: the fault matrix moves one lvssd from
// failpoint to failpoint without restarting it (and its writers'
// reconnections) for every cell.
const rulesFile = "failpoints"

// reload replaces the rules with DIR/failpoints when its content changed
// since the last Hit; each new set of rules acts afresh (the points it
// names have not fired). Caller holds mu. A test build only: one read of
// a small file per failpoint reached.
func reload() {
	dir := os.Getenv("LVSSD_FAILPOINT_DIR")
	if dir == "" {
		return
	}
	b, err := os.ReadFile(filepath.Join(dir, rulesFile))
	if err != nil || string(b) == spec {
		return
	}
	spec = string(b)
	rules = parse(spec)
	fired = map[string]bool{}
}

func parse(spec string) []rule {
	var out []rule
	for _, item := range strings.FieldsFunc(spec, func(r rune) bool { return r == ';' || r == '\n' }) {
		name, action, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || name == "" {
			continue
		}
		r := rule{pattern: name, action: strings.TrimSuffix(action, "+"), every: strings.HasSuffix(action, "+")}
		out = append(out, r)
	}
	return out
}

func (r rule) matches(name string) bool {
	if p, ok := strings.CutSuffix(r.pattern, "*"); ok {
		return strings.HasPrefix(name, p)
	}
	return r.pattern == name
}

// Hit acts on the failpoint name as LVSSD_FAILPOINTS says.
func Hit(name string) error { return HitCtx(context.Background(), name) }

// HitCtx is Hit whose hang and pause end when ctx does.
func HitCtx(ctx context.Context, name string) error {
	mu.Lock()
	reload()
	var act string
	for _, r := range rules {
		if !r.matches(name) {
			continue
		}
		key := r.pattern + "\x00" + name
		if fired[key] && !r.every {
			continue
		}
		fired[key] = true
		act = r.action
		break
	}
	mu.Unlock()
	switch act {
	case "":
		return nil
	case "kill":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL cannot be caught; nothing after it runs
	case "error":
		if strings.HasPrefix(name, "provider.") {
			return vsserr.New(vsserr.UnexpectedProviderError, "failpoint %s", name)
		}
		return vsserr.New(vsserr.Unexpected, "failpoint %s", name)
	case "hang":
		<-ctx.Done()
		return ctx.Err()
	case "pause":
		return pause(ctx, name)
	}
	return fmt.Errorf("failpoint %s: unknown action %q", name, act)
}

// pause announces the point and waits for the test's go-ahead. The wait
// polls: it is a test build's, and the test acts on a human time scale.
func pause(ctx context.Context, name string) error {
	dir := os.Getenv("LVSSD_FAILPOINT_DIR")
	if dir == "" {
		return errors.New("failpoint pause: LVSSD_FAILPOINT_DIR is not set")
	}
	file := filepath.Join(dir, strings.ReplaceAll(name, "/", "_"))
	if err := os.WriteFile(file+".reached", []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
		return err
	}
	// Leaving, lvssd takes the go-ahead and its announcement away, so
	// that a test can tell it went on (or gave up with ctx).
	defer os.Remove(file + ".reached")
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := os.Stat(file + ".go"); err == nil {
			os.Remove(file + ".go")
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
