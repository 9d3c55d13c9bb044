package clierr

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// UsageError marks a wrong command line. Both tools give it exit status 2
// and nothing else does, so that a script can tell "you called me wrong"
// from "the work failed".
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef is a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return UsageError{Err: fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is, or wraps, a UsageError.
func IsUsage(err error) bool {
	var u UsageError
	return errors.As(err, &u)
}

// MarkUsage makes cobra's own command-line errors under root UsageErrors:
// bad flags (through root's flag error function, which subcommands
// inherit) and wrong argument counts (each command's Args, wrapped). Call
// it once the command tree is complete.
func MarkUsage(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError{Err: err} })
	markArgs(root)
}

func markArgs(c *cobra.Command) {
	if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return UsageError{Err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markArgs(sub)
	}
}
