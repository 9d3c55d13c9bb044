//go:build !linux || !(amd64 || arm64 || riscv64 || loong64 || s390x)

package btrfs

import (
	"context"

	"github.com/lvss/lvss/provider"
)

// SetRevertStepHook is a no-op where the provider cannot be made.
func (p *Provider) SetRevertStepHook(func(string)) {}

// Revert implements provider.Reverter.
func (p *Provider) Revert(context.Context, provider.Snapshot, bool) error { return errUnsupported }

// RecoverReverts implements provider.Reverter.
func (p *Provider) RecoverReverts(context.Context) []provider.RevertOutcome { return nil }
