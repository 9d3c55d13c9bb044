package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/vsserr"
)

// followInterval is how often lvss events --follow asks lvssd for new
// entries: each ask is one short unary call, so a follower costs lvssd a
// read of the log's tail per interval, whatever it does with the answer.
const followInterval = time.Second

// followPage bounds one answer while following, so that a burst of
// entries comes in pages rather than as one huge message.
const followPage = 1000

// followTail is how many entries --follow shows first when nothing says
// where to start, as tail -f does.
const followTail = 10

type eventsOptions struct {
	since, session, writer, level, hresult string
	after                                  uint64
	limit                                  int
	follow                                 bool
}

// newEventsCommand is `lvss events`, and the same command under `lvss
// list events` (where it was first, and stays for scripts).
func newEventsCommand(g *globalOptions, use string) *cobra.Command {
	o := &eventsOptions{}
	cmd := &cobra.Command{
		Use:   use + " [--since TIME|DURATION] [--session ID] [--writer NAME] [--level LEVEL] [--hresult CODE] [--after SEQ] [--limit N] [--follow]",
		Short: "Show lvssd's event log, filtered, or follow it",
		Long: `Show lvssd's event log, oldest first: sessions started and released,
snapshot sets created or aborted, snapshots made and their consistency,
writers that failed or did not answer, refused callers, and internal errors
with their HRESULT (VSS_E_UNEXPECTED: "details are in the log"). It starts
no session. 'lvss list events' is the same command.

Filters (an entry is shown when it passes all that are given):
  --since TIME|DURATION  entries at or after TIME (RFC 3339, "2006-01-02 15:04",
                         "2006-01-02"; local time unless it says otherwise) or
                         DURATION ago ("90m", "2h", "3d")
  --session ID           entries of one session
  --writer NAME          entries about one writer (its name, or instance ID)
  --level LEVEL          entries of LEVEL and above: info, warn, error
  --hresult CODE         entries with this HRESULT (a name, or 0x and its number)
  --after SEQ            entries after sequence number SEQ

--limit N shows at most N entries: the newest N, or with --after the first N
after SEQ (to page through the log). --follow keeps printing new entries as
lvssd logs them, until interrupted (exit status 0); it starts with the last
10 matching entries unless --since, --after or --limit says otherwise (they
apply to that first listing).

--json prints one JSON array; with --follow, one JSON object per line.`,
		Example: `  lvss events --level error --since 1h
  lvss events --writer postgres --limit 20
  lvss events --session 3b2b4ce3-cbad-42b9-9cdb-5f0595bf0d98 --json
  lvss events --follow --level warn`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := o.filter(cmd, time.Now())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if o.follow {
				tail := !cmd.Flags().Changed("since") && !cmd.Flags().Changed("after") && !cmd.Flags().Changed("limit")
				return followEvents(cmd.Context(), g.socket, f, tail, g.json, out)
			}
			return listEvents(cmd.Context(), g.socket, f, g.json, out)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.since, "since", "", "only entries at or after this time, or this long ago")
	fl.StringVar(&o.session, "session", "", "only entries of this session")
	fl.StringVar(&o.writer, "writer", "", "only entries about this writer (name or instance ID)")
	fl.StringVar(&o.level, "level", "", "only entries of this level and above: info, warn, error")
	fl.StringVar(&o.hresult, "hresult", "", "only entries with this HRESULT (name or 0x...)")
	fl.Uint64Var(&o.after, "after", 0, "only entries with a larger sequence number")
	fl.IntVar(&o.limit, "limit", 0, "at most this many entries: the newest, or with --after the first (0 = all)")
	fl.BoolVarP(&o.follow, "follow", "f", false, "keep printing new entries until interrupted")
	return cmd
}

// filter checks the flags and turns them into lvssd's filter.
func (o *eventsOptions) filter(cmd *cobra.Command, now time.Time) (client.EventFilter, error) {
	f := client.EventFilter{AfterSeq: o.after, Limit: o.limit, Writer: o.writer}
	if o.limit < 0 {
		return f, clierr.Usagef("--limit %d: give a count of 0 or more", o.limit)
	}
	// Without --after, a limit keeps the newest: what someone asking for
	// "20 events" wants. With it, the first after SEQ: paging forward.
	f.Newest = !cmd.Flags().Changed("after")
	if o.since != "" {
		t, err := parseSince(o.since, now)
		if err != nil {
			return f, clierr.Usagef("--since %q: %v", o.since, err)
		}
		f.Since = t
	}
	if o.session != "" {
		id, err := parseID("--session", o.session)
		if err != nil {
			return f, err
		}
		f.SessionID = id
	}
	if o.level != "" {
		lv, err := parseLevel(o.level)
		if err != nil {
			return f, clierr.Usagef("--level %q: %v", o.level, err)
		}
		f.MinLevel = lv
	}
	if o.hresult != "" {
		h, ok := vsserr.Lookup(strings.TrimSpace(o.hresult))
		if !ok {
			return f, clierr.Usagef("--hresult %q: not an HRESULT name (such as VSS_E_WRITER_NOT_RESPONDING) or number (0x800423F3)", o.hresult)
		}
		f.HRESULT = h
	}
	return f, nil
}

// parseSince reads --since: a duration before now ("90m", "2h30m", "3d"),
// or a time (RFC 3339, or a date and time without zone, taken as local).
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseFloat(d, 64); err == nil && n >= 0 {
			return now.Add(-time.Duration(n * 24 * float64(time.Hour))), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, errors.New("a duration ago cannot be negative")
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New(`not a time ("2026-11-25T01:10:03Z", "2026-11-25 01:10", "2026-11-25") or a duration ago ("90m", "2h", "3d")`)
}

// parseLevel reads --level: the event log's levels, and "warning" for warn.
func parseLevel(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "info":
		return "info", nil
	case "warn", "warning":
		return "warn", nil
	case "error":
		return "error", nil
	}
	return "", errors.New("the levels are info, warn and error")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func eventObj(e client.LogEvent) obj {
	fields := obj{}
	for _, k := range sortedKeys(e.Fields) {
		fields = append(fields, field{k, e.Fields[k]})
	}
	return obj{{"seq", e.Seq}, {"time", e.Time.UTC().Format(time.RFC3339Nano)}, {"level", e.Level},
		{"message", e.Message}, {"hresult", e.HRESULT.Hex()}, {"name", e.HRESULT.Name()},
		{"session_id", sessionText(e.SessionID)}, {"fields", fields}}
}

func sessionText(u uuid.UUID) string {
	if u == uuid.Nil {
		return ""
	}
	return u.String()
}

// eventLine is one entry in text: sequence number, time, level, message,
// the HRESULT when there is one, and the fields.
func eventLine(b *strings.Builder, e client.LogEvent) {
	fmt.Fprintf(b, "%6d %s %-5s %s", e.Seq, e.Time.UTC().Format(time.RFC3339), e.Level, e.Message)
	if e.HRESULT != 0 {
		fmt.Fprintf(b, " [%s]", e.HRESULT)
	}
	if e.SessionID != uuid.Nil {
		fmt.Fprintf(b, " session=%s", e.SessionID)
	}
	for _, k := range sortedKeys(e.Fields) {
		fmt.Fprintf(b, " %s=%q", k, e.Fields[k])
	}
	b.WriteByte('\n')
}

func listEvents(ctx context.Context, socket string, f client.EventFilter, asJSON bool, out io.Writer) error {
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	evs, _, err := conn.QueryEvents(ctx, f)
	if err != nil {
		return failed("ListEvents", err)
	}
	if asJSON {
		list := make([]obj, 0, len(evs))
		for _, e := range evs {
			list = append(list, eventObj(e))
		}
		return writeJSON(out, list)
	}
	var b strings.Builder
	for _, e := range evs {
		eventLine(&b, e)
	}
	_, err = io.WriteString(out, b.String())
	return err
}

// followEvents prints the entries f selects, then every new one as lvssd
// logs it, polling at followInterval, until ctx ends (SIGINT, SIGTERM),
// which is its normal end. tail: start with the last followTail entries.
func followEvents(ctx context.Context, socket string, f client.EventFilter, tail, asJSON bool, out io.Writer) error {
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	show := func(evs []client.LogEvent) error {
		var b strings.Builder
		for _, e := range evs {
			if asJSON {
				j, err := marshal(eventObj(e))
				if err != nil {
					return err
				}
				b.Write(j)
				b.WriteByte('\n')
			} else {
				eventLine(&b, e)
			}
		}
		_, err := io.WriteString(out, b.String())
		return err
	}
	// query asks once; done says the follower was interrupted, its normal
	// end.
	query := func(q client.EventFilter) (evs []client.LogEvent, last uint64, done bool, err error) {
		evs, last, err = conn.QueryEvents(ctx, q)
		if err != nil && ctx.Err() != nil {
			return nil, 0, true, nil
		}
		if err != nil {
			return nil, 0, false, failed("ListEvents", err)
		}
		return evs, last, false, nil
	}
	first := f
	if tail {
		first.Limit, first.Newest = followTail, true
	}
	evs, last, done, err := query(first)
	if done || err != nil {
		return err
	}
	if err := show(evs); err != nil {
		return err
	}
	// Continue after what the first listing covered: the whole log up to
	// its end as that read saw it, unless --after with --limit stopped it
	// at its limit: then after the last entry it showed, so that the rest
	// follows at once, as paging would give it.
	cursor := max(f.AfterSeq, last)
	if !first.Newest && first.Limit > 0 && len(evs) == first.Limit {
		cursor = evs[len(evs)-1].Seq
	}
	tick := time.NewTicker(followInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for {
			next := f
			next.AfterSeq, next.Limit, next.Newest = cursor, followPage, false
			evs, last, done, err := query(next)
			if done || err != nil {
				return err
			}
			if err := show(evs); err != nil {
				return err
			}
			if len(evs) == followPage {
				cursor = evs[len(evs)-1].Seq
				continue // more may wait: read them now, not in a second
			}
			cursor = max(cursor, last)
			break
		}
	}
}
