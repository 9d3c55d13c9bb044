// Package confval holds the value types lvssd's configuration is written
// in, shared by the provider packages (each of which owns its own section
// of the file) and by internal/config (which composes the sections and
// reads the file).
//
//   - Duration: a timeout written as "30s"; always > 0 and <= 24h.
//   - Size: a byte count written as "1GiB".
//   - KeyError: a problem with a value, named by its key, so that the
//     reader of the file can point at the line that set it.
//
// It imports only the standard library, and must stay that way (the
// layering test in internal/layering holds it to that): every provider
// and the config reader depend on it, so anything it imported they would
// all link.
//
// It lives under provider/ rather than internal/ because the provider
// packages are importable from outside lvss and their Config types have
// fields of these types; an internal package would make those fields
// impossible to fill in from outside. It is not itself a provider.
package confval
