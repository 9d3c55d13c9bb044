// Package config reads lvssd's configuration file (default
// /etc/lvss/lvssd.toml).
//
// The file only overrides: Default holds every value lvssd runs with when a
// key is absent, and those defaults are VSS's own timeouts (vss-reference §3.5). A
// daemon that freezes applications must not guess what an operator meant,
// so the file is read strictly: an unknown key, a value of the wrong type or
// a value out of range stops lvssd with an error that names the file, line,
// column and key, for example
//
//	/etc/lvss/lvssd.toml:4:1: unknown key "timeouts.frezee"
//
// Reading happens in three steps. A walk over the syntax tree checks every
// key and value kind against the Go types (so adding a section is adding a
// struct field with a toml tag) and remembers where each key is. go-toml
// then decodes onto the defaults; values are range-checked by their types'
// UnmarshalText. Last, Validate checks the rules that involve more than one
// value, and uses the remembered positions to point at the offending line.
//
// Each provider's section ([providers.btrfs], [[providers.exec]],
// [providers.copy]) is a type of the provider's own package, with the
// rules about its own values (btrfs.Config and its Validate, and so on),
// so that a provider never depends on the daemon's configuration. This
// package holds them in Providers, checks the rules between sections
// (provider names; it hands timeouts.hold to exec's Validate), and turns
// the keys a section's error names (confval.KeyError) into
// file:line:column.
package config
