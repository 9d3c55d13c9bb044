package lvssdtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/writer"
)

// RunWriter runs w under id with the writer SDK (writer.Run) in the test
// process, subscribed to lvssd at socket, until the test ends. It returns
// once lvssd lists the writer with the metadata of its first Identify, so
// that a backup or `lvss list writers` that follows sees it whole.
// Cleanup ends Run and waits for it.
func RunWriter(t testing.TB, socket string, id writer.Identity, w writer.Writer) {
	t.Helper()
	runWriter(t, socket, id, w, true)
}

// SubscribeWriter is RunWriter for a writer whose first Identify may fail
// (or not be answered): it returns once lvssd lists the writer, with or
// without metadata.
func SubscribeWriter(t testing.TB, socket string, id writer.Identity, w writer.Writer) {
	t.Helper()
	runWriter(t, socket, id, w, false)
}

func runWriter(t testing.TB, socket string, id writer.Identity, w writer.Writer, withMetadata bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- writer.Run(ctx, writer.Options{Socket: socket}, id, w) }()
	ended := false
	var runErr error
	t.Cleanup(func() {
		cancel()
		if !ended {
			<-done
		}
	})
	conn, err := client.Dial(ctx, socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	what := fmt.Sprintf("lvssd to list writer %q", id.Name)
	if withMetadata {
		what += " with its metadata"
	}
	Eventually(t, 15*time.Second, what, func() bool {
		select {
		case runErr = <-done:
			ended = true
			t.Fatalf("writer %q: Run ended before it was listed: %v", id.Name, runErr)
		default:
		}
		ws, err := conn.ListWriters(ctx)
		if err != nil {
			return false
		}
		for _, l := range ws {
			if l.WriterID == id.ClassID && l.Name == id.Name && l.InstanceName == id.InstanceName {
				return !withMetadata || l.WMD != ""
			}
		}
		return false
	})
}

// RunWriter runs an in-process SDK writer subscribed to the daemon (see
// the function RunWriter).
func (s *InProcess) RunWriter(t testing.TB, id writer.Identity, w writer.Writer) {
	t.Helper()
	RunWriter(t, s.Socket, id, w)
}
