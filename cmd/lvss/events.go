package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
)

func newListEventsCommand(g *globalOptions) *cobra.Command {
	var (
		after uint64
		limit int
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show lvssd's event log (sessions, writer failures, internal errors)",
		Long: `Show lvssd's event log, oldest first: sessions started and released,
snapshot sets created or aborted, writers that failed or did not answer,
refused callers, and unexpected internal errors with their HRESULT (spec:
VSS_E_UNEXPECTED "details are in the log").

--after SEQ shows only events after that sequence number (for following
the log); --limit N shows at most N. --json prints one JSON array.`,
		Example: `  lvss list events
  lvss list events --after 120 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listEvents(cmd.Context(), g.socket, after, limit, g.json, cmd.OutOrStdout())
		},
	}
	cmd.Flags().Uint64Var(&after, "after", 0, "show only events with a larger sequence number")
	cmd.Flags().IntVar(&limit, "limit", 0, "show at most this many events (0 = all)")
	return cmd
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
		{"session_id", guidText(e.SessionID)}, {"fields", fields}}
}

func listEvents(ctx context.Context, socket string, after uint64, limit int, asJSON bool, out io.Writer) error {
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	evs, err := conn.ListEvents(ctx, after, limit)
	if err != nil {
		return err
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
		fmt.Fprintf(&b, "%6d %s %-5s %s", e.Seq, e.Time.UTC().Format(time.RFC3339), e.Level, e.Message)
		if e.HRESULT != 0 {
			fmt.Fprintf(&b, " [%s]", e.HRESULT)
		}
		for _, k := range sortedKeys(e.Fields) {
			fmt.Fprintf(&b, " %s=%q", k, e.Fields[k])
		}
		b.WriteByte('\n')
	}
	_, err = io.WriteString(out, b.String())
	return err
}
