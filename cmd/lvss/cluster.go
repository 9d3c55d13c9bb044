//go:build lvss_cluster

// This file is lvss-cluster's: lvss itself runs it for 'lvss cluster'
// (cluster_exec.go, L69), so that etcd's client is linked into that one
// binary and every other lvss command starts without it.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lvss/lvss/backupdoc"
	"github.com/lvss/lvss/internal/clierr"
	"github.com/lvss/lvss/internal/cluster"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// clusterUnreachable is etcd out of reach: exit status 69, as for lvssd.
func clusterUnreachable(err error) bool { return errors.As(err, new(*cluster.Unreachable)) }

// clusterFlags reach etcd: lvss cluster's own, since its verbs talk to
// etcd, not to a local lvssd.
type clusterFlags struct {
	endpoints          string
	caCert, cert, key  string
	prefix             string
	dialTimeout        time.Duration
	keys               cluster.Keys
	conn               cluster.Conn
	connectedEndpoints []string
}

// etcdEnv is where --etcd's default comes from.
const etcdEnv = "LVSS_ETCD"

func (f *clusterFlags) add(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.endpoints, "etcd", "", "etcd's client URLs, comma-separated (default $"+etcdEnv+")")
	fl.StringVar(&f.caCert, "cacert", "", "PEM file: the CA of etcd's certificates")
	fl.StringVar(&f.cert, "cert", "", "PEM file: this client's certificate (with --key)")
	fl.StringVar(&f.key, "key", "", "PEM file: this client's key")
	fl.StringVar(&f.prefix, "prefix", cluster.DefaultPrefix, "the key prefix lvss uses in etcd ([cluster] prefix of the hosts)")
	fl.DurationVar(&f.dialTimeout, "dial-timeout", 5*time.Second, "how long to wait for etcd to answer")
}

// connect checks the flags and reaches etcd.
func (f *clusterFlags) connect(ctx context.Context) (*clientv3.Client, error) {
	eps := f.endpoints
	if eps == "" {
		eps = os.Getenv(etcdEnv)
	}
	if eps == "" {
		return nil, clierr.UsageError{Err: errors.New("say where etcd is: --etcd URL[,URL...] or $" + etcdEnv)}
	}
	k, err := cluster.NewKeys(f.prefix)
	if err != nil {
		return nil, clierr.UsageError{Err: err}
	}
	f.keys = k
	for _, e := range strings.Split(eps, ",") {
		if e = strings.TrimSpace(e); e != "" {
			f.connectedEndpoints = append(f.connectedEndpoints, e)
		}
	}
	f.conn = cluster.Conn{Endpoints: f.connectedEndpoints, CACert: f.caCert, Cert: f.cert, Key: f.key, DialTimeout: f.dialTimeout}
	return cluster.Connect(ctx, f.conn)
}

func newClusterCommand(g *globalOptions) *cobra.Command {
	var f clusterFlags
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Snapshot sets across hosts, coordinated through etcd",
		Long: `One application-consistent snapshot set across several hosts: every host
prepares, then every host freezes its writers, then every host commits,
then every host thaws, held together at barriers in etcd
(docs/cluster.md). Each host's lvssd needs a [cluster] section naming the
host and etcd; these verbs talk to etcd and run on any machine that
reaches it.`,
		Example: `  export LVSS_ETCD=https://etcd1:2379,https://etcd2:2379,https://etcd3:2379
  lvss cluster status
  lvss cluster backup --for db1:/srv/pg --for db2:/srv/pg -- true`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	f.add(cmd)
	cmd.AddCommand(newClusterBackupCommand(g, &f), newClusterStatusCommand(g, &f), newClusterListCommand(g, &f),
		newClusterDeleteCommand(g, &f))
	return cmd
}

type clusterBackupOptions struct {
	fors, writers  []string
	backupType     string
	persistent     bool
	leaseTTL       time.Duration
	prepareTimeout time.Duration
	barrierTimeout time.Duration
	timeout        time.Duration
	bcd            string
	command        []string
}

func newClusterBackupCommand(g *globalOptions, f *clusterFlags) *cobra.Command {
	var o clusterBackupOptions
	cmd := &cobra.Command{
		Use:   "backup --for HOST:PATH... [--writer HOST:NAME]... [flags] [-- COMMAND [ARGS...]]",
		Short: "Take one application-consistent snapshot set across hosts",
		Long: `Take one snapshot set across hosts: every host's writers are frozen at
once, so the snapshots of all hosts hold one consistent point of an
application spread over them. Any host's failure, a host missing a
barrier's deadline, a lost etcd lease or this command's own end aborts the
set on every host: nothing stays frozen, and no host keeps a snapshot of
it.

What is snapshotted:
  --for HOST:PATH     a path to snapshot on HOST (repeat; every host of the
                      set needs at least one --for or --writer)
  --writer HOST:NAME  a writer of HOST that must take part (repeat); NAME is
                      its name, instance name or class ID. Without any for a
                      host, every writer subscribed there takes part.

The set:
  --type TYPE         copy (default), full, incremental, differential or log
  --persistent        keep the snapshots after the command (default: each
                      host deletes its snapshots when the set ends)
  --lease-ttl D       if this command dies, the hosts abort this long after
                      (default 10s)
  --prepare-timeout D how long a host waits for every host to be prepared
                      (gathering and preparing writers; default 5m)
  --barrier-timeout D how long a host waits for every host's writers to be
                      frozen, and for every host's snapshots (default 30s);
                      keep it below the writers' freeze windows
  --timeout D         bound for the whole creation (default 10m)
  --bcd FILE          write the cluster set's backup archive to FILE: every
                      host's documents (its Backup Components Document, its
                      writers' metadata, a manifest), each host's part as
                      lvss backup --bcd would write it there; written once
                      every host has its snapshots and again at the end.
                      lvss backup show FILE prints it; lvss restore --bcd
                      FILE --host HOST restores one host's part, on HOST

COMMAND runs on this machine once per host, in host name order, after every
host has its snapshots and has thawed, with:
  LVSS_HOST                   the host
  LVSS_SNAPSHOT_SET_ID        the cluster set's ID (every host's snapshots
                              carry it)
  LVSS_SNAPSHOT_COUNT         how many snapshots the host has
  LVSS_SNAPSHOT_<n>_ORIGINAL  the n-th snapshotted path on the host
  LVSS_SNAPSHOT_<n>_PATH      where its content is, on the host
  LVSS_BACKUP_TYPE            the --type
The paths are the host's: COMMAND reaches them there (ssh, or a backup
tool's agent on the host). Its exit status decides what that host's
writers are told (BackupComplete).

Exit status: 0 success; 1 the set was aborted (the message says by which
host, where and why); 2 bad command line; 69 etcd unreachable; COMMAND's
own status when it failed (2 becomes 1); 130 interrupted (the set is
aborted everywhere).`,
		Example: `  # The two database hosts and the application host's writer, at one point;
  # each host's snapshot backed up from that host by restic.
  lvss cluster backup --etcd https://etcd1:2379 --cacert ca.pem \
    --for db1:/srv/pg --for db2:/srv/pg --writer app1:transfers --persistent \
    --bcd /backup/shop.cluster.tar \
    -- sh -c 'ssh "$LVSS_HOST" restic backup "$LVSS_SNAPSHOT_1_PATH"'
  lvss backup show /backup/shop.cluster.tar`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n := cmd.ArgsLenAtDash(); n != 0 && len(args) > 0 {
				return clierr.UsageError{Err: fmt.Errorf("unexpected argument %q: the backup command goes after --", args[0])}
			}
			o.command = args
			return runClusterBackup(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), g, f, o)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&o.fors, "for", nil, "HOST:PATH to snapshot (repeat)")
	fl.StringArrayVar(&o.writers, "writer", nil, "HOST:NAME, a writer that must take part (repeat)")
	fl.StringVar(&o.backupType, "type", "copy", "copy, full, incremental, differential or log")
	fl.BoolVar(&o.persistent, "persistent", false, "keep the snapshots after the command")
	fl.DurationVar(&o.leaseTTL, "lease-ttl", 10*time.Second, "the hosts abort this long after this command dies")
	fl.DurationVar(&o.prepareTimeout, "prepare-timeout", 5*time.Minute, "how long hosts wait for every host to be prepared")
	fl.DurationVar(&o.barrierTimeout, "barrier-timeout", 30*time.Second, "how long hosts wait at the freeze and commit barriers")
	fl.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound for the whole creation")
	fl.StringVar(&o.bcd, "bcd", "", "write every host's documents to FILE, a cluster backup archive (see lvss backup show)")
	return cmd
}

// hostJobs reads --for and --writer into each host's part.
func hostJobs(fors, writers []string) (map[string]cluster.HostJob, error) {
	hosts := map[string]cluster.HostJob{}
	split := func(flag, v string) (string, string, error) {
		h, rest, ok := strings.Cut(v, ":")
		if !ok || h == "" || rest == "" {
			return "", "", clierr.UsageError{Err: fmt.Errorf("%s %q: want HOST:%s", flag, v, map[string]string{"--for": "PATH", "--writer": "NAME"}[flag])}
		}
		if err := cluster.CheckHost(h); err != nil {
			return "", "", clierr.UsageError{Err: fmt.Errorf("%s %q: %w", flag, v, err)}
		}
		return h, rest, nil
	}
	for _, v := range fors {
		h, p, err := split("--for", v)
		if err != nil {
			return nil, err
		}
		if !filepath.IsAbs(p) {
			return nil, clierr.UsageError{Err: fmt.Errorf("--for %q: the path must be absolute (it is a path on %s)", v, h)}
		}
		j := hosts[h]
		j.Paths = append(j.Paths, filepath.Clean(p))
		hosts[h] = j
	}
	for _, v := range writers {
		h, n, err := split("--writer", v)
		if err != nil {
			return nil, err
		}
		j := hosts[h]
		j.Writers = append(j.Writers, n)
		hosts[h] = j
	}
	if len(hosts) == 0 {
		return nil, clierr.UsageError{Err: errors.New("a cluster set needs --for HOST:PATH or --writer HOST:NAME (see lvss cluster backup --help)")}
	}
	return hosts, nil
}

func runClusterBackup(ctx context.Context, stdout, stderr io.Writer, g *globalOptions, f *clusterFlags, o clusterBackupOptions) error {
	hosts, err := hostJobs(o.fors, o.writers)
	if err != nil {
		return err
	}
	bt, ok := backupTypes[strings.ToLower(o.backupType)]
	if !ok {
		return clierr.UsageError{Err: fmt.Errorf("--type %q: say copy, full, incremental, differential or log", o.backupType)}
	}
	for name, d := range map[string]time.Duration{"--lease-ttl": o.leaseTTL, "--prepare-timeout": o.prepareTimeout,
		"--barrier-timeout": o.barrierTimeout, "--timeout": o.timeout} {
		if d <= 0 {
			return clierr.UsageError{Err: fmt.Errorf("%s %s: must be positive", name, d)}
		}
	}
	if o.leaseTTL < 2*time.Second {
		return clierr.UsageError{Err: fmt.Errorf("--lease-ttl %s: at least 2s (etcd's leases count in seconds)", o.leaseTTL)}
	}
	cli, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	requester := requesterName()
	bo := cluster.BackupOptions{Hosts: hosts, Type: bt.String(), Persistent: o.persistent, Requester: requester,
		LeaseTTL: o.leaseTTL, Prepare: o.prepareTimeout, Barrier: o.barrierTimeout, Timeout: o.timeout, CompleteTimeout: 2 * time.Minute,
		Progress: func(h string, p cluster.Point) { fmt.Fprintf(stderr, "%s: %s\n", h, p) },
		Command:  o.command, Archives: o.bcd != ""}
	var warnings []string
	if o.bcd != "" {
		bo.Archived = func(stage backupdoc.Stage, res *cluster.Result) {
			if err := writeClusterArchive(o.bcd, stage, bt, requester, res); err != nil {
				warnings = append(warnings, fmt.Sprintf("--bcd %s: %v", o.bcd, err))
			}
		}
	}
	var statuses = map[string]*commandResult{}
	run := func(ctx context.Context, id uuid.UUID, host string, part *cluster.Part) (*int, error) {
		if len(o.command) == 0 {
			return nil, nil
		}
		env := append(os.Environ(), "LVSS_HOST="+host, "LVSS_BACKUP_TYPE="+strings.ToLower(o.backupType))
		env = append(env, clusterSnapshotEnv(id, part)...)
		res, err := runTool(ctx, o.command, env, g.json, false, nil)
		statuses[host] = res
		return &res.status, err
	}
	res, err := cluster.Backup(ctx, cli, f.keys, bo, run)
	if err != nil {
		return err
	}
	if err := printClusterBackup(stdout, g.json, res, statuses, append(res.Warnings, warnings...)); err != nil {
		return err
	}
	for _, h := range slices.Sorted(maps.Keys(res.CommandErrs)) {
		return res.CommandErrs[h] // the first host's, in name order: its status is lvss's
	}
	return nil
}

// writeClusterArchive writes --bcd FILE at stage: every host's archive as
// it published it, side by side.
func writeClusterArchive(path string, stage backupdoc.Stage, bt vss.BackupType, requester string, res *cluster.Result) error {
	hosts := make(map[string][]byte, len(res.Hosts))
	for h, p := range res.Hosts {
		hosts[h] = p.Archive
	}
	m := backupdoc.ClusterManifest{Stage: stage, LvssVersion: lvssVersion(), Requester: requester, Time: time.Now().UTC(),
		SnapshotSetID: res.ID, BackupType: bt}
	return backupdoc.WriteClusterFile(path, m, hosts)
}

// clusterSnapshotEnv is lvss backup's snapshot environment for one host's
// part.
func clusterSnapshotEnv(id uuid.UUID, p *cluster.Part) []string {
	env := []string{"LVSS_SNAPSHOT_SET_ID=" + guidText(id), fmt.Sprintf("LVSS_SNAPSHOT_COUNT=%d", len(p.Snapshots))}
	for i, s := range p.Snapshots {
		env = append(env, fmt.Sprintf("LVSS_SNAPSHOT_%d_ORIGINAL=%s", i+1, s.Original), fmt.Sprintf("LVSS_SNAPSHOT_%d_PATH=%s", i+1, s.Path))
	}
	return env
}

func requesterName() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s[%d]", name, host, os.Getpid())
}

// printClusterBackup prints the set: per host, its snapshots and their
// consistency; the set is application-consistent only if every host's
// part is.
func printClusterBackup(w io.Writer, asJSON bool, res *cluster.Result, statuses map[string]*commandResult, warnings []string) error {
	hosts := slices.Sorted(maps.Keys(res.Hosts))
	if asJSON {
		type snap struct {
			ID          string `json:"id"`
			Original    string `json:"original"`
			Path        string `json:"path"`
			Consistency string `json:"consistency"`
		}
		type host struct {
			Consistency string `json:"consistency"`
			Snapshots   []snap `json:"snapshots"`
			Command     *int   `json:"command_exit_status"`
		}
		out := struct {
			SetID       string          `json:"snapshot_set_id"`
			Consistency string          `json:"consistency"`
			Hosts       map[string]host `json:"hosts"`
			Warnings    []string        `json:"warnings"`
		}{SetID: guidText(res.ID), Consistency: res.Record.Consistency(), Hosts: map[string]host{}, Warnings: nonNil(warnings)}
		for _, h := range hosts {
			p := res.Hosts[h]
			hr := host{Consistency: p.Consistency, Snapshots: []snap{}}
			for _, s := range p.Snapshots {
				hr.Snapshots = append(hr.Snapshots, snap{ID: guidText(s.ID), Original: s.Original, Path: s.Path, Consistency: s.Consistency})
			}
			if c := statuses[h]; c != nil {
				st := c.status
				hr.Command = &st
			}
			out.Hosts[h] = hr
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(w, "Cluster snapshot set %s: %s\n", guidText(res.ID), res.Record.Consistency())
	for _, h := range hosts {
		p := res.Hosts[h]
		fmt.Fprintf(w, "  %s: %s\n", h, p.Consistency)
		for _, s := range p.Snapshots {
			fmt.Fprintf(w, "    %s  %s  at %s\n", guidText(s.ID), s.Original, s.Path)
		}
		if c := statuses[h]; c != nil && c.status != 0 {
			fmt.Fprintf(w, "    COMMAND exited with %d\n", c.status)
		}
	}
	for _, wr := range warnings {
		fmt.Fprintf(w, "Warning: %s\n", wr)
	}
	return nil
}

func newClusterStatusCommand(g *globalOptions, f *clusterFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "List the hosts registered in etcd and their writers",
		Long: `List the hosts whose lvssd is registered in etcd (a host's registration
lives while its lvssd reaches etcd), with each host's lvss version and
subscribed writers.`,
		Example: `  lvss cluster status --etcd https://etcd1:2379 --cacert ca.pem --cert me.pem --key me-key.pem`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cli, err := f.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cli.Close()
			octx, cancel := cluster.Op(cmd.Context())
			defer cancel()
			resp, err := cli.Get(octx, f.keys.HostsPrefix(), clientv3.WithPrefix())
			if err != nil {
				return cluster.EtcdError(err, "read the hosts")
			}
			var hosts []cluster.HostInfo
			for _, kv := range resp.Kvs {
				var h cluster.HostInfo
				if err := cluster.Decode(string(kv.Key), kv.Value, &h); err != nil {
					return err
				}
				hosts = append(hosts, h)
			}
			return printClusterStatus(cmd.OutOrStdout(), g.json, hosts)
		},
	}
}

func printClusterStatus(w io.Writer, asJSON bool, hosts []cluster.HostInfo) error {
	if asJSON {
		if hosts == nil {
			hosts = []cluster.HostInfo{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Hosts []cluster.HostInfo `json:"hosts"`
		}{hosts})
	}
	if len(hosts) == 0 {
		fmt.Fprintln(w, "No host is registered.")
		return nil
	}
	for _, h := range hosts {
		fmt.Fprintf(w, "%s (lvss %s): %d writer(s)\n", h.Host, h.Version, len(h.Writers))
		for _, wr := range h.Writers {
			name := wr.Name
			if wr.Instance != "" {
				name += " (" + wr.Instance + ")"
			}
			fmt.Fprintf(w, "  %s\n", name)
		}
	}
	return nil
}

func newClusterListCommand(g *globalOptions, f *clusterFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the cluster sets etcd holds: kept, aborted, running, being deleted",
		Long: `List the cluster snapshot sets etcd holds, with each host's snapshots and
consistency. A set is application-consistent only if every host's part
is. States: running (its lvss cluster backup is at work), kept (made with
--persistent), aborted (with who aborted it, where and why; hosts that were
away delete their parts when they come back), deleting (lvss cluster
delete asked the hosts; some have not answered yet).`,
		Example: `  lvss cluster list --etcd https://etcd1:2379
  lvss cluster list --json | jq '.sets[] | select(.state == "kept") | .id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cli, err := f.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cli.Close()
			sets, err := cluster.ListSets(cmd.Context(), cli, f.keys)
			if err != nil {
				return err
			}
			return printClusterSets(cmd.OutOrStdout(), g.json, sets)
		},
	}
}

func printClusterSets(w io.Writer, asJSON bool, sets []cluster.SetSummary) error {
	if asJSON {
		type host struct {
			Consistency string             `json:"consistency,omitempty"`
			Snapshots   []cluster.Snapshot `json:"snapshots"`
		}
		type set struct {
			ID          string          `json:"id"`
			State       string          `json:"state"`
			Consistency string          `json:"consistency,omitempty"`
			Created     *time.Time      `json:"created,omitempty"`
			Hosts       map[string]host `json:"hosts"`
			Abort       *cluster.Abort  `json:"abort,omitempty"`
			Deleted     []string        `json:"deleted,omitempty"`
		}
		out := struct {
			Sets []set `json:"sets"`
		}{Sets: []set{}}
		for _, s := range sets {
			js := set{ID: guidText(s.ID), State: string(s.State), Hosts: map[string]host{}, Abort: s.Abort, Deleted: s.Deleted}
			for _, h := range s.Hosts() {
				js.Hosts[h] = host{Snapshots: []cluster.Snapshot{}}
			}
			if s.Record != nil {
				js.Consistency = s.Record.Consistency()
				created := s.Record.Created
				js.Created = &created
				for h, p := range s.Record.Hosts {
					js.Hosts[h] = host{Consistency: p.Consistency, Snapshots: p.Snapshots}
				}
			}
			out.Sets = append(out.Sets, js)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(sets) == 0 {
		fmt.Fprintln(w, "No cluster set.")
		return nil
	}
	for _, s := range sets {
		line := fmt.Sprintf("%s  %s", guidText(s.ID), s.State)
		if s.Record != nil {
			line += fmt.Sprintf("  %s  %s", s.Record.Consistency(), s.Record.Created.Local().Format(time.DateTime))
		}
		fmt.Fprintf(w, "%s  hosts: %s\n", line, strings.Join(s.Hosts(), ", "))
		if s.Abort != nil {
			fmt.Fprintf(w, "  aborted by %s at %s: %s\n", s.Abort.By, s.Abort.Point, s.Abort.Err())
		}
		if s.Record != nil {
			for _, h := range slices.Sorted(maps.Keys(s.Record.Hosts)) {
				p := s.Record.Hosts[h]
				for _, sn := range p.Snapshots {
					fmt.Fprintf(w, "  %s: %s  %s  at %s  %s\n", h, guidText(sn.ID), sn.Original, sn.Path, sn.Consistency)
				}
			}
		}
		if s.State == cluster.SetDeleting {
			fmt.Fprintf(w, "  deleted on: %s\n", strings.Join(s.Deleted, ", "))
		}
	}
	return nil
}

func newClusterDeleteCommand(g *globalOptions, f *clusterFlags) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "delete SET",
		Short: "Delete a cluster set's snapshots on every host",
		Long: `Ask every host of a kept or aborted cluster set to delete its part, and
wait (--wait, default 1m) until all have. A host that does not answer in
time (its lvssd is down, or cannot reach etcd) deletes its part when it
comes back; the command then exits 1 naming it, and the set shows as
deleting in lvss cluster list until it has. A set still being made is
refused: interrupt its lvss cluster backup instead.`,
		Example: `  lvss cluster delete 1cc34a8b-dd00-4883-8157-f84f5affec95 --etcd https://etcd1:2379`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("cluster set ID", args[0])
			if err != nil {
				return err
			}
			if wait <= 0 {
				return clierr.UsageError{Err: fmt.Errorf("--wait %s: must be positive", wait)}
			}
			cli, err := f.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer cli.Close()
			d, err := cluster.RequestDelete(cmd.Context(), cli, f.keys, id, requesterName())
			if err != nil {
				return err
			}
			left, err := cluster.WaitDeleted(cmd.Context(), cli, f.keys, id, d, wait)
			if err != nil {
				return err
			}
			if g.json {
				enc := json.NewEncoder(cmd.OutOrStdout())
				return enc.Encode(struct {
					ID      string   `json:"id"`
					Hosts   []string `json:"hosts"`
					Pending []string `json:"pending"`
				}{guidText(id), d.Hosts, append([]string{}, left...)})
			}
			if len(left) > 0 {
				return &cluster.Hinted{Err: vsserr.New(vsserr.Unexpected, "cluster set %s: host(s) %s have not deleted their part within %s",
					guidText(id), strings.Join(left, ", "), wait),
					Text: "they will when their lvssd reaches etcd again; lvss cluster list shows the set as deleting until then"}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted cluster set %s on %s\n", guidText(id), strings.Join(d.Hosts, ", "))
			return nil
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for every host to delete its part")
	return cmd
}
