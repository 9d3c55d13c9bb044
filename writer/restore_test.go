package writer_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
)

// restorer is a scripted writer with restore handlers.
type restorer struct {
	scripted
	pre, post func(context.Context, *writer.Event, *writer.Components) error
}

func (r *restorer) PreRestore(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	return r.pre(ctx, ev, c)
}

func (r *restorer) PostRestore(ctx context.Context, ev *writer.Event, c *writer.Components) error {
	return r.post(ctx, ev, c)
}

// TestRestoreEdits: a writer sets the restore target and restore metadata
// in PreRestore, and they reach the requester; in PostRestore only its
// failure message may change, and any other edit fails the event naming
// the field (vss-reference §3.8).
func TestRestoreEdits(t *testing.T) {
	var seen vss.RestoreType
	w := &restorer{
		pre: func(_ context.Context, ev *writer.Event, c *writer.Components) error {
			seen = ev.RestoreType
			comp := c.Get("", "c")
			comp.RestoreTarget = vss.RTAlternate
			md := "lsn=42"
			comp.RestoreMetadata = &md
			return nil
		},
		post: func(_ context.Context, _ *writer.Event, c *writer.Components) error {
			comp := c.Get("", "c")
			comp.PostRestoreFailureMsg = "checked"
			if comp.FileRestoreStatus == vss.RSFailed {
				comp.RestoreTarget = vss.RTOriginal // too late
			}
			return nil
		},
	}
	co := start(t, w)
	session := uuid.New()
	ev := event(v1.EventType_EVENT_PRE_RESTORE, session)
	ev.RestoreType = int32(vss.RestoreByCopy)
	ev.BcdXml = bcdFor(t, co)
	res := send(t, co, ev)
	wantCode(t, res, vsserr.OK, "")
	if seen != vss.RestoreByCopy {
		t.Errorf("the handler saw restore type %s", seen)
	}
	got, err := document.ParseBackupComponents([]byte(res.GetBcdXml()))
	if err != nil {
		t.Fatal(err)
	}
	c := got.Writer(co.Writer(0).InstanceID).Component("", "c")
	if c.RestoreTarget != vss.RTAlternate || c.RestoreMetadata == nil || *c.RestoreMetadata != "lsn=42" {
		t.Fatalf("PreRestore edits not sent back: %+v", c)
	}

	for _, st := range []vss.FileRestoreStatus{vss.RSAll, vss.RSFailed} {
		c.FileRestoreStatus = st
		x, err := got.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		ev := event(v1.EventType_EVENT_POST_RESTORE, session)
		ev.BcdXml = string(x)
		res := send(t, co, ev)
		if st == vss.RSAll {
			wantCode(t, res, vsserr.OK, "")
			back, err := document.ParseBackupComponents([]byte(res.GetBcdXml()))
			if err != nil {
				t.Fatal(err)
			}
			if m := back.Writer(co.Writer(0).InstanceID).Component("", "c").PostRestoreFailureMsg; m != "checked" {
				t.Errorf("PostRestore failure message not sent back: %q", m)
			}
			continue
		}
		wantCode(t, res, vsserr.WriterErrorNonRetryable, "restoreTarget")
	}
}
