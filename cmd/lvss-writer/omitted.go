package main

import (
	"github.com/spf13/cobra"

	"github.com/lvss/lvss/vsserr"
)

// omittedWriters are the writers this build left out with a build tag
// lvss_no<name> (lvss_nosqlite, lvss_nomysql, lvss_noredis,
// lvss_nopostgres); each tagged file adds its name. A build that needs one
// writer compiles in a fraction of the time: the SQLite and Redis client
// libraries alone take most of a cold build (scripts/demo builds the
// postgres writer only).
var omittedWriters []string

// omittedError is running a writer this build left out.
type omittedError struct {
	err  error
	name string
}

func (e omittedError) Error() string { return e.err.Error() }
func (e omittedError) Unwrap() error { return e.err }

func (e omittedError) Hint() string {
	return "build lvss-writer without -tags lvss_no" + e.name + " ('make build' builds every writer)"
}

// newOmittedCommand stands in for a writer left out of the build, so that
// asking for it says so instead of "unknown command".
func newOmittedCommand(name string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              "(left out of this build)",
		Hidden:             true,
		DisableFlagParsing: true, // the real writer's flags are unknown here
		RunE: func(*cobra.Command, []string) error {
			return omittedError{vsserr.New(vsserr.NotSupported,
				"this lvss-writer was built without the %s writer (build tag lvss_no%s)", name, name), name}
		},
	}
}
