package main

import (
	"github.com/lvss/lvss/internal/config"
	"github.com/lvss/lvss/provider"
)

// builtinProviders lists the providers lvssd offers, in preference order.
// The real Linux providers (btrfs, exec, copy) arrive with their own issue;
// until then lvssd has none, and snapshot sets can hold no volume
// (AddToSnapshotSet answers VSS_E_VOLUME_NOT_SUPPORTED).
func builtinProviders(config.Config) []provider.Provider { return nil }
