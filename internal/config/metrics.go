package config

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// Metrics configures lvssd's Prometheus endpoint (docs/metrics.md). It is
// off unless Listen is set: an endpoint nobody asked for is one more
// thing listening.
type Metrics struct {
	// Listen is where /metrics is served: "host:port" for TCP (such as
	// "127.0.0.1:9177"; port 0 picks a free one, which lvssd logs), or
	// "unix:PATH" for a Unix socket. Empty: no endpoint.
	Listen string `toml:"listen"`
	// SocketGroup, for a Unix socket only, is the group that owns the
	// socket (mode 0660), so that its members may scrape; a name or a
	// numeric gid. Empty: lvssd's own group, so only lvssd's user
	// (root) and that group may.
	SocketGroup string `toml:"socket_group"`
}

// unixPrefix marks a Unix socket in Metrics.Listen.
const unixPrefix = "unix:"

// maxSocketPath is the longest path a Unix socket address holds
// (sun_path is 108 bytes with its terminating NUL).
const maxSocketPath = 107

// Address splits Listen into a network ("tcp" or "unix") and an address
// for net.Listen; both are empty when metrics are off. Listen must have
// passed validation.
func (m Metrics) Address() (network, address string) {
	switch {
	case m.Listen == "":
		return "", ""
	case strings.HasPrefix(m.Listen, unixPrefix):
		return "unix", strings.TrimPrefix(m.Listen, unixPrefix)
	}
	return "tcp", m.Listen
}

// checkMetrics refuses a listen address net.Listen would refuse or read
// differently from what the operator meant, so that lvssd fails at the
// line that says it rather than when it binds.
func checkMetrics(m Metrics, doc *document) error {
	const key = "metrics.listen"
	if m.Listen != "" {
		if err := checkListen(m.Listen); err != nil {
			return doc.errorAt([]string{key}, "%s: %s", key, err)
		}
	}
	if m.SocketGroup != "" {
		const gkey = "metrics.socket_group"
		if network, _ := m.Address(); network != "unix" {
			return doc.errorAt([]string{gkey, key}, "%s applies only to a Unix socket (listen = \"unix:PATH\")", gkey)
		}
		if why := badName(m.SocketGroup, "group"); why != "" {
			return doc.errorAt([]string{gkey}, "%s: %s", gkey, why)
		}
	}
	return nil
}

func checkListen(listen string) error {
	if path, ok := strings.CutPrefix(listen, unixPrefix); ok {
		switch {
		case !filepath.IsAbs(path):
			return fmt.Errorf("%q: the socket path must be absolute, as in \"unix:/run/lvss/metrics.sock\"", listen)
		case filepath.Clean(path) != path:
			return fmt.Errorf("%q: write the socket path in its clean form, %q", listen, unixPrefix+filepath.Clean(path))
		case len(path) > maxSocketPath:
			return fmt.Errorf("%q: a Unix socket path holds at most %d bytes", listen, maxSocketPath)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		hint := ""
		if strings.HasPrefix(listen, "/") {
			hint = fmt.Sprintf("; for a Unix socket write %q", unixPrefix+listen)
		}
		return fmt.Errorf("%q is neither host:port (such as \"127.0.0.1:9177\") nor unix:PATH%s", listen, hint)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
		return fmt.Errorf("%q: the port must be a number from 0 to 65535", listen)
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == '/' || r == 0x7f }) {
		return fmt.Errorf("%q: %q is not a host name or IP address", listen, host)
	}
	return nil
}
