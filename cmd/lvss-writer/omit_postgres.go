//go:build lvss_nopostgres

package main

func init() { omittedWriters = append(omittedWriters, "postgres") }
