package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// What the shadow-copy verbs (list shadows, create shadow, delete shadows,
// expose, unexpose) share: how a snapshot is printed, how a failed call is
// reported, and the administrative session they run their calls in.

// opError is a failed call of a verb. It prints the HRESULT first, as every
// lvss error does (VSS_E_OBJECT_NOT_FOUND (0x80042308): ...), then which
// call failed, and keeps the cause for errors.Is (an interrupt must still
// exit 130).
type opError struct {
	call string
	err  error
}

func (e *opError) Error() string {
	msg := vsserr.Message(e.err)
	if !strings.HasPrefix(msg, e.call) {
		msg = e.call + ": " + msg
	}
	return vsserr.Code(e.err).String() + ": " + msg
}

func (e *opError) Unwrap() error { return e.err }

func failed(call string, err error) error {
	if err == nil {
		return nil
	}
	return &opError{call, err}
}

// wait starts an async method and waits for it: the verbs have nothing to
// do while one runs.
func wait(ctx context.Context, call string, start func(context.Context) (*client.Async, error)) error {
	a, err := start(ctx)
	if err == nil {
		err = a.Wait(ctx)
	}
	return failed(call, err)
}

// adminSession runs fn in a session whose context is VSS_CTX_ALL, which
// lvssd accepts for administrative calls (docs/decisions.md L12) so that
// Delete/Expose/GetSnapshotProperties see snapshots of every context.
// client.Run ends the session however fn returns.
func adminSession(ctx context.Context, socket string, fn func(context.Context, *client.BackupComponents) error) error {
	return client.Run(ctx, socket, func(ctx context.Context, bc *client.BackupComponents) error {
		if err := bc.InitializeForBackup(ctx, ""); err != nil {
			return failed("InitializeForBackup", err)
		}
		if err := bc.SetContext(ctx, vss.CtxAll); err != nil {
			return failed("SetContext VSS_CTX_ALL", err)
		}
		return fn(ctx, bc)
	})
}

// parseID reads a snapshot or set ID given on the command line. GUID_NULL
// names nothing, so it is refused rather than passed on as "every".
func parseID(flag, s string) (uuid.UUID, error) {
	u, err := wire.ParseGUID(s)
	if err != nil || u == uuid.Nil {
		return uuid.Nil, clierr.UsageError{Err: fmt.Errorf("%s: %q is not a snapshot GUID", flag, s)}
	}
	return u, nil
}

// absPath makes a command-line path absolute: lvssd takes only absolute
// paths (docs/decisions.md L13), and a relative one means "from here" to a
// shell user.
func absPath(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", clierr.UsageError{Err: fmt.Errorf("path %q: %w", p, err)}
	}
	return a, nil
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// optGUID prints GUID_NULL, which here means "none known" (no session,
// no particular snapshot), as "".
func optGUID(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return guidText(id)
}

// shadowObj is one snapshot as list shadows, create shadow and delete
// shadows print it. VSS's exposed name is exposed_path when the snapshot
// is exposed at a directory, exposed_share when it is published as an SMB
// share, whose exposed_share_path (VSS's exposed path) is the directory
// of the snapshot shared, "" for all of it (docs/decisions.md L20, L58).
func shadowObj(p client.SnapshotProp) obj {
	return obj{{"snapshot_id", guidText(p.SnapshotID)}, {"snapshot_set_id", guidText(p.SnapshotSetID)},
		{"snapshots_count", p.SnapshotsCount}, {"original_volume", p.OriginalVolume}, {"snapshot_path", p.DevicePath},
		{"provider", p.ProviderName}, {"provider_id", guidText(p.ProviderID)},
		{"context", p.Context.String()}, {"attributes", p.Attributes.Names()},
		{"attributes_value", fmt.Sprintf("0x%08X", uint32(p.Attributes))},
		{"auto_release", p.AutoRelease}, {"live_session", p.LiveSession}, {"session_id", optGUID(p.SessionID)},
		{"created", timeText(p.Created)}, {"consistency", p.Consistency}, {"consistency_reason", p.ConsistencyReason},
		{"exposed_path", exposedPath(p)}, {"exposed_share", exposedShare(p)}, {"exposed_share_path", sharePath(p)}}
}

// sharePath is the directory of the snapshot its SMB share shows, "" for
// the whole snapshot or when it is not shared.
func sharePath(p client.SnapshotProp) string {
	if exposedShare(p) == "" {
		return ""
	}
	return p.ExposedPath
}

func shadowObjs(ps []client.SnapshotProp) []obj {
	out := make([]obj, 0, len(ps))
	for _, p := range ps {
		out = append(out, shadowObj(p))
	}
	return out
}

// sortShadows orders snapshots the way they are shown: sets by their first
// creation time, and within a set by creation time and volume, so that the
// text output can group by set and the JSON has the same order.
func sortShadows(ps []client.SnapshotProp) {
	first := map[uuid.UUID]time.Time{}
	for _, p := range ps {
		if t, ok := first[p.SnapshotSetID]; !ok || p.Created.Before(t) {
			first[p.SnapshotSetID] = p.Created
		}
	}
	slices.SortStableFunc(ps, func(a, b client.SnapshotProp) int {
		if c := first[a.SnapshotSetID].Compare(first[b.SnapshotSetID]); c != 0 {
			return c
		}
		if c := strings.Compare(a.SnapshotSetID.String(), b.SnapshotSetID.String()); c != 0 {
			return c
		}
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.OriginalVolume, b.OriginalVolume)
	})
}

// attrText turns VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE into "No auto release",
// the way vssadmin shows attributes to people.
func attrText(a vss.Attributes) string {
	// Snapshots share a handful of attribute sets: each is worded once.
	if t, ok := attrTexts.Load(a); ok {
		return t.(string)
	}
	t := wordAttrs(a)
	attrTexts.Store(a, t)
	return t
}

var attrTexts sync.Map // vss.Attributes -> string

func wordAttrs(a vss.Attributes) string {
	names := a.Names()
	if len(names) == 0 {
		return "(none)"
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		n = strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(n, "VSS_VOLSNAP_ATTR_")), "_", " ")
		out = append(out, strings.ToUpper(n[:1])+n[1:])
	}
	return strings.Join(out, ", ")
}

// shadowText prints snapshots grouped by set like `vssadmin list
// shadows`, batch by batch: a set's header comes whenever the set changes,
// so a listing that arrives in batches (lvssd sends sets whole, in display
// order) prints as the whole would.
type shadowText struct {
	rows    int
	lastSet uuid.UUID
}

func (t *shadowText) write(out io.Writer, ps []client.SnapshotProp) error {
	var b strings.Builder
	// A snapshot takes about 700 bytes: one allocation, not a doubling
	// series, per batch.
	b.Grow(len(ps) * 768)
	for _, p := range ps {
		if t.rows == 0 || p.SnapshotSetID != t.lastSet {
			if t.rows > 0 {
				b.WriteByte('\n')
			}
			created := "unknown"
			if !p.Created.IsZero() {
				created = p.Created.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(&b, "Contents of shadow copy set ID: %s\n", guidText(p.SnapshotSetID))
			fmt.Fprintf(&b, "   Contained %d shadow %s at creation time: %s\n", p.SnapshotsCount,
				plural(p.SnapshotsCount, "copy", "copies"), created)
		}
		writeShadowText(&b, "      ", p)
		t.rows++
		t.lastSet = p.SnapshotSetID
	}
	_, err := io.WriteString(out, b.String())
	return err
}

func writeShadowText(b *strings.Builder, ind string, p client.SnapshotProp) {
	// Plain writes, not Fprintf: a listing of 10,000 prints 100,000 lines.
	line := func(parts ...string) {
		for _, s := range parts {
			b.WriteString(s)
		}
		b.WriteByte('\n')
	}
	line(ind, "Shadow Copy ID: ", guidText(p.SnapshotID))
	ind += "   "
	line(ind, "Original Volume: ", p.OriginalVolume)
	line(ind, "Shadow Copy Volume: ", p.DevicePath)
	if p.OriginatingMachine != "" {
		line(ind, "Originating Machine: ", p.OriginatingMachine)
	}
	if p.ProviderName != "" {
		line(ind, "Provider: '", p.ProviderName, "' (", guidText(p.ProviderID), ")")
	} else {
		line(ind, "Provider: ", guidText(p.ProviderID))
	}
	line(ind, "Type: ", p.Context.String())
	line(ind, "Attributes: ", attrText(p.Attributes))
	if p.ConsistencyReason != "" {
		line(ind, "Consistency: ", p.Consistency, " (", p.ConsistencyReason, ")")
	} else {
		line(ind, "Consistency: ", p.Consistency)
	}
	if p.AutoRelease {
		state := "ended"
		if p.LiveSession {
			state = "still running"
		}
		line(ind, "Auto-release: yes, with session ", optGUID(p.SessionID), " (", state, ")")
	}
	switch share := exposedShare(p); {
	case share != "":
		line(ind, "Exposed remotely as: SMB share ", share)
		if p.ExposedPath != "" {
			line(ind, "Path exposed: ", p.ExposedPath)
		}
	case p.ExposedName != "":
		line(ind, "Exposed at: ", p.ExposedName)
	default:
		line(ind, "Exposed at: not exposed")
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
