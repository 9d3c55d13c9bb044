//go:build !linux

package filecopy

import (
	"errors"
	"log/slog"

	"github.com/lvss/lvss/provider/confval"
)

// Provider is the copy provider; it exists only on Linux.
type Provider struct{}

// New reports that the copy provider needs Linux: it walks trees with
// openat/fstatat, clones with FICLONE and exposes with bind mounts.
func New(Config, confval.Size, string, *slog.Logger) (*Provider, error) {
	return nil, errors.New("the copy provider is available on Linux only")
}
