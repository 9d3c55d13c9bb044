package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// quietWriter answers every event with success and holds nothing.
type quietWriter struct{}

func (quietWriter) Identify(context.Context, *writer.Metadata) error { return nil }
func (quietWriter) Freeze(context.Context, *writer.Event) error      { return nil }
func (quietWriter) Thaw(context.Context, *writer.Event) error        { return nil }
func (quietWriter) Abort(context.Context, *writer.Event) error       { return nil }

// TestThousandWritersSubscribeDuringGathers: 1000 SDK writers subscribe to
// the real lvssd while requesters gather writer metadata back to back.
// Every one subscribes: its Welcome is always the first message it gets,
// even while Identify events go out to everybody (it used to be possible
// for an Identify to overtake the Welcome, which failed the subscription).
func TestThousandWritersSubscribeDuringGathers(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	d := startDaemon(t, shortTimeouts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	stop := make(chan struct{})
	gathers := make(chan error, 1)
	go func() {
		count := 0
		for {
			select {
			case <-stop:
				if count == 0 {
					gathers <- errors.New("no gather ran while the writers subscribed")
					return
				}
				gathers <- nil
				return
			default:
			}
			err := client.Run(ctx, d.socket, func(ctx context.Context, bc *client.BackupComponents) error {
				if err := bc.InitializeForBackup(ctx, ""); err != nil {
					return err
				}
				a, err := bc.GatherWriterMetadata(ctx)
				if err != nil {
					return err
				}
				return a.Wait(ctx)
			})
			if err != nil {
				gathers <- fmt.Errorf("gather %d: %w", count, err)
				return
			}
			count++
		}
	}()

	// Without Retry, Run returns at once if its subscription fails.
	runs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("w%04d", i)
			id := writer.Identity{ClassID: uuid.NewSHA1(uuid.NameSpaceOID, []byte(name)), Name: name, Level: vss.LevelFrontEnd}
			if err := writer.Run(ctx, writer.Options{Socket: d.socket}, id, quietWriter{}); err != nil && ctx.Err() == nil {
				runs <- fmt.Errorf("writer %s: %w", name, err)
			}
		}()
	}
	conn, err := client.Dial(ctx, d.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, 3*time.Minute, fmt.Sprintf("%d writers to be subscribed", n), func() bool {
		select {
		case err := <-runs:
			t.Fatal(err)
		default:
		}
		ws, err := conn.ListWriters(ctx)
		return err == nil && len(ws) == n
	})
	close(stop)
	if err := <-gathers; err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()
	close(runs)
	for err := range runs {
		if !errors.Is(err, context.Canceled) && vsserr.Code(err) != vsserr.OK {
			t.Error(err)
		}
	}
}
