package config

// Debug configures lvssd's profiling endpoint (Go's net/http/pprof under
// /debug/pprof/; docs/operations.md, "Profiling lvssd"). It is off unless
// Listen is set, and meant to be turned on for a while to find where time
// or memory goes: profiles name every function and goroutine of lvssd.
type Debug struct {
	// Listen is "host:port" (keep it on a loopback address) or
	// "unix:PATH", as metrics.listen. A Unix socket is made mode 0600:
	// only lvssd's user (root) may connect.
	Listen string `toml:"listen"`
}

// Address is as Metrics.Address.
func (d Debug) Address() (network, address string) { return Metrics{Listen: d.Listen}.Address() }

func checkDebug(d Debug, doc *document) error {
	const key = "debug.listen"
	if d.Listen != "" {
		if err := checkListen(d.Listen); err != nil {
			return doc.errorAt([]string{key}, "%s: %s", key, err)
		}
	}
	return nil
}
