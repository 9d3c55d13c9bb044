//go:build lvss_nomysql

package main

func init() { omittedWriters = append(omittedWriters, "mysql") }
