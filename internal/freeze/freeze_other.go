//go:build !linux

package freeze

import (
	"context"
	"log/slog"
	"time"

	"github.com/lvss/lvss/vsserr"
)

// Guard is a freeze guard; there is none outside Linux.
type Guard struct{}

func notSupported() error {
	return vsserr.New(vsserr.NotSupported, "filesystem freeze (FIFREEZE) is only available on Linux")
}

// GuardMain fails: there is nothing to guard.
func GuardMain(args []string) int { return 2 }

// Start fails outside Linux.
func Start(ctx context.Context, opt Options) (*Guard, error) { return nil, notSupported() }

// Recover has nothing to do outside Linux: nothing can have been frozen.
func Recover(runDir string, log *slog.Logger) ([]string, error) { return nil, nil }

// Held has nothing to list outside Linux: nothing can be frozen.
func Held(runDir string) ([]HeldFS, error) { return nil, nil }

// Pid is 0.
func (g *Guard) Pid() int { return 0 }

// Done is closed.
func (g *Guard) Done() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// Stats is empty.
func (g *Guard) Stats() Stats { return Stats{} }

// Freeze fails outside Linux.
func (g *Guard) Freeze(ctx context.Context, paths []string) error { return notSupported() }

// Thaw has nothing to thaw.
func (g *Guard) Thaw() (time.Duration, error) { return 0, nil }

// Close has nothing to close.
func (g *Guard) Close() error { return nil }
