package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	v1 "github.com/lvss/lvss/api/lvss/v1"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/internal/wire"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// The role tests run probes (this test binary, copied where every uid may
// run it) under uids and gids of a private range that have no passwd or
// group entry: lvssd's rules take numeric ids, and the peer's groups come
// from the kernel (SO_PEERGROUPS), so nothing is added to the machine.
const (
	uidOutsider  = 61000 // in no role
	uidRequester = 61001 // in requesterGroup
	uidBound     = 61002 // named by the binding of boundClass, in no role
	uidWriter    = 61003 // in writerGroup
	uidAdmin     = 61004 // in adminGroup

	requesterGroup = 61100
	writerGroup    = 61200
	adminGroup     = 61300
)

var (
	boundClass = uuid.MustParse("7fb0b9cd-c65d-4295-9e38-eda7166ef992") // the PostgreSQL writer's
	boundName  = "Guarded"                                              // bound by name: any class
)

func roleRules() Rules {
	return Rules{
		RequesterGroups: []string{strconv.Itoa(requesterGroup)},
		WriterGroups:    []string{strconv.Itoa(writerGroup)},
		AdminGroups:     []string{strconv.Itoa(adminGroup)},
		WriterClasses: []ClassBinding{
			{ClassID: boundClass, Users: []string{strconv.Itoa(uidBound)}, Key: "access.writer_class[0]"},
			{Name: strings.ToLower(boundName), Users: []string{strconv.Itoa(uidBound)}, Key: "access.writer_class[1]"},
		},
	}
}

// sessionCalls is every call of the Requester session, one request each
// with an empty argument, found from the protocol's descriptor so that a
// call added later is covered without touching the test.
func sessionCalls() []*v1.SessionRequest {
	oneof := (&v1.SessionRequest{}).ProtoReflect().Descriptor().Oneofs().ByName("call")
	var out []*v1.SessionRequest
	for i := 0; i < oneof.Fields().Len(); i++ {
		req := &v1.SessionRequest{}
		req.ProtoReflect().Mutable(oneof.Fields().Get(i))
		out = append(out, req)
	}
	return out
}

// adminCalls runs each Admin RPC; the test checks it knows every method
// the service has.
var adminCalls = map[string]func(context.Context, v1.AdminClient) error{
	"ListWriters": func(ctx context.Context, a v1.AdminClient) error {
		_, err := a.ListWriters(ctx, &v1.ListWritersRequest{})
		return err
	},
	"ListProviders": func(ctx context.Context, a v1.AdminClient) error {
		_, err := a.ListProviders(ctx, &v1.ListProvidersRequest{})
		return err
	},
	"ListEvents": func(ctx context.Context, a v1.AdminClient) error {
		_, err := a.ListEvents(ctx, &v1.ListEventsRequest{})
		return err
	},
	"ListShadows": func(ctx context.Context, a v1.AdminClient) error {
		st, err := a.ListShadows(ctx, &v1.ListShadowsRequest{})
		if err != nil {
			return err
		}
		// A refusal ends the stream before its first batch.
		if _, err = st.Recv(); errors.Is(err, io.EOF) {
			return nil
		}
		return err
	},
	"Status": func(ctx context.Context, a v1.AdminClient) error {
		_, err := a.Status(ctx, &v1.StatusRequest{})
		return err
	},
	"Doctor": func(ctx context.Context, a v1.AdminClient) error {
		_, err := a.Doctor(ctx, &v1.DoctorRequest{})
		return err
	},
	"PreviousVersions": func(ctx context.Context, a v1.AdminClient) error {
		_, err := a.PreviousVersions(ctx, &v1.PreviousVersionsRequest{})
		return err
	},
}

// TestHelperRoleProbe runs in a child process under another uid: it makes
// every session call (each in a session of its own), every Admin call, or
// subscribes one writer, and prints one "RESULT label HRESULT-name" line
// per call.
func TestHelperRoleProbe(t *testing.T) {
	sock := os.Getenv("LVSS_ROLE_PROBE_SOCKET")
	if sock == "" {
		return // only meaningful as a child process of a role test
	}
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println("PROBE dial:", err)
		os.Exit(3)
	}
	result := func(label string, err error) { fmt.Printf("RESULT %s %s\n", label, vsserr.Code(err).Name()) }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch mode := os.Getenv("LVSS_ROLE_PROBE_MODE"); mode {
	case "session":
		for _, req := range sessionCalls() {
			result(callName(req), probeSessionCall(ctx, cc, req))
		}
	case "admin":
		for name, call := range adminCalls {
			result(name, wire.FromGRPC(call(ctx, v1.NewAdminClient(cc))))
		}
	default: // "writer CLASS NAME"
		f := strings.SplitN(mode, " ", 3)
		result("Subscribe", probeSubscribe(ctx, cc, f[1], f[2]))
	}
	os.Exit(0)
}

// probeSessionCall opens a session, makes one call and ends the session.
// A refused stream fails at the first receive; a refused call answers
// with its status.
func probeSessionCall(ctx context.Context, cc *grpc.ClientConn, req *v1.SessionRequest) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := v1.NewRequesterClient(cc).Session(ctx)
	if err != nil {
		return wire.FromGRPC(err)
	}
	req.Id = 1
	if err := st.Send(req); err != nil {
		_, err = st.Recv()
		return wire.FromGRPC(err)
	}
	resp, err := st.Recv()
	if err != nil {
		return wire.FromGRPC(err)
	}
	return wire.ErrorOf(resp.Status)
}

// probeSubscribe subscribes a writer and returns nil once lvssd welcomes
// it.
func probeSubscribe(ctx context.Context, cc *grpc.ClientConn, class, name string) error {
	st, err := v1.NewWriterClient(cc).Subscribe(ctx)
	if err != nil {
		return wire.FromGRPC(err)
	}
	if err := st.Send(&v1.WriterMessage{Msg: &v1.WriterMessage_Hello{Hello: &v1.Hello{WriterId: class, Name: name,
		// An instance name of its own: the same class and instance name
		// twice would be VSS_E_WRITER_ALREADY_SUBSCRIBED while an earlier
		// probe's stream is still being ended.
		InstanceName: uuid.NewString(), Level: int32(vss.LevelFrontEnd)}}}); err != nil {
		_, err = st.Recv()
		return wire.FromGRPC(err)
	}
	m, err := st.Recv()
	if err != nil {
		return wire.FromGRPC(err)
	}
	if m.GetWelcome() == nil {
		return vsserr.New(vsserr.Unexpected, "first message is %T, not Welcome", m.GetMsg())
	}
	return nil
}

// probe runs the role probe in mode as uid with the given groups (the
// first is its primary group) and returns each label's HRESULT name.
func probe(t *testing.T, bin, sock, mode string, uid uint32, groups ...uint32) map[string]string {
	t.Helper()
	gid := uid
	if len(groups) > 0 {
		gid = groups[0]
	}
	cmd := exec.Command(bin, "-test.run=^TestHelperRoleProbe$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LVSS_ROLE_PROBE_SOCKET="+sock, "LVSS_ROLE_PROBE_MODE="+mode)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe %q as uid %d: %v\n%s", mode, uid, err, out)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "RESULT" {
			got[f[1]] = f[2]
		}
	}
	if len(got) == 0 {
		t.Fatalf("probe %q as uid %d printed no result:\n%s", mode, uid, out)
	}
	return got
}

// expectRefused checks that exactly the labels refused says were
// answered E_ACCESSDENIED.
func expectRefused(t *testing.T, who string, got map[string]string, refused func(string) bool) {
	t.Helper()
	labels := make([]string, 0, len(got))
	for l := range got {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	for _, l := range labels {
		denied := got[l] == "E_ACCESSDENIED"
		if want := refused(l); denied != want {
			t.Errorf("%s: %s answered %s, want refused=%v", who, l, got[l], want)
		}
	}
}

func all(string) bool  { return true }
func none(string) bool { return false }

// readOnlyNames are the session calls the admin role may make.
func readOnlyNames() map[string]bool {
	out := map[string]bool{}
	for _, req := range sessionCalls() {
		if readOnlyCall(req) {
			out[callName(req)] = true
		}
	}
	return out
}

// TestRoles is the table of who may do what (L50), over every session
// call, every Admin call and writer subscriptions of bound and unbound
// classes, with real processes under uids of their own against the real
// server on its socket.
func TestRoles(t *testing.T) {
	testenv.RequireRoot(t)
	bin := probeBinary(t)
	d := startDaemon(t, NewAccess(roleRules(), slog.Default()))

	svc := v1.File_lvss_proto.Services().ByName("Admin").Methods()
	if svc.Len() != len(adminCalls) {
		t.Fatalf("the Admin service has %d methods, the test knows %d: add the new one to adminCalls", svc.Len(), len(adminCalls))
	}
	if n := len(sessionCalls()); n < 40 {
		t.Fatalf("only %d session calls found in the descriptor", n)
	}
	ro := readOnlyNames()
	for _, must := range []string{"Query", "GetSnapshotProperties", "InitializeForBackup"} {
		if !ro[must] {
			t.Fatalf("%s is not a read-only call", must)
		}
	}
	for _, never := range []string{"DoSnapshotSet", "DeleteSnapshots", "ExposeSnapshot", "RevertToSnapshot", "GatherWriterMetadata", "PreRestore", "StartSnapshotSet"} {
		if ro[never] {
			t.Fatalf("%s counted as read-only", never)
		}
	}
	unbound := uuid.NewString()
	writerModes := map[string]string{
		"unbound class":             "writer " + unbound + " plain",
		"bound class":               "writer " + boundClass.String() + " postgres",
		"bound name, other case":    "writer " + uuid.NewString() + " " + strings.ToUpper(boundName),
		"bound class, renamed":      "writer " + boundClass.String() + " not-postgres",
		"unbound class, bound name": "writer " + unbound + " " + boundName,
	}
	type account struct {
		name    string
		uid     uint32
		groups  []uint32
		session func(string) bool // which session calls are refused
		admin   func(string) bool // which Admin calls are refused
		writers map[string]bool   // writer mode → refused
	}
	boundOnly := map[string]bool{"unbound class": true, "bound class": false, "bound name, other case": false, "bound class, renamed": false, "unbound class, bound name": false}
	for _, a := range []account{
		{"outsider", uidOutsider, nil, all, all, map[string]bool{"unbound class": true, "bound class": true, "bound name, other case": true,
			"bound class, renamed": true, "unbound class, bound name": true}},
		{"requester", uidRequester, []uint32{uidRequester, requesterGroup}, none, none, map[string]bool{"unbound class": true, "bound class": true,
			"bound name, other case": true, "bound class, renamed": true, "unbound class, bound name": true}},
		{"writer", uidWriter, []uint32{writerGroup}, all, all, map[string]bool{"unbound class": false, "bound class": true,
			"bound name, other case": true, "bound class, renamed": true, "unbound class, bound name": true}},
		{"bound user", uidBound, nil, all, all, boundOnly},
		{"admin", uidAdmin, []uint32{uidAdmin, adminGroup}, func(c string) bool { return !ro[c] }, none, map[string]bool{"unbound class": true,
			"bound class": true, "bound name, other case": true, "bound class, renamed": true, "unbound class, bound name": true}},
		{"root", 0, []uint32{0}, none, none, map[string]bool{"unbound class": false, "bound class": false, "bound name, other case": false,
			"bound class, renamed": false, "unbound class, bound name": false}},
	} {
		t.Run(a.name, func(t *testing.T) {
			sess, adm := probe(t, bin, d.socket, "session", a.uid, a.groups...), probe(t, bin, d.socket, "admin", a.uid, a.groups...)
			if len(sess) != len(sessionCalls()) || len(adm) != len(adminCalls) {
				t.Fatalf("the probe answered %d session and %d admin calls, want %d and %d", len(sess), len(adm), len(sessionCalls()), len(adminCalls))
			}
			expectRefused(t, a.name+" session", sess, a.session)
			expectRefused(t, a.name+" admin", adm, a.admin)
			for what, mode := range writerModes {
				got := probe(t, bin, d.socket, mode, a.uid, a.groups...)["Subscribe"]
				if refused := got == "E_ACCESSDENIED"; refused != a.writers[what] {
					t.Errorf("%s subscribing a writer of %s: %s, want refused=%v", a.name, what, got, a.writers[what])
				} else if !refused && got != "S_OK" {
					t.Errorf("%s subscribing a writer of %s: %s", a.name, what, got)
				}
			}
		})
	}
}

// TestDenialLogged: a refusal reaches the event log with the peer's uid,
// gid, pid and executable and the method, and the refused caller learns
// which role it lacks and which keys grant it.
func TestDenialLogged(t *testing.T) {
	testenv.RequireRoot(t)
	bin := probeBinary(t)
	d := startDaemon(t, NewAccess(roleRules(), slog.Default()))
	if got := probe(t, bin, d.socket, "writer "+boundClass.String()+" postgres", uidWriter, writerGroup)["Subscribe"]; got != "E_ACCESSDENIED" {
		t.Fatalf("got %s", got)
	}
	probe(t, bin, d.socket, "admin", uidOutsider)
	evs, _, err := d.c.QueryEvents(coordinator.EventFilter{Code: vsserr.AccessDenied})
	if err != nil {
		t.Fatal(err)
	}
	var writerDenial, adminDenial bool
	for _, e := range evs {
		f := e.Fields
		if f["exe"] != bin || f["pid"] == "" || f["pid"] == "0" {
			t.Errorf("denial without the peer's executable and pid: %+v", f)
		}
		switch {
		case f["uid"] == strconv.Itoa(uidWriter) && f["gid"] == strconv.Itoa(writerGroup) &&
			strings.HasPrefix(f["method"], "Writer.Subscribe (writer \"postgres\", class "+boundClass.String()) &&
			strings.Contains(f["reason"], "access.writer_class[0]"):
			writerDenial = true
		case f["uid"] == strconv.Itoa(uidOutsider) && strings.HasPrefix(f["method"], "Admin.") &&
			strings.Contains(f["reason"], "access.requester_groups") && strings.Contains(f["reason"], "access.admin_groups"):
			adminDenial = true
		}
	}
	if !writerDenial || !adminDenial {
		t.Fatalf("denials not logged as expected (writer %v, admin %v): %+v", writerDenial, adminDenial, evs)
	}
}

func TestDenialLimiter(t *testing.T) {
	var l denialLimiter
	now := time.Unix(1000, 0)
	for i := range denialBurst {
		if !l.admit(7, now) {
			t.Fatalf("denial %d not admitted", i+1)
		}
	}
	if l.admit(7, now.Add(time.Second)) {
		t.Fatal("a denial past the burst was admitted")
	}
	if !l.admit(8, now) {
		t.Fatal("another uid's denial was held back")
	}
	if !l.admit(7, now.Add(denialWindow)) {
		t.Fatal("a denial of the next window was held back")
	}
}

func TestRolesAndAllowedBy(t *testing.T) {
	a := NewAccess(roleRules(), slog.New(slog.DiscardHandler))
	for _, c := range []struct {
		p     PeerInfo
		roles Role
		by    string
	}{
		{PeerInfo{UID: 0}, RoleRequester | RoleWriter | RoleAdmin, "root"},
		{PeerInfo{UID: uidOutsider, GID: uidOutsider}, 0, ""},
		{PeerInfo{UID: uidRequester, GID: uidRequester, Groups: []uint32{requesterGroup}}, RoleRequester | RoleAdmin,
			"group 61100 (access.requester_groups: requester, admin)"},
		{PeerInfo{UID: uidWriter, GID: writerGroup}, RoleWriter, "group 61200 (access.writer_groups: writer)"},
		{PeerInfo{UID: uidAdmin, GID: uidAdmin, Groups: []uint32{adminGroup}}, RoleAdmin, "group 61300 (access.admin_groups: admin)"},
		{PeerInfo{UID: uidBound, GID: uidBound}, 0,
			"user 61002 (access.writer_class[0]: writer class 7fb0b9cd-c65d-4295-9e38-eda7166ef992); user 61002 (access.writer_class[1]: writer name \"guarded\")"},
	} {
		if got := a.Roles(c.p); got != c.roles {
			t.Errorf("uid %d: roles %s, want %s", c.p.UID, got, c.roles)
		}
		if got := a.AllowedBy(c.p); got != c.by {
			t.Errorf("uid %d: allowed by %q, want %q", c.p.UID, got, c.by)
		}
	}
}
