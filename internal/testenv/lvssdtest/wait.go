package lvssdtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/internal/testenv"
)

// Eventually is testenv.Eventually, here so that the harness's users need
// one import: it waits until cond holds, failing t with what it waited
// for if it does not within d (a bound for a broken run, not a pace).
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, d, what, cond)
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
