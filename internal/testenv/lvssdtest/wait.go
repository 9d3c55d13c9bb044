package lvssdtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lvss/lvss/client"
)

// pollInterval is how often Eventually looks at its condition: short
// enough not to slow tests down, long enough not to load the machine.
const pollInterval = 20 * time.Millisecond

// Eventually waits until cond holds, failing t with what it waited for if
// it does not within d. d is a bound for a broken run, not a pace: pick it
// generously (a loaded CI machine is slow), since a passing run returns as
// soon as cond holds.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(pollInterval)
	}
}

// WaitWriters waits until lvssd at socket lists n writers, each with the
// metadata of an answered Identify.
func WaitWriters(t testing.TB, socket string, n int) {
	t.Helper()
	ctx := context.Background()
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	Eventually(t, 15*time.Second, fmt.Sprintf("%d writers", n), func() bool {
		ws, err := conn.ListWriters(ctx)
		if err != nil || len(ws) != n {
			return false
		}
		for _, w := range ws {
			if w.WMD == "" {
				return false
			}
		}
		return true
	})
}

// Events returns lvssd's event log (every entry) at socket.
func Events(t testing.TB, socket string) []client.LogEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	evs, err := conn.ListEvents(ctx, 0, 0)
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	return evs
}
