package prevver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/vsserr"
)

// Options configure a Keeper.
type Options struct {
	// Shares are the [[previous_versions]] paths, resolved (Check), each
	// with its snapdir (Snapdir).
	Shares []Share
	// Root holds the snapdirs (RUNDIR/previous-versions). Whatever else
	// is there is removed: the snapdir of a path no longer configured.
	Root    string
	Catalog *catalog.DB
	Logger  *slog.Logger
	// Timeout bounds one reconcile (default a minute); one that runs out
	// fails, and the next change tries again.
	Timeout time.Duration
}

// EventFunc writes to lvssd's event log (coordinator.Logf): level is
// "info", "warn" or "error", code the HRESULT of a failure (0 if none),
// kv alternating keys and values.
type EventFunc func(level string, code vsserr.HRESULT, msg string, kv ...string)

// Status is one share as the keeper last left it (lvss samba-config,
// lvss doctor).
type Status struct {
	Share
	Entries []Entry
	Skipped []Skip
	// Reconciled is when its snapdir was last reconciled (zero: not
	// yet); Err is that reconcile's failure, nil if it succeeded.
	Reconciled time.Time
	Err        error
	// ShutDir is a directory on the way to the versions that other users
	// may not search (Shut), with its mode; "" when there is none. It is
	// looked at when Statuses is called, so a chmod shows at once.
	ShutDir  string
	ShutMode os.FileMode
}

// Keeper keeps the snapdirs: one goroutine runs Reconcile at Start and
// after each Trigger.
type Keeper struct {
	opt     Options
	log     *slog.Logger
	trigger chan struct{}

	mu     sync.Mutex
	status map[string]*Status // by share path
	// told are the snapshots skipped at the last reconcile, by share
	// path, so that a snapshot that cannot be shown is reported when it
	// starts being skipped, not at every change.
	told  map[string]map[uuid.UUID]bool
	event EventFunc

	stop context.CancelFunc
	done chan struct{}
}

// New makes a keeper; nothing runs until Start.
func New(opt Options) *Keeper {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = time.Minute
	}
	k := &Keeper{opt: opt, log: opt.Logger, trigger: make(chan struct{}, 1), status: map[string]*Status{},
		told: map[string]map[uuid.UUID]bool{}}
	// Until Start gives the event log, lvssd's log.
	k.event = func(level string, code vsserr.HRESULT, msg string, kv ...string) {
		lvl := map[string]slog.Level{"info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[level]
		args := make([]any, 0, len(kv))
		for _, a := range kv {
			args = append(args, a)
		}
		k.log.Log(context.Background(), lvl, msg, args...)
	}
	for _, s := range opt.Shares {
		k.status[s.Path] = &Status{Share: s}
	}
	return k
}

// Trigger asks for a reconcile. It never waits: changes that come while
// one runs are taken together by the next. Coordinator's
// Options.SnapshotsChanged.
func (k *Keeper) Trigger() {
	select {
	case k.trigger <- struct{}{}:
	default:
	}
}

// Start runs the keeper's goroutine: a reconcile now, and one after each
// Trigger, until Stop. event writes to the event log.
func (k *Keeper) Start(event EventFunc) {
	if event != nil {
		k.mu.Lock()
		k.event = event
		k.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	k.stop, k.done = cancel, make(chan struct{})
	k.Trigger()
	go func() {
		defer close(k.done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-k.trigger:
			}
			rctx, cancel := context.WithTimeout(ctx, k.opt.Timeout)
			_ = k.Reconcile(rctx)
			cancel()
		}
	}()
}

// Stop ends the goroutine, waiting for a reconcile in progress. The
// snapdirs stay: Samba goes on serving them while lvssd restarts.
func (k *Keeper) Stop() {
	if k.stop != nil {
		k.stop()
		<-k.done
		k.stop = nil
	}
}

// Reconcile makes every snapdir match the catalog (Plan, then Apply) and
// removes the snapdirs of paths no longer configured. Each share is done
// on its own: a failure is recorded in its Status, written to the event
// log, and returned (the first), and the other shares are still done.
func (k *Keeper) Reconcile(ctx context.Context) error {
	var first error
	for _, s := range k.opt.Shares {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := k.reconcileShare(s); err != nil && first == nil {
			first = err
		}
	}
	if err := k.removeUnconfigured(); err != nil {
		k.emit("error", vsserr.Code(err), "previous versions: could not remove the snapdir of a path no longer configured",
			"error", err.Error())
		if first == nil {
			first = err
		}
	}
	return first
}

func (k *Keeper) reconcileShare(s Share) error {
	entries, skips, err := k.plan(s)
	planned := err == nil
	var ch Changes
	if planned {
		ch, err = Apply(s.Dir, entries)
	}
	if err != nil {
		err = vsserr.Wrap(vsserr.Unexpected, err, "previous versions of %s", s.Path)
	}
	k.mu.Lock()
	st := k.status[s.Path]
	wasErr := st.Err
	st.Reconciled, st.Err = time.Now(), err
	if err == nil {
		st.Entries, st.Skipped = entries, skips
	}
	// Only the snapshots skipped now are remembered, so the memory stays
	// as small as the list; one shown again and later skipped again is
	// reported again.
	var fresh []Skip
	told, now := k.told[s.Path], map[uuid.UUID]bool{}
	for _, sk := range skips {
		now[sk.Snapshot] = true
		if !told[sk.Snapshot] {
			fresh = append(fresh, sk)
		}
	}
	if planned {
		k.told[s.Path] = now
	}
	k.mu.Unlock()
	for _, sk := range fresh {
		k.emit("warn", 0, "previous versions: a snapshot is not shown", "path", s.Path, "snapshot", sk.Snapshot.String(), "reason", sk.Reason)
	}
	switch {
	case err != nil:
		k.emit("error", vsserr.Code(err), "previous versions: could not update the snapdir; tried again at the next change",
			"path", s.Path, "snapdir", s.Dir, "error", vsserr.Message(err))
	case !ch.Empty():
		k.emit("info", 0, "previous versions: snapdir updated", "path", s.Path, "snapdir", s.Dir,
			"versions", strconv.Itoa(len(entries)), "added", strings.Join(ch.Added, " "), "fixed", strings.Join(ch.Fixed, " "),
			"removed", strings.Join(ch.Removed, " "))
	case wasErr != nil:
		k.emit("info", 0, "previous versions: snapdir up to date again", "path", s.Path, "snapdir", s.Dir,
			"versions", strconv.Itoa(len(entries)))
	}
	return err
}

// plan reads the snapshots of the share's volumes (each through the
// catalog's volume index) and plans the entries.
func (k *Keeper) plan(s Share) ([]Entry, []Skip, error) {
	byVolume := map[string][]catalog.Snapshot{}
	for _, v := range Volumes(s.Path) {
		snaps, err := k.opt.Catalog.ListSnapshots(catalog.Filter{Volume: v})
		if err != nil {
			return nil, nil, fmt.Errorf("read the catalog's snapshots of %s: %w", v, err)
		}
		if len(snaps) > 0 {
			byVolume[v] = snaps
		}
	}
	entries, skips := Plan(s, byVolume, os.Stat)
	return entries, skips, nil
}

// removeUnconfigured removes what Root holds besides the snapdirs of the
// configured shares.
func (k *Keeper) removeUnconfigured() error {
	if k.opt.Root == "" {
		return nil
	}
	list, err := os.ReadDir(k.opt.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	mine := map[string]bool{}
	for _, s := range k.opt.Shares {
		if filepath.Dir(s.Dir) == k.opt.Root {
			mine[filepath.Base(s.Dir)] = true
		}
	}
	var first error
	for _, e := range list {
		if mine[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(k.opt.Root, e.Name())); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (k *Keeper) emit(level string, code vsserr.HRESULT, msg string, kv ...string) {
	k.mu.Lock()
	ev := k.event
	k.mu.Unlock()
	ev(level, code, msg, kv...)
}

// Statuses returns every share's status, in configuration order. ShutDir
// is looked at now, outside the keeper's lock (a few stats).
func (k *Keeper) Statuses() []Status {
	k.mu.Lock()
	out := make([]Status, 0, len(k.opt.Shares))
	for _, s := range k.opt.Shares {
		st := *k.status[s.Path]
		st.Entries = append([]Entry(nil), st.Entries...)
		st.Skipped = append([]Skip(nil), st.Skipped...)
		out = append(out, st)
	}
	k.mu.Unlock()
	for i := range out {
		out[i].ShutDir, out[i].ShutMode = Shut(out[i].Share, out[i].Entries, os.Stat)
	}
	return out
}
