package redis

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
	"github.com/lvss/lvss/writer"
	"github.com/lvss/lvss/writer/writertest"
)

// truncateDataset cuts the RDB file and every AOF file in dir to half.
func truncateDataset(t *testing.T, dir string) {
	t.Helper()
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		return os.Truncate(path, fi.Size()/2)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// restoreEvent sends PreRestore or PostRestore selecting the dataset with
// the given file restore status.
func restoreEvent(t *testing.T, co *writertest.Coordinator, id writer.Identity, typ v1.EventType, st vss.FileRestoreStatus) (*v1.EventResult, *document.ComponentState) {
	t.Helper()
	return restoreEventIn(t, co, id, uuid.New(), 20000, typ, st)
}

// restoreEventIn is restoreEvent in session sid, with timeoutMs for the
// event.
func restoreEventIn(t *testing.T, co *writertest.Coordinator, id writer.Identity, sid uuid.UUID, timeoutMs int64, typ v1.EventType,
	st vss.FileRestoreStatus) (*v1.EventResult, *document.ComponentState) {
	t.Helper()
	inst := co.Writer(0).InstanceID
	bcd := &document.BackupComponents{SelectComponents: true, BackupType: vss.BackupFull, RestoreType: vss.RestoreByCopy}
	if err := bcd.AddComponent(inst, id.ClassID, id.InstanceName, 0, vss.ComponentDatabase, "", ComponentName); err != nil {
		t.Fatal(err)
	}
	c := bcd.Writer(inst).Component("", ComponentName)
	c.BackupSucceeded, c.SelectedForRestore, c.RestoreTarget, c.FileRestoreStatus = true, true, vss.RTOriginal, st
	b, err := bcd.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	res, err := co.Send(context.Background(), 0, &v1.Event{Id: uint64(typ), Type: typ, SessionId: sid.String(), SnapshotSetId: uuid.Nil.String(),
		SelectComponents: true, RestoreType: int32(vss.RestoreByCopy), TimeoutMs: timeoutMs, BcdXml: string(b)})
	if err != nil {
		t.Fatal(err)
	}
	if x := res.GetBcdXml(); x != "" {
		edited, err := document.ParseBackupComponents([]byte(x))
		if err != nil {
			t.Fatal(err)
		}
		c = edited.Writer(inst).Component("", ComponentName)
	}
	return res, c
}

func identifyOver(t *testing.T, co *writertest.Coordinator) *v1.EventResult {
	t.Helper()
	res, err := co.Send(context.Background(), 0, &v1.Event{Id: 1, Type: v1.EventType_EVENT_IDENTIFY, TimeoutMs: 20000})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestPreRestoreRefusesWhileRunning: PreRestore fails RETRYABLE while the
// server answers, naming its PID; once it is stopped, Identify declares
// the files it used and PreRestore succeeds.
func TestPreRestoreRefusesWhileRunning(t *testing.T) {
	r := startServer(t, true)
	id, w, _ := mustNew(t, r, Config{})
	co := writertest.Serve(t, id, w)
	if res := identifyOver(t, co); res.GetFailure() != 0 {
		t.Fatal(res.GetApplicationMessage())
	}
	pid, err := client(t, r).Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	pid = pid[strings.Index(pid, "process_id:")+len("process_id:"):]
	pid = strings.TrimSpace(pid[:strings.Index(pid, "\n")])
	res, c := restoreEvent(t, co, id, v1.EventType_EVENT_PRE_RESTORE, vss.RSUndefined)
	msg := res.GetApplicationMessage()
	if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorRetryable || !strings.Contains(msg, "(PID "+pid+")") ||
		!strings.Contains(msg, "SHUTDOWN") || c.PreRestoreFailureMsg != msg {
		t.Fatalf("PreRestore with the server running: %s %q", vsserr.HRESULT(res.GetFailure()), msg)
	}
	t.Logf("refused: %s", msg)
	r.Stop()
	res = identifyOver(t, co)
	if res.GetFailure() != 0 || !strings.Contains(res.GetWmdXml(), "server stopped") {
		t.Fatalf("Identify with the server stopped: %s %s", res.GetApplicationMessage(), res.GetWmdXml())
	}
	if res, _ := restoreEvent(t, co, id, v1.EventType_EVENT_PRE_RESTORE, vss.RSUndefined); res.GetFailure() != 0 {
		t.Fatalf("PreRestore with the server stopped: %s", res.GetApplicationMessage())
	}
}

// TestPostRestoreChecksTheFiles: PostRestore with VSS_RS_ALL passes the
// files a real server wrote (RDB: its CRC-64 matches) and fails
// NONRETRYABLE on a damaged RDB file or an AOF directory missing a file
// its manifest names; VSS_RS_NONE looks at nothing.
func TestPostRestoreChecksTheFiles(t *testing.T) {
	for _, aof := range []bool{false, true} {
		t.Run(map[bool]string{false: "RDB", true: "AOF"}[aof], func(t *testing.T) {
			r := startServer(t, aof)
			ctx := context.Background()
			cl := client(t, r)
			for i := 0; i < 200; i++ {
				if err := cl.Set(ctx, "k"+strings.Repeat("x", i%7)+string(rune('a'+i%26)), i, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if err := cl.Save(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if aof {
				if err := cl.BgRewriteAOF(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				waitNoRewrite(t, cl)
			}
			id, w, _ := mustNew(t, r, Config{})
			co := writertest.Serve(t, id, w)
			if res := identifyOver(t, co); res.GetFailure() != 0 {
				t.Fatal(res.GetApplicationMessage())
			}
			r.Stop()
			if res, _ := restoreEvent(t, co, id, v1.EventType_EVENT_POST_RESTORE, vss.RSAll); res.GetFailure() != 0 {
				t.Fatalf("PostRestore of the server's own files: %s", res.GetApplicationMessage())
			}
			var damaged, want string
			if aof {
				base, _ := filepath.Glob(filepath.Join(r.Dir, "appendonlydir", "*.base.*"))
				if len(base) != 1 {
					t.Fatalf("AOF base files %v", base)
				}
				damaged, want = base[0], "which is missing"
				if err := os.Remove(damaged); err != nil {
					t.Fatal(err)
				}
			} else {
				damaged, want = filepath.Join(r.Dir, "dump.rdb"), "fails its checksum"
				b, err := os.ReadFile(damaged)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 0x01
				if err := os.WriteFile(damaged, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res, c := restoreEvent(t, co, id, v1.EventType_EVENT_POST_RESTORE, vss.RSAll)
			if vsserr.HRESULT(res.GetFailure()) != vsserr.WriterErrorNonRetryable || !strings.Contains(res.GetApplicationMessage(), want) ||
				c.PostRestoreFailureMsg != res.GetApplicationMessage() {
				t.Fatalf("PostRestore of damaged files: %s %q, want %q", vsserr.HRESULT(res.GetFailure()), res.GetApplicationMessage(), want)
			}
			t.Logf("damaged: %s", res.GetApplicationMessage())
			if res, _ := restoreEvent(t, co, id, v1.EventType_EVENT_POST_RESTORE, vss.RSNone); res.GetFailure() != 0 {
				t.Fatalf("PostRestore with VSS_RS_NONE: %s", res.GetApplicationMessage())
			}
		})
	}
}
