package main

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/vss"
)

// Retention (delete shadows --keep N / --older-than DURATION) decides, for
// each persistent snapshot of each volume and context, whether it goes.
// selectRetention is a pure function of the listing, the time and the rule,
// so that what a dry run prints is what a real run deletes, and the rule
// can be tested without lvssd.

// retention is the rule --keep, --older-than and --context make.
type retention struct {
	keep          int           // keep the newest keep of each volume and context; < 0: no --keep
	olderThan     time.Duration // delete only what was created before now-olderThan; 0: no --older-than
	olderThanText string        // as the user wrote it, for the reasons
	context       vss.Context   // only this base context, if hasContext
	hasContext    bool
	// maxPerVolume, when > 0, bounds each volume's snapshots of every
	// kind: past --keep and --older-than, the oldest snapshots retention
	// may delete go until the volume holds at most this many.
	maxPerVolume int
	// maxAsked is --max-per-volume as given, when lvssd's cap lowered it
	// (maxPerVolume is then the cap less one); 0 otherwise.
	maxAsked int
}

// Verdicts.
const (
	verdictDelete = "delete"
	verdictKeep   = "keep"
	verdictSkip   = "skip"
)

// Reason codes, the JSON's reason_code (docs/cli.md lists them).
const (
	// delete
	reasonSelector       = "selector"    // --shadow, --set, --for or --all named it
	reasonBeyondKeep     = "beyond_keep" // not among the newest N
	reasonOlderThan      = "older_than"  // created before the cutoff
	reasonBeyondKeepOlds = "beyond_keep_and_older_than"
	reasonBeyondMax      = "beyond_max_per_volume" // kept by --keep/--older-than, but the volume holds too many
	// keep
	reasonNewest    = "newest"                // among the newest N
	reasonNewer     = "newer"                 // created at or after the cutoff
	reasonWithinMax = "within_max_per_volume" // --max-per-volume alone: kept unless the volume holds too many
	// skip
	reasonAutoRelease    = "auto_release"    // not persistent: its session deletes it
	reasonSessionRunning = "session_running" // its set's session still runs
	reasonExposed        = "exposed"
	reasonInUse          = "in_use" // lvssd refused at deletion: exposed or used since the listing
	reasonGone           = "gone"   // deleted by someone else since the listing
)

// decision is what was decided about one snapshot, and why.
type decision struct {
	snap    client.SnapshotProp
	verdict string
	code    string
	reason  string
}

// groupKey is what retention counts within: one volume, one context. The
// context is the base context, so that VSS_CTX_APP_ROLLBACK snapshots made
// with and without an extra attribute count together, and hourly
// application snapshots do not push out client-accessible ones.
type groupKey struct {
	volume  string
	context vss.Context
}

func keyOf(p client.SnapshotProp) groupKey {
	return groupKey{p.OriginalVolume, p.Context.Base()}
}

// newerFirst orders snapshots newest first. Snapshots created at the same
// instant are ordered by ID, so that the same listing always gives the
// same answer.
func newerFirst(a, b client.SnapshotProp) int {
	if c := b.Created.Compare(a.Created); c != 0 {
		return c
	}
	return strings.Compare(b.SnapshotID.String(), a.SnapshotID.String())
}

// selectRetention decides about every snapshot of snaps that r is about
// (those of r's context, if it has one); snaps are of the volumes --for
// named, or of all. The rule, per volume and context:
//
//   - Only persistent snapshots are retention's: auto-release ones belong
//     to their session (skipped), and so do persistent ones whose session
//     still runs (skipped, and not counted: a set still being created or
//     read by its backup is not one of the newest N yet).
//   - The others are ranked newest first. With --keep N the first N are
//     kept; with --older-than D those created at or after now-D are kept.
//     The rest is deleted: with both, a snapshot goes only if it is beyond
//     the newest N and older than D.
//   - An exposed snapshot counts in the ranking, but is never deleted:
//     where it would go, it is skipped.
//
// The result is ordered by volume, context, then oldest first.
func selectRetention(snaps []client.SnapshotProp, now time.Time, r retention) []decision {
	cutoff := now.Add(-r.olderThan)
	var out []decision
	groups := map[groupKey][]client.SnapshotProp{}
	for _, s := range snaps {
		switch {
		case r.hasContext && s.Context.Base() != r.context.Base():
			// another context: not this run's business
		case s.AutoRelease || !s.Context.Persistent():
			out = append(out, decision{s, verdictSkip, reasonAutoRelease, autoReleaseReason(s)})
		case s.LiveSession:
			out = append(out, decision{s, verdictSkip, reasonSessionRunning, fmt.Sprintf("made by session %s, which is still "+
				"running: its set is being created, or its backup is reading it; it does not count among the newest", optGUID(s.SessionID))})
		default:
			groups[keyOf(s)] = append(groups[keyOf(s)], s)
		}
	}
	for _, g := range groups {
		slices.SortFunc(g, newerFirst)
		for i, s := range g {
			inKeep := r.keep >= 0 && i < r.keep
			young := r.olderThan > 0 && !s.Created.Before(cutoff)
			var d decision
			switch {
			case r.keep < 0 && r.olderThan == 0:
				d = decision{s, verdictKeep, reasonWithinMax, fmt.Sprintf("%s holds at most %d snapshots (--max-per-volume)",
					s.OriginalVolume, r.maxPerVolume)}
			case inKeep:
				d = decision{s, verdictKeep, reasonNewest, fmt.Sprintf("one of the newest %d", r.keep)}
			case young:
				d = decision{s, verdictKeep, reasonNewer, fmt.Sprintf("created after the cutoff %s (--older-than %s)",
					textTime(cutoff), r.olderThanText)}
			default:
				d = decision{snap: s, verdict: verdictDelete}
				beyond := fmt.Sprintf("not one of the newest %d", r.keep)
				older := fmt.Sprintf("created before the cutoff %s (--older-than %s)", textTime(cutoff), r.olderThanText)
				switch {
				case r.keep >= 0 && r.olderThan > 0:
					d.code, d.reason = reasonBeyondKeepOlds, beyond+", and "+older
				case r.keep >= 0:
					d.code, d.reason = reasonBeyondKeep, beyond
				default:
					d.code, d.reason = reasonOlderThan, older
				}
				if s.ExposedName != "" {
					d = decision{s, verdictSkip, reasonExposed, exposedReason(s)}
				}
			}
			out = append(out, d)
		}
	}
	if r.maxPerVolume > 0 {
		boundPerVolume(snaps, out, r.maxPerVolume)
	}
	slices.SortStableFunc(out, func(a, b decision) int {
		ka, kb := keyOf(a.snap), keyOf(b.snap)
		if c := strings.Compare(ka.volume, kb.volume); c != 0 {
			return c
		}
		if c := cmp.Compare(ka.context, kb.context); c != 0 {
			return c
		}
		return newerFirst(b.snap, a.snap)
	})
	return out
}

// boundPerVolume applies --max-per-volume to the decisions: a volume's
// snapshots of every kind are counted (all of snaps, which are every
// snapshot of the volumes listed: other contexts, auto-release ones and
// running sessions' count too, as lvssd's cap counts them), and while a
// volume would keep more than max, its oldest snapshot that retention
// keeps is deleted after all, or skipped if exposed. Only the snapshots
// retention looks at can go (those of --context, when given), so a
// timer's bound on its own kind never deletes a backup's snapshots.
func boundPerVolume(snaps []client.SnapshotProp, ds []decision, limit int) {
	total, going := map[string]int{}, map[string]int{}
	for _, s := range snaps {
		total[s.OriginalVolume]++
	}
	var kept []int
	for i, d := range ds {
		switch d.verdict {
		case verdictDelete:
			going[d.snap.OriginalVolume]++
		case verdictKeep:
			kept = append(kept, i)
		}
	}
	slices.SortStableFunc(kept, func(a, b int) int { return newerFirst(ds[b].snap, ds[a].snap) })
	for _, i := range kept {
		s := ds[i].snap
		v := s.OriginalVolume
		left := total[v] - going[v]
		if left <= limit {
			continue
		}
		if s.ExposedName != "" {
			ds[i] = decision{s, verdictSkip, reasonExposed, exposedReason(s)}
			continue
		}
		ds[i] = decision{s, verdictDelete, reasonBeyondMax,
			fmt.Sprintf("%s holds %d snapshots of every kind, more than --max-per-volume %d", v, left, limit)}
		going[v]++
	}
}

func autoReleaseReason(s client.SnapshotProp) string {
	if s.LiveSession {
		return skipReason(s)
	}
	return "auto-release snapshot of session " + optGUID(s.SessionID) + ", which has ended; retention deletes only " +
		"persistent snapshots (--shadow ID deletes it)"
}

func exposedReason(s client.SnapshotProp) string {
	where := "at " + s.ExposedName
	if share := exposedShare(s); share != "" {
		where = "as SMB share " + share
	}
	return fmt.Sprintf("exposed %s; an exposed snapshot is never deleted by retention: 'lvss unexpose %s' lets it go",
		where, guidText(s.SnapshotID))
}

// textTime is a creation time as the text output and reasons show it.
func textTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// ageToken is one number and unit of --older-than: Go's units, and d
// (24h) and w (7d).
var ageToken = regexp.MustCompile(`^([0-9]*\.?[0-9]*)(ns|us|µs|ms|s|m|h|d|w)`)

// parseAge reads --older-than: a Go duration (90m, 12h, 1h30m) whose
// units may also be d (24h) and w (7d), e.g. 30d, 1w, 1d12h. It must be
// more than zero.
func parseAge(s string) (time.Duration, error) {
	bad := clierr.Usagef("--older-than: %q is not a duration (say 30d, 1w, 12h or 1d12h)", s)
	var b strings.Builder
	for rest := s; rest != ""; {
		m := ageToken.FindStringSubmatch(rest)
		if m == nil || m[1] == "" || m[1] == "." {
			return 0, bad
		}
		rest = rest[len(m[0]):]
		if m[2] != "d" && m[2] != "w" {
			b.WriteString(m[0])
			continue
		}
		n, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, bad
		}
		if m[2] == "w" {
			n *= 7
		}
		b.WriteString(strconv.FormatFloat(n*24, 'f', -1, 64) + "h")
	}
	d, err := time.ParseDuration(b.String())
	if err != nil || s == "" {
		return 0, bad
	}
	if d <= 0 {
		return 0, clierr.Usagef("--older-than %s: the age must be more than zero", s)
	}
	return d, nil
}

// retentionContext reads --context for retention: a persistent context,
// named as create shadow takes it.
func retentionContext(s string) (vss.Context, error) {
	c, err := parseContextFlag(s)
	if err != nil {
		return 0, err
	}
	switch {
	case c == vss.CtxAll:
		return 0, clierr.Usagef("--context VSS_CTX_ALL is every context: leave --context out for that")
	case !c.Valid():
		return 0, clierr.Usagef("--context %s is not a snapshot context", c)
	case !c.Persistent():
		return 0, clierr.Usagef("--context %s is not persistent: retention deletes only persistent snapshots "+
			"(VSS_CTX_CLIENT_ACCESSIBLE, VSS_CTX_APP_ROLLBACK, VSS_CTX_NAS_ROLLBACK, VSS_CTX_CLIENT_ACCESSIBLE_WRITERS)", c)
	}
	return c.Base(), nil
}

// mergeListings joins the listings of several --for volumes, once each.
func mergeListings(lists ...[]client.SnapshotProp) []client.SnapshotProp {
	seen := map[uuid.UUID]bool{}
	var out []client.SnapshotProp
	for _, l := range lists {
		for _, s := range l {
			if !seen[s.SnapshotID] {
				seen[s.SnapshotID] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// capPerVolume keeps --max-per-volume below lvssd's own cap
// (limits.max_snapshots_per_volume, which lvssd's status says): a bound
// at or above it would let the snapshots retention keeps fill the volume
// until every creation of any kind, a backup's included, failed with
// VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED. Such a bound becomes the cap
// less one, and the report says so.
func capPerVolume(ctx context.Context, socket string, r retention) (retention, error) {
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	st, err := conn.Status(ctx, -1)
	if err != nil {
		return r, failed("Status", err)
	}
	if lvssdCap := st.MaxSnapshotsPerVolume; lvssdCap > 0 && r.maxPerVolume >= lvssdCap {
		r.maxAsked, r.maxPerVolume = r.maxPerVolume, max(lvssdCap-1, 1)
	}
	return r, nil
}
