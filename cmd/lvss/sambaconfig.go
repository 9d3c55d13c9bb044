package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/vsserr"
)

func newSambaConfigCommand(g *globalOptions) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "samba-config PATH [--name NAME]",
		Short: "Print the smb.conf share that shows PATH's snapshots as Previous Versions",
		Long: `Print the share section to paste into smb.conf so that Windows clients of
the Samba share of PATH see its lvss snapshots as Previous Versions
(Explorer's Previous Versions tab), through Samba's vfs_shadow_copy2 module
and the snapdir lvssd keeps for PATH: one @GMT- entry per snapshot, named
by its creation time in UTC.

PATH must be one of the [[previous_versions]] paths of lvssd's config
(docs/previous-versions.md): lvssd says where it keeps PATH's snapdir, and
lvss prints what it says; nothing is written. The section is named --name
(default: PATH's last element). A share of PATH that exists already needs
shadow_copy2 in its vfs objects and the shadow: lines; 'lvss doctor' checks
smb.conf's shares against lvssd's config.

--json prints one object: name, path, snapdir, samba_config (the smb.conf
lvssd's [samba] config names), parameters (key and value, in order),
stanza (the text), versions (the snapdir's entries now: name, snapshot_id,
created, target) and skipped (snapshots it cannot show, with the reason).

A PATH that is not configured is VSS_E_OBJECT_NOT_FOUND (exit 1); a bad
--name is a usage error (exit 2).`,
		Example: `  lvss samba-config /srv/share
  lvss samba-config /srv/share --name projects >>/etc/samba/smb.conf && smbcontrol smbd reload-config
  lvss samba-config /srv/share --json | jq -r '.versions[].name'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := absPath(args[0])
			if err != nil {
				return err
			}
			if name == "" {
				name = filepath.Base(path)
				if name == "/" {
					return clierr.Usagef("the share of / needs a name: --name NAME")
				}
				if err := checkShareName(name); err != nil {
					return clierr.Usagef("%v; name the share with --name NAME", err)
				}
			} else if err := checkShareName(name); err != nil {
				return clierr.Usagef("--name: %v", err)
			}
			return sambaConfig(cmd.Context(), g.socket, path, name, g.json, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the share's name, its smb.conf section (default: PATH's last element)")
	return cmd
}

// checkShareName refuses what cannot name a share section that Windows
// clients reach: Samba's special sections, characters Windows forbids in
// share names or smb.conf gives a meaning, and names longer than Windows
// shows (80 characters).
func checkShareName(n string) error {
	switch strings.ToLower(n) {
	case "global", "homes", "printers", "print$", "ipc$":
		return fmt.Errorf("%q is one of Samba's special sections", n)
	}
	if strings.TrimSpace(n) != n || n == "" {
		return fmt.Errorf("%q: a share name neither is empty nor starts or ends with a space", n)
	}
	if len([]rune(n)) > 80 {
		return fmt.Errorf("%q is longer than 80 characters", n)
	}
	if i := strings.IndexFunc(n, func(r rune) bool { return r < ' ' || r == 0x7f || strings.ContainsRune(`"/\[]:|<>+=;,?*`, r) }); i >= 0 {
		return fmt.Errorf("%q: a share name may not contain %q", n, n[i:i+1])
	}
	return nil
}

// notConfigured is samba-config's VSS_E_OBJECT_NOT_FOUND: the path is not
// one of lvssd's [[previous_versions]].
type notConfigured struct {
	error
	path string
}

func (e notConfigured) Unwrap() error { return e.error }

func (e notConfigured) Hint() string {
	return fmt.Sprintf("add [[previous_versions]] with path = %q to lvssd's config (/etc/lvss/lvssd.toml), check it with "+
		"'lvssd --check-config' and restart lvssd (docs/previous-versions.md)", e.path)
}

func sambaConfig(ctx context.Context, socket, path, name string, asJSON bool, out io.Writer) error {
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	pv, err := conn.PreviousVersions(ctx, path)
	if vsserr.Code(err) == vsserr.ObjectNotFound {
		return notConfigured{failed("PreviousVersions", err), path}
	}
	if err != nil {
		return failed("PreviousVersions", err)
	}
	if len(pv.Shares) != 1 {
		return failed("PreviousVersions", vsserr.New(vsserr.Unexpected, "lvssd answered %d shares for %s", len(pv.Shares), path))
	}
	sh := pv.Shares[0]
	stanza := "[" + name + "]\n"
	for _, p := range sh.SambaParams {
		stanza += "\t" + p.Key + " = " + p.Value + "\n"
	}
	if asJSON {
		params, versions, skipped := []obj{}, []obj{}, []obj{}
		for _, p := range sh.SambaParams {
			params = append(params, obj{{"key", p.Key}, {"value", p.Value}})
		}
		for _, v := range sh.Versions {
			versions = append(versions, obj{{"name", v.Name}, {"snapshot_id", guidText(v.Snapshot)}, {"created", timeText(v.Created)},
				{"target", v.Target}})
		}
		for _, s := range sh.Skipped {
			skipped = append(skipped, obj{{"snapshot_id", guidText(s.Snapshot)}, {"reason", s.Reason}})
		}
		shut := obj{{"dir", sh.ShutDir}, {"mode", fmt.Sprintf("%04o", sh.ShutMode)}}
		var shutVal any = shut
		if sh.ShutDir == "" {
			shutVal = nil
		}
		return writeObj(out, obj{{"name", name}, {"path", sh.Path}, {"snapdir", sh.Snapdir}, {"samba_config", pv.SambaConfig},
			{"parameters", params}, {"stanza", stanza}, {"versions", versions}, {"skipped", skipped}, {"shut", shutVal}})
	}
	conf := pv.SambaConfig
	if conf == "" {
		conf = "smb.conf"
	}
	note := ""
	if sh.ShutDir != "" {
		note = fmt.Sprintf("# Only root can open the versions until other users may search %s (mode %04o):\n#   chmod o+x %s\n",
			sh.ShutDir, sh.ShutMode, sh.ShutDir)
	}
	_, err = fmt.Fprintf(out, "# Previous versions of %s from lvss snapshots (lvss samba-config): add to %s,\n"+
		"# or add shadow_copy2 and the shadow: lines to the share of %s there.\n%s%s", sh.Path, conf, sh.Path, note, stanza)
	return err
}
