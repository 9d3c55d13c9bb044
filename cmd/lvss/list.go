package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
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
	)
	cmd := &cobra.Command{
		Use:   "shadows [--set ID] [--for PATH]",
		Short: "List shadow copies (snapshots) of every context",
		Long: `List the snapshots lvssd keeps, of every context, like 'vssadmin list shadows':
grouped by snapshot set, each with its ID, original volume, where its
content is (Shadow Copy Volume), provider, context, attributes,
consistency and the reason for it, and where it is exposed. Auto-release
snapshots of sessions that still run are listed too, marked as such: they
belong to those sessions and go when they end.

--set ID shows one snapshot set; --for PATH the snapshots of the volume
PATH names (as it was given to AddToSnapshotSet or 'lvss create shadow').
Starts no session. --json prints one JSON array ([] when there is none).`,
		Example: `  lvss list shadows
  lvss list shadows --for /srv --json | jq -r '.[] | select(.consistency != "application") | .snapshot_id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var setID uuid.UUID
			if cmd.Flags().Changed("set") {
				var err error
				if setID, err = parseID("--set", set); err != nil {
					return err
				}
			}
			vol := ""
			if cmd.Flags().Changed("for") {
				var err error
				if vol, err = absPath(forVol); err != nil {
					return err
				}
			}
			return listShadowsCmd(cmd.Context(), g.socket, setID, vol, g.json, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&set, "set", "", "only the snapshots of this snapshot set")
	cmd.Flags().StringVar(&forVol, "for", "", "only the snapshots of this volume")
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

func listShadowsCmd(ctx context.Context, socket string, setID uuid.UUID, vol string, asJSON bool, out io.Writer) error {
	ps, err := listShadows(ctx, socket, setID, vol)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(out, shadowObjs(ps))
	}
	if len(ps) == 0 {
		_, err := fmt.Fprintln(out, "No shadow copies found.")
		return err
	}
	return writeShadowsText(out, ps)
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

func writeJSON(out io.Writer, v []obj) error {
	if v == nil {
		v = []obj{}
	}
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
