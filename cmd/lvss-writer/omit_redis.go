//go:build lvss_noredis

package main

func init() { omittedWriters = append(omittedWriters, "redis") }
