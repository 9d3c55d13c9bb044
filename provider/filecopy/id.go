package filecopy

import "github.com/google/uuid"

// ID is the copy provider's provider ID. It never changes, so that
// snapshots in the catalog find their provider again after an upgrade.
var ID = uuid.MustParse("f97fc3a7-5f97-4f6f-b029-e3c646c71d84")

// Name is the provider's name in configuration (providers.order) and output.
const Name = "copy"

// DefaultMaxBytes applies when Config.MaxBytes is zero, which is what a
// Config built in code (not from lvssd's config.Default) holds.
const DefaultMaxBytes = 1 << 30
