package config

import "github.com/lvss/lvss/provider/confval"

// Size is a byte count written as a string such as "1GiB". It is
// confval.Size, the type the provider sections use too, under the name
// this package's own sections have always used.
type Size = confval.Size
