package testenv

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStartRedis: the server answers on its socket and its TCP port, keeps
// its files in the given dir, and is gone (port closed) after Stop; a
// second server on a copy of the dir is independent of the first.
func TestStartRedis(t *testing.T) {
	dir := t.TempDir()
	r := StartRedis(t, RedisOptions{Dir: dir, AOF: true})
	if err := redisPing(r.Socket); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", r.Addr, time.Second)
	if err != nil {
		t.Fatalf("TCP %s: %v", r.Addr, err)
	}
	c.Close()
	if _, err := os.Stat(filepath.Join(dir, "appendonlydir")); err != nil {
		t.Fatalf("AOF directory not in the data dir: %v", err)
	}
	if _, err := os.Stat(r.Log); err != nil {
		t.Fatalf("log: %v", err)
	}
	if filepath.Dir(r.Log) == dir {
		t.Fatal("the log is in the data dir")
	}

	second := StartRedis(t, RedisOptions{AOF: false})
	if second.Addr == r.Addr || second.Socket == r.Socket {
		t.Fatalf("two servers share an address: %s %s", r.Addr, second.Addr)
	}

	r.Stop()
	r.Stop() // idempotent
	if c, err := net.DialTimeout("tcp", r.Addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the stopped server still accepts connections")
	}
	if err := redisPing(second.Socket); err != nil {
		t.Fatalf("stopping one server affected the other: %v", err)
	}
}
