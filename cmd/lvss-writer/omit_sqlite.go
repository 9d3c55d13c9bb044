//go:build lvss_nosqlite

package main

func init() { omittedWriters = append(omittedWriters, "sqlite") }
