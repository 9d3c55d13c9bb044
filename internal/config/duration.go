package config

import "github.com/lvss/lvss/provider/confval"

// Duration is a timeout written in the file as a Go duration string such as
// "10s" or "1m30s"; always > 0 and <= 24h. It is confval.Duration, the type
// the provider sections use too, under the name this package's own
// sections have always used.
type Duration = confval.Duration
