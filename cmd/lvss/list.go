package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/vsserr"
)

// The list verbs read what the daemon knows through the Admin service:
// they start no session and send writers no event (D16), so they
// are safe to run in the middle of someone else's backup.

func newListCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show writers, providers, shadow copies or the event log of lvssd (like vssadmin list)",
		Long: `Show what lvssd knows, without starting a session or sending any writer
event (D16).`,
		Example: `  lvss list writers
  lvss list shadows --for /srv
  lvss list providers --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newListWritersCommand(g), newListProvidersCommand(g), newListShadowsCommand(g), newEventsCommand(g, "events"))
	return cmd
}

func newListWritersCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "writers",
		Short: "List subscribed writers, their components and last state",
		Long: `List every subscribed writer like 'vssadmin list writers': name, class ID,
instance ID, instance name, its components (logical path\name and file
paths, from the Writer Metadata Document of its last Identify), its state
and last error in the most recent session it took part in, and which
session that was. Starts no session and sends no event.

--json prints one JSON array ([] when no writer is subscribed).`,
		Example: `  lvss list writers
  lvss list writers --json | jq '.[] | select(.state_value != 1) | .name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listWriters(cmd.Context(), g.socket, g.json, cmd.OutOrStdout())
		},
	}
	return cmd
}

func newListProvidersCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "providers",
		Short: "List registered snapshot providers",
		Long: `List the registered providers like 'vssadmin list providers': name, type,
provider ID and version. --json prints one JSON array.`,
		Example: `  lvss list providers`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listProviders(cmd.Context(), g.socket, g.json, cmd.OutOrStdout())
		},
	}
	return cmd
}

func newListShadowsCommand(g *globalOptions) *cobra.Command {
	var (
		set    string
		forVol string
		after  string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "shadows [--set ID] [--for PATH] [--after ID] [--limit N]",
		Short: "List shadow copies (snapshots) of every context",
		Long: `List the snapshots lvssd keeps, of every context, like 'vssadmin list shadows':
grouped by snapshot set, each with its ID, original volume, where its
content is (Shadow Copy Volume), provider, context, attributes,
consistency and the reason for it, and where it is exposed. Auto-release
snapshots of sessions that still run are listed too, marked as such: they
belong to those sessions and go when they end.

--set ID shows one snapshot set; --for PATH the snapshots of the volume
PATH names (as it was given to AddToSnapshotSet or 'lvss create shadow').
Starts no session. Snapshots are printed as lvssd sends them, a few hundred
at a time, sets in the order they were created.

To page through a long listing: --limit N prints at most N snapshots, and
--after ID continues after the snapshot ID (the last one a page printed;
it must still exist).

--json prints one JSON array ([] when there is none), its elements as
they arrive.`,
		Example: `  lvss list shadows
  lvss list shadows --for /srv --json | jq -r '.[] | select(.consistency != "application") | .snapshot_id'
  lvss list shadows --limit 100 --json                     # the first 100
  lvss list shadows --limit 100 --after 7d0c93a4-1b2e-4f6a-8c5d-3e9f0a1b2c4d   # the next 100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var f client.ShadowFilter
			var err error
			if cmd.Flags().Changed("set") {
				if f.SetID, err = parseID("--set", set); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("for") {
				if f.Volume, err = absPath(forVol); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("after") {
				if f.After, err = parseID("--after", after); err != nil {
					return err
				}
			}
			if limit < 0 {
				return clierr.Usagef("--limit %d: give a count of 0 or more", limit)
			}
			f.Limit = limit
			return listShadowsCmd(cmd.Context(), g.socket, f, g.json, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&set, "set", "", "only the snapshots of this snapshot set")
	cmd.Flags().StringVar(&forVol, "for", "", "only the snapshots of this volume")
	cmd.Flags().StringVar(&after, "after", "", "continue after this snapshot ID (the last of the previous page)")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many snapshots (0 = all)")
	return cmd
}

// listShadows returns the snapshots lvssd lists, in display order.
func listShadows(ctx context.Context, socket string, setID uuid.UUID, vol string) ([]client.SnapshotProp, error) {
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ps, err := conn.ListShadows(ctx, setID, vol)
	if err != nil {
		return nil, failed("ListShadows", err)
	}
	sortShadows(ps)
	return ps, nil
}

// listShadowsCmd prints the listing as lvssd streams it: each batch is
// written out before the next is read, so the first rows of 10,000 show at
// once and lvss holds one batch at a time. lvssd sends sets whole and in
// display order. A failure before the first batch leaves standard output
// empty; one after it leaves what was printed (with --json, an array that
// does not close, so no parser takes it for the whole listing).
func listShadowsCmd(ctx context.Context, socket string, f client.ShadowFilter, asJSON bool, out io.Writer) error {
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	w := bufio.NewWriterSize(out, 64<<10)
	var text shadowText
	var arr jsonStream
	err = conn.StreamShadows(ctx, f, func(batch []client.SnapshotProp) error {
		var err error
		if asJSON {
			for _, p := range batch {
				if err = arr.add(w, shadowObj(p)); err != nil {
					return err
				}
			}
		} else {
			err = text.write(w, batch)
		}
		if err == nil {
			err = w.Flush()
		}
		return err
	})
	if err != nil {
		return failed("ListShadows", err)
	}
	switch {
	case asJSON:
		err = arr.end(w)
	case text.rows == 0:
		_, err = fmt.Fprintln(w, "No shadow copies found.")
	}
	if err != nil {
		return err
	}
	return w.Flush()
}

func listWriters(ctx context.Context, socket string, asJSON bool, out io.Writer) error {
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	ws, err := conn.ListWriters(ctx)
	if err != nil {
		return err
	}
	list := make([]obj, 0, len(ws))
	for _, w := range ws {
		list = append(list, writerInfoObj(w))
	}
	if asJSON {
		return writeJSON(out, list)
	}
	return writeWritersText(out, list)
}

// writerInfoObj is one writer of `lvss list writers`. A WMD that does not
// parse does not hide the writer: it is listed with the reason.
func writerInfoObj(w client.WriterInfo) obj {
	o := obj{{"name", w.Name}, {"writer_id", guidText(w.WriterID)}, {"instance_id", guidText(w.InstanceID)},
		{"instance_name", w.InstanceName}}
	o = stateFields(o, "state", w.State)
	o = hrFields(o, "last_error", w.Failure)
	o = hrFields(o, "application", w.ApplicationHRESULT)
	o = o.add("application_message", w.ApplicationMessage)
	session := ""
	if w.LastSessionID != uuid.Nil {
		session = guidText(w.LastSessionID)
	}
	o = o.add("last_session_id", session).add("level", w.Level.String()).
		add("freeze_timeout_ms", w.FreezeTimeout.Milliseconds()).add("pid", w.PID).add("uid", w.UID)
	comps := []obj{}
	md, err := w.Metadata()
	if md != nil {
		for _, c := range md.Components {
			comps = append(comps, listComponentObj(c))
		}
	}
	o = o.add("components", comps)
	if err != nil {
		o = o.add("metadata_error", vsserr.Code(err).Name()+": "+vsserr.Message(err))
	}
	return o
}

func listComponentObj(c document.Component) obj {
	var paths []string
	for _, fs := range [][]document.FileDesc{c.Files, c.DatabaseFiles, c.DatabaseLogFiles} {
		for _, f := range fs {
			p := path.Join(f.Path, f.Filespec)
			if f.Recursive {
				p += " (recursive)"
			}
			paths = append(paths, p)
		}
	}
	return obj{{"component", componentPath(c.LogicalPath, c.Name)}, {"type", c.Type.String()},
		{"caption", c.Caption}, {"selectable", c.Selectable}, {"paths", paths}}
}

func writeWritersText(out io.Writer, list []obj) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(out, "No writers are subscribed.")
		return err
	}
	var b strings.Builder
	for i, w := range list {
		if i > 0 {
			b.WriteByte('\n')
		}
		s := func(k string) string { v, _ := w.get(k); return fmt.Sprint(v) }
		fmt.Fprintf(&b, "Writer name: '%s'\n", s("name"))
		fmt.Fprintf(&b, "   Writer Id: %s\n", s("writer_id"))
		fmt.Fprintf(&b, "   Writer Instance Id: %s\n", s("instance_id"))
		if n := s("instance_name"); n != "" {
			fmt.Fprintf(&b, "   Instance name: %s\n", n)
		}
		fmt.Fprintf(&b, "   State: %s (%s)\n", s("state"), s("state_value"))
		fmt.Fprintf(&b, "   Last error: %s (%s)\n", s("last_error"), s("last_error_hresult"))
		if m := s("application_message"); m != "" {
			fmt.Fprintf(&b, "   Application: %s (%s): %s\n", s("application"), s("application_hresult"), m)
		}
		if sess := s("last_session_id"); sess != "" {
			fmt.Fprintf(&b, "   Last session: %s\n", sess)
		} else {
			fmt.Fprintf(&b, "   Last session: none\n")
		}
		if e, ok := w.get("metadata_error"); ok {
			fmt.Fprintf(&b, "   Metadata: %v\n", e)
		}
		v, _ := w.get("components")
		comps, _ := v.([]obj)
		if len(comps) == 0 {
			fmt.Fprintf(&b, "   Components: none\n")
			continue
		}
		fmt.Fprintf(&b, "   Components:\n")
		for _, c := range comps {
			cs := func(k string) string { v, _ := c.get(k); return fmt.Sprint(v) }
			fmt.Fprintf(&b, "      %s (%s)\n", cs("component"), cs("type"))
			pv, _ := c.get("paths")
			for _, p := range pv.([]string) {
				fmt.Fprintf(&b, "         %s\n", p)
			}
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}

func listProviders(ctx context.Context, socket string, asJSON bool, out io.Writer) error {
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	ps, err := conn.ListProviders(ctx)
	if err != nil {
		return err
	}
	list := make([]obj, 0, len(ps))
	for _, p := range ps {
		list = append(list, providerObj(p))
	}
	if asJSON {
		return writeJSON(out, list)
	}
	if len(list) == 0 {
		_, err := fmt.Fprintln(out, "No providers are registered.")
		return err
	}
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "Provider name: '%s'\n   Provider type: %s\n   Provider Id: %s\n   Version: %s\n",
			p.Name, p.Type, guidText(p.ProviderID), p.Version)
	}
	_, err = io.WriteString(out, b.String())
	return err
}

// jsonStream writes a JSON array element by element, exactly as writeJSON
// writes the whole: two-space indent, no HTML escaping.
type jsonStream struct {
	n   int
	buf []byte
}

func (a *jsonStream) add(w io.Writer, o obj) error {
	a.buf = a.buf[:0]
	if a.n == 0 {
		a.buf = append(a.buf, "[\n  "...)
	} else {
		a.buf = append(a.buf, ",\n  "...)
	}
	var err error
	if a.buf, err = appendIndented(a.buf, o, "  "); err != nil {
		return err
	}
	a.n++
	_, err = w.Write(a.buf)
	return err
}

// end closes the array ([] when it had no element).
func (a *jsonStream) end(w io.Writer) error {
	s := "\n]\n"
	if a.n == 0 {
		s = "[]\n"
	}
	_, err := io.WriteString(w, s)
	return err
}

func writeJSON(out io.Writer, v []obj) error {
	// Built whole, then written at once: nothing reaches out if an
	// element cannot be encoded.
	var b bytes.Buffer
	var a jsonStream
	for _, o := range v {
		if err := a.add(&b, o); err != nil {
			return err
		}
	}
	if err := a.end(&b); err != nil {
		return err
	}
	_, err := out.Write(b.Bytes())
	return err
}
