// Command lvssd is the lvss coordinator: the daemon that requesters, writers
// and admin tools talk to over one Unix socket.
//
//	lvssd --socket PATH --state-dir DIR --run-dir DIR [--config FILE]
//
// Defaults: /run/lvss/lvssd.sock, /var/lib/lvss, /run/lvss. Any instance can
// run anywhere; tests run theirs in temporary directories.
//
// With [metrics] listen set in the config file, it also serves Prometheus
// metrics over TCP or a Unix socket (docs/metrics.md).
package main
