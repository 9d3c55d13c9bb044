//go:build !lvss_cluster

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lvss/lvss/vsserr"
)

// 'lvss cluster' runs lvss-cluster, the same lvss built with the
// lvss_cluster tag (cluster.go), in place of this process (L69). etcd's
// client and the protobuf packages it brings are a fifth of lvss's binary,
// and their start-up work (registering descriptors) cost every lvss
// command, 'lvss create shadow' included, about 1.7 ms of CPU before it
// did anything: CPU taken from the applications on the volumes it
// snapshots. The cluster verbs, which wait on etcd anyway, pay it alone.

// libexecDir is where make install puts lvss-cluster; the Makefile sets
// it from PREFIX (-X main.libexecDir=...).
var libexecDir = "/usr/libexec/lvss"

const clusterHelper = "lvss-cluster"

func newClusterCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "cluster",
		Short: "Snapshot sets across hosts, coordinated through etcd",
		Long: `One application-consistent snapshot set across several hosts, held together
at barriers in etcd (docs/cluster.md). 'lvss cluster --help' shows its
verbs: backup, status, list and delete.`,
		Example: `  export LVSS_ETCD=https://etcd1:2379,https://etcd2:2379,https://etcd3:2379
  lvss cluster status
  lvss cluster backup --for db1:/srv/pg --for db2:/srv/pg -- true`,
		// Everything after 'cluster' is lvss-cluster's to parse, --help too.
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			path, err := findClusterHelper()
			if err != nil {
				return err
			}
			// Exec keeps the process (its PID, signals, exit status):
			// whoever started 'lvss cluster' sees lvss-cluster as it.
			err = syscall.Exec(path, append([]string{"lvss"}, g.argv...), os.Environ())
			return vsserr.New(vsserr.Unexpected, "lvss cluster: run %s: %v", path, err)
		},
	}
}

// clusterUnreachable: this build has no etcd client, so no etcd error.
func clusterUnreachable(error) bool { return false }

// findClusterHelper looks for lvss-cluster beside this lvss first (a
// build tree, the tests' binaries), then in libexecDir.
func findClusterHelper() (string, error) {
	var tried []string
	if exe, err := os.Executable(); err == nil {
		tried = append(tried, filepath.Join(filepath.Dir(exe), clusterHelper))
	}
	tried = append(tried, filepath.Join(libexecDir, clusterHelper))
	for _, p := range tried {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", missingHelper{tried}
}

// missingHelper is lvss-cluster not installed where lvss looks for it.
type missingHelper struct{ tried []string }

func (e missingHelper) Error() string {
	return vsserr.New(vsserr.NotSupported, "lvss cluster needs %s, which is not installed (looked for %s)",
		clusterHelper, strings.Join(e.tried, ", ")).Error()
}
func (e missingHelper) Unwrap() error { return vsserr.NotSupported }
func (e missingHelper) Hint() string {
	return fmt.Sprintf("install the whole lvss package (it puts %s in %s), or build it: make build", clusterHelper, libexecDir)
}
