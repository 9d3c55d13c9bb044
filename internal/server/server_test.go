package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/catalog"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/provider"
	"github.com/lvss/lvss/provider/fake"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

type daemon struct {
	c      *coordinator.Coordinator
	socket string
	cat    *catalog.DB
	vol    string
	prov   *fake.Provider
}

// startDaemon runs coordinator and server in-process on a real socket in a
// directory everyone can traverse (the access test connects as nobody).
func startDaemon(t testing.TB, access *Access) *daemon {
	t.Helper()
	return startDaemonWith(t, access, nil)
}

// startDaemonWith lets a test change the coordinator's options.
func startDaemonWith(t testing.TB, access *Access, mod func(*coordinator.Options)) *daemon {
	t.Helper()
	dir := publicDir(t)
	cat, err := catalog.Open(filepath.Join(dir, "state", "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	vol, _ := filepath.EvalSymlinks(t.TempDir())
	fp := fake.New(vol)
	opt := coordinator.Options{Catalog: cat, Providers: provider.NewRegistry(fp)}
	if mod != nil {
		mod(&opt)
	}
	c, err := coordinator.New(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "lvssd.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(c, access, slog.New(slog.DiscardHandler))
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(); c.Close(context.Background()); cat.Close() })
	return &daemon{c: c, socket: sock, cat: cat, vol: vol, prov: fp}
}

// publicDir is a temp dir that other uids can traverse (t.TempDir's parent
// is private).
func publicDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lvss-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func dial(t testing.TB, sock string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// rawSession drives the session stream without the client package.
type rawSession struct {
	t  *testing.T
	st v1.Requester_SessionClient
	id uint64
}

func (r *rawSession) call(req *v1.SessionRequest) *v1.SessionResponse {
	r.t.Helper()
	r.id++
	req.Id = r.id
	if err := r.st.Send(req); err != nil {
		r.t.Fatal(err)
	}
	resp, err := r.st.Recv()
	if err != nil {
		r.t.Fatal(err)
	}
	if resp.Id != req.Id {
		r.t.Fatalf("response id %d for request %d", resp.Id, req.Id)
	}
	return resp
}

func (r *rawSession) ok(req *v1.SessionRequest) *v1.SessionResponse {
	r.t.Helper()
	resp := r.call(req)
	if err := wire.ErrorOf(resp.Status); err != nil {
		r.t.Fatalf("%T: %v", req.Call, err)
	}
	return resp
}

func (r *rawSession) waitOK(resp *v1.SessionResponse) {
	r.t.Helper()
	w := r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_Wait{Wait: &v1.Wait{AsyncId: resp.GetAsync().AsyncId, TimeoutMs: 10000}}})
	if st := vsserr.HRESULT(w.GetAsyncStatus().Hresult); st != vsserr.AsyncFinished {
		r.t.Fatalf("async ended %s", st)
	}
}

func TestSessionOverSocketAndReleaseOnDisconnect(t *testing.T) {
	d := startDaemon(t, NewAccess(Rules{}, slog.Default()))
	cc := dial(t, d.socket)
	ctx, kill := context.WithCancel(context.Background())
	st, err := v1.NewRequesterClient(cc).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawSession{t: t, st: st}
	// BAD_STATE crosses the wire with its number and text.
	resp := r.call(&v1.SessionRequest{Call: &v1.SessionRequest_PrepareForBackup{PrepareForBackup: &v1.PrepareForBackup{}}})
	if err := wire.ErrorOf(resp.Status); !errors.Is(err, vsserr.BadState) || !strings.Contains(err.Error(), "0x80042301") {
		t.Fatalf("got %v", err)
	}
	r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_InitializeForBackup{InitializeForBackup: &v1.InitializeForBackup{}}})
	r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_SetContext{SetContext: &v1.SetContext{Context: int32(vss.CtxFileShareBackup)}}})
	r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_StartSnapshotSet{StartSnapshotSet: &v1.StartSnapshotSet{}}})
	snap := r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_AddToSnapshotSet{AddToSnapshotSet: &v1.AddToSnapshotSet{Volume: d.vol}}}).GetSnapshotId().Id
	r.waitOK(r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_DoSnapshotSet{DoSnapshotSet: &v1.DoSnapshotSet{}}}))
	props := r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_GetSnapshotProperties{GetSnapshotProperties: &v1.GetSnapshotProperties{SnapshotId: snap}}}).GetSnapshot()
	if props.OriginalVolume != d.vol || !props.AutoRelease || props.Consistency != "crash" {
		t.Fatalf("props %+v", props)
	}
	if n, _ := d.cat.ListSnapshots(catalog.Filter{}); len(n) != 1 {
		t.Fatalf("catalog has %d snapshots", len(n))
	}
	adm := v1.NewAdminClient(cc)
	ls, err := listShadows(adm, &v1.ListShadowsRequest{Volume: d.vol})
	if err != nil || len(ls) != 1 || !ls[0].LiveSession || !ls[0].AutoRelease {
		t.Fatalf("ListShadows while the session runs: %v %v", ls, err)
	}
	if ls, _ := listShadows(adm, &v1.ListShadowsRequest{SnapshotSetId: "6c1b5a1e-0f4e-4c47-9d0e-000000000000"}); len(ls) != 0 {
		t.Fatalf("filter by another set: %v", ls)
	}
	// The requester dies: the session is released and its auto-release
	// snapshot deleted.
	kill()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, _ := d.cat.ListSnapshots(catalog.Filter{})
		if len(n) == 0 && d.prov.Live() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("auto-release snapshot survived its session: %d in catalog", len(n))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReleasedMessageOnHalfClose(t *testing.T) {
	d := startDaemon(t, NewAccess(Rules{}, slog.Default()))
	st, err := v1.NewRequesterClient(dial(t, d.socket)).Session(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r := &rawSession{t: t, st: st}
	r.ok(&v1.SessionRequest{Call: &v1.SessionRequest_InitializeForBackup{InitializeForBackup: &v1.InitializeForBackup{}}})
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil || resp.Id != 0 || resp.GetReleased() == nil {
		t.Fatalf("want a final Released message, got %v %v", resp, err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("stream should end after Released: %v", err)
	}
}

// TestHelperAccessProbe runs in a child process under another uid.
func TestHelperAccessProbe(t *testing.T) {
	sock := os.Getenv("LVSS_ACCESS_PROBE_SOCKET")
	if sock == "" {
		return // only meaningful as a child process of the real test
	}
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println("PROBE dial:", err)
		os.Exit(3)
	}
	admin := v1.NewAdminClient(cc)
	switch os.Getenv("LVSS_ACCESS_PROBE_CALL") {
	case "Status":
		_, err = admin.Status(context.Background(), &v1.StatusRequest{})
	case "Doctor":
		var r *v1.DoctorResponse
		if r, err = admin.Doctor(context.Background(), &v1.DoctorRequest{}); err == nil {
			fmt.Printf("ALLOWED %s\n", r.CallerAllowedBy)
		}
	default:
		_, err = admin.ListWriters(context.Background(), &v1.ListWritersRequest{})
	}
	fmt.Printf("PROBE %s\n", vsserr.Code(wire.FromGRPC(err)).Name())
	if err == nil {
		fmt.Println("PROBE S_OK")
	}
	os.Exit(0)
}

func probeAs(t *testing.T, bin, sock string, uid, gid uint32) string {
	t.Helper()
	return probeCallAs(t, bin, sock, "ListWriters", "PROBE ", uid, gid)
}

// probeCallAs runs the Admin call named call as uid/gid and returns what
// the probe printed after prefix ("PROBE ": the call's HRESULT name).
func probeCallAs(t *testing.T, bin, sock, call, prefix string, uid, gid uint32) string {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^TestHelperAccessProbe$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LVSS_ACCESS_PROBE_SOCKET="+sock, "LVSS_ACCESS_PROBE_CALL="+call)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe as uid %d: %v\n%s", uid, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			return v
		}
	}
	t.Fatalf("probe printed nothing useful:\n%s", out)
	return ""
}

// probeBinary copies this test binary where nobody may run it.
func probeBinary(t *testing.T) string {
	t.Helper()
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(publicDir(t), "probe")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestStatusAndDoctorAccess: lvss status and lvss doctor are Admin calls
// like the others: refused to a caller outside the access rules, answered
// to one inside, and Doctor says which rule let it in.
func TestStatusAndDoctorAccess(t *testing.T) {
	testenv.RequireRoot(t)
	bin := probeBinary(t)
	d := startDaemon(t, NewAccess(Rules{Groups: []string{"4242"}}, slog.Default()))
	for _, call := range []string{"Status", "Doctor"} {
		if got := probeCallAs(t, bin, d.socket, call, "PROBE ", 65534, 65534); got != "E_ACCESSDENIED" {
			t.Errorf("%s as uid 65534 outside the allowed groups: got %s", call, got)
		}
		if got := probeCallAs(t, bin, d.socket, call, "PROBE ", 65534, 4242); got != "S_OK" {
			t.Errorf("%s as uid 65534 in allowed group 4242: got %s", call, got)
		}
	}
	if got := probeCallAs(t, bin, d.socket, "Doctor", "ALLOWED ", 65534, 4242); got != "group 4242 (access.groups: requester, writer, admin)" {
		t.Errorf("Doctor's allowed_by for a group member: %q", got)
	}
	if got := probeCallAs(t, bin, d.socket, "Doctor", "ALLOWED ", 0, 0); got != "root" {
		t.Errorf("Doctor's allowed_by for root: %q", got)
	}
}

func TestAccessFromPeerCredentials(t *testing.T) {
	testenv.RequireRoot(t)
	// The probe (this test binary) must be runnable by nobody.
	bin := probeBinary(t)
	d := startDaemon(t, NewAccess(Rules{Groups: []string{"4242"}}, slog.Default()))
	if got := probeAs(t, bin, d.socket, 65534, 65534); got != "E_ACCESSDENIED" {
		t.Fatalf("uid 65534 outside the allowed groups: got %s", got)
	}
	if got := probeAs(t, bin, d.socket, 65534, 4242); got != "S_OK" {
		t.Fatalf("uid 65534 in allowed group 4242: got %s", got)
	}
	if got := probeAs(t, bin, d.socket, 0, 0); got != "S_OK" {
		t.Fatalf("root: got %s", got)
	}
	resp, err := v1.NewAdminClient(dial(t, d.socket)).ListEvents(context.Background(), &v1.ListEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range resp.Events {
		if vsserr.HRESULT(e.Hresult) == vsserr.AccessDenied && e.Fields["uid"] == "65534" {
			found = true
		}
	}
	if !found {
		t.Fatalf("the refusal was not logged: %+v", resp.Events)
	}
}

// listShadows reads a whole ListShadows stream.
func listShadows(adm v1.AdminClient, req *v1.ListShadowsRequest) ([]*v1.SnapshotProp, error) {
	st, err := adm.ListShadows(context.Background(), req)
	if err != nil {
		return nil, err
	}
	var out []*v1.SnapshotProp
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, resp.Snapshots...)
	}
}
