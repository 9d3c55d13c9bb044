package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/document"
	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// method is one line verb of `lvss call`: an IVssBackupComponents method,
// or Wait/QueryStatus/Cancel on an async handle. docs/cli.md documents the
// same table for humans; TestMethodsDocumented keeps them in step.
type method struct {
	name     string
	params   []param
	variadic bool // the last parameter repeats (at least once)
	async    bool
	// start begins an async method; run does a synchronous one and
	// returns its results (also on failure, when the spec gives results
	// with a failure, as DeleteSnapshots does).
	start func(ctx context.Context, r *runner, a args) (*client.Async, error)
	run   func(ctx context.Context, r *runner, a args) (obj, error)
}

func (m *method) usage() string {
	var b strings.Builder
	b.WriteString(m.name)
	for i, p := range m.params {
		name := p.name
		if m.variadic && i == len(m.params)-1 {
			name += "..."
		}
		if p.def != nil {
			if *p.def == "" {
				b.WriteString(" [" + name + "]")
			} else {
				b.WriteString(" [" + name + "=" + *p.def + "]")
			}
		} else {
			b.WriteString(" " + name)
		}
	}
	if m.async {
		b.WriteString(" [&]")
	}
	return b.String()
}

// runner is the state of one `lvss call` run: the session, the variables
// and the async handles started so far.
type runner struct {
	bc     *client.BackupComponents
	vars   vars
	asyncs map[uint64]*client.Async
	nsnap  int // snapshots added since StartSnapshotSet, for $SNAPSHOT_ID_n
}

func newRunner(bc *client.BackupComponents) *runner {
	return &runner{bc: bc, vars: vars{}, asyncs: map[uint64]*client.Async{}}
}

// component arguments shared by several methods: writerId componentType
// logicalPath name.
var componentParams = []param{req("writerId", kGUID), req("componentType", kComponentType),
	req("logicalPath", kString), req("name", kString)}

func withComponent(head []param, tail ...param) []param {
	out := slices.Clone(head)
	out = append(out, componentParams...)
	return append(out, tail...)
}

// allIndex is the default of the optional index of the Get...[index]
// methods: no index lists every entry.
const allIndex = ""

var methods = []*method{
	{name: "InitializeForBackup", params: []param{opt("bcdXml", kXML, "")},
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.InitializeForBackup(ctx, a.str(0))
		}},
	{name: "InitializeForRestore", params: []param{opt("bcdXml", kXML, "")},
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.InitializeForRestore(ctx, a.str(0))
		}},
	{name: "SetContext", params: []param{req("context", kContext)},
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetContext(ctx, a.context(0))
		}},
	{name: "SetBackupState", params: []param{req("selectComponents", kBool), req("bootableSystemState", kBool),
		req("backupType", kBackupType), opt("partialFileSupport", kBool, "false")},
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetBackupState(ctx, a.boolean(0), a.boolean(1), a.backupType(2), a.boolean(3))
		}},
	{name: "EnableWriterClasses", params: []param{req("writerId", kGUID)}, variadic: true,
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.EnableWriterClasses(ctx, a.guids(0)...)
		}},
	{name: "DisableWriterClasses", params: []param{req("writerId", kGUID)}, variadic: true,
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.DisableWriterClasses(ctx, a.guids(0)...)
		}},
	{name: "DisableWriterInstances", params: []param{req("instanceId", kGUID)}, variadic: true,
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.DisableWriterInstances(ctx, a.guids(0)...)
		}},
	{name: "GatherWriterMetadata", async: true,
		start: func(ctx context.Context, r *runner, a args) (*client.Async, error) {
			return r.bc.GatherWriterMetadata(ctx)
		}},
	{name: "GetWriterMetadataCount",
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			n, err := r.bc.GetWriterMetadataCount(ctx)
			return obj{{"count", n}}, err
		}},
	{name: "GetWriterMetadata", params: []param{opt("index", kIndex, allIndex)}, run: func(ctx context.Context, r *runner, a args) (obj, error) { return r.getWriterMetadata(ctx, a) }},
	{name: "FreeWriterMetadata",
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.FreeWriterMetadata(ctx)
		}},
	{name: "AddComponent", params: withComponent([]param{req("instanceId", kGUID)}),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.AddComponent(ctx, a.guid(0), a.guid(1), a.ct(2), a.str(3), a.str(4))
		}},
	{name: "SetBackupOptions", params: withComponent(nil, req("options", kString)),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetBackupOptions(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.str(4))
		}},
	{name: "SetPreviousBackupStamp", params: withComponent(nil, req("stamp", kString)),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetPreviousBackupStamp(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.str(4))
		}},
	{name: "StartSnapshotSet",
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			id, err := r.bc.StartSnapshotSet(ctx)
			if err != nil {
				return nil, err
			}
			r.vars["SNAPSHOT_SET_ID"] = guidText(id)
			r.nsnap = 0
			return obj{{"snapshot_set_id", guidText(id)}}, nil
		}},
	{name: "AddToSnapshotSet", params: []param{req("volume", kString), opt("providerId", kGUID, "GUID_NULL")},
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			id, err := r.bc.AddToSnapshotSet(ctx, a.str(0), a.guid(1))
			if err != nil {
				return nil, err
			}
			r.nsnap++
			r.vars["SNAPSHOT_ID"] = guidText(id)
			r.vars["SNAPSHOT_ID_"+strconv.Itoa(r.nsnap)] = guidText(id)
			return obj{{"snapshot_id", guidText(id)}, {"variable", "SNAPSHOT_ID_" + strconv.Itoa(r.nsnap)}}, nil
		}},
	{name: "PrepareForBackup", async: true,
		start: func(ctx context.Context, r *runner, a args) (*client.Async, error) {
			return r.bc.PrepareForBackup(ctx)
		}},
	{name: "DoSnapshotSet", async: true,
		start: func(ctx context.Context, r *runner, a args) (*client.Async, error) {
			return r.bc.DoSnapshotSet(ctx)
		}},
	{name: "GatherWriterStatus", async: true,
		start: func(ctx context.Context, r *runner, a args) (*client.Async, error) {
			return r.bc.GatherWriterStatus(ctx)
		}},
	{name: "GetWriterStatusCount",
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			n, err := r.bc.GetWriterStatusCount(ctx)
			return obj{{"count", n}}, err
		}},
	{name: "GetWriterStatus", params: []param{opt("index", kIndex, allIndex)},
		run: func(ctx context.Context, r *runner, a args) (obj, error) { return r.getWriterStatus(ctx, a, false) }},
	{name: "GetWriterStatusEx", params: []param{opt("index", kIndex, allIndex)},
		run: func(ctx context.Context, r *runner, a args) (obj, error) { return r.getWriterStatus(ctx, a, true) }},
	{name: "FreeWriterStatus",
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.FreeWriterStatus(ctx)
		}},
	{name: "SetBackupSucceeded", params: withComponent([]param{req("instanceId", kGUID)}, req("succeeded", kBool)),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetBackupSucceeded(ctx, a.guid(0), a.guid(1), a.ct(2), a.str(3), a.str(4), a.boolean(5))
		}},
	{name: "BackupComplete", async: true,
		start: func(ctx context.Context, r *runner, a args) (*client.Async, error) {
			return r.bc.BackupComplete(ctx)
		}},
	{name: "AbortBackup",
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.AbortBackup(ctx)
		}},
	{name: "SaveAsXML",
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			x, err := r.bc.SaveAsXML(ctx)
			if err != nil {
				return nil, err
			}
			return obj{{"xml", x}}, nil
		}},
	{name: "GetWriterComponentsCount",
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			n, err := r.bc.GetWriterComponentsCount(ctx)
			return obj{{"count", n}}, err
		}},
	{name: "GetWriterComponents", params: []param{opt("index", kIndex, allIndex)}, run: func(ctx context.Context, r *runner, a args) (obj, error) { return r.getWriterComponents(ctx, a) }},
	{name: "Query", params: []param{opt("queriedObjectId", kGUID, "GUID_NULL"),
		opt("queriedObjectType", kObjectType, "VSS_OBJECT_NONE"), opt("returnedObjectType", kObjectType, "VSS_OBJECT_SNAPSHOT")},
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			objs, code, err := r.bc.Query(ctx, a.guid(0), a.objType(1), a.objType(2))
			if err != nil {
				return nil, err
			}
			snaps, provs := []obj{}, []obj{}
			for _, o := range objs {
				if o.Snapshot != nil {
					snaps = append(snaps, snapshotObj(*o.Snapshot))
				}
				if o.Provider != nil {
					provs = append(provs, providerObj(*o.Provider))
				}
			}
			out := obj{{"count", len(objs)}}
			if a.objType(2) == vss.ObjectProvider {
				out = out.add("providers", provs)
			} else {
				out = out.add("snapshots", snaps)
			}
			if code == vsserr.False {
				// S_FALSE is a success code: printed, not a failure (D20).
				return out, vsserr.New(vsserr.False, "nothing matched the query")
			}
			return out, nil
		}},
	{name: "GetSnapshotProperties", params: []param{req("snapshotId", kGUID)},
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			p, err := r.bc.GetSnapshotProperties(ctx, a.guid(0))
			if err != nil {
				return nil, err
			}
			return obj{{"snapshot", snapshotObj(p)}}, nil
		}},
	{name: "DeleteSnapshots", params: []param{req("sourceObjectId", kGUID), req("sourceObjectType", kObjectType),
		opt("forceDelete", kBool, "false")},
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			n, non, err := r.bc.DeleteSnapshots(ctx, a.guid(0), a.objType(1), a.boolean(2))
			return obj{{"deleted", n}, {"non_deleted_snapshot_id", guidText(non)}}, err
		}},
	{name: "IsVolumeSupported", params: []param{req("providerId", kGUID), req("volume", kString)},
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			ok, err := r.bc.IsVolumeSupported(ctx, a.guid(0), a.str(1))
			if err != nil {
				return nil, err
			}
			return obj{{"supported", ok}}, nil
		}},
	{name: "ExposeSnapshot", params: []param{req("snapshotId", kGUID), req("pathFromRoot", kString),
		req("attributes", kAttributes), opt("expose", kString, "")},
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			name, err := r.bc.ExposeSnapshot(ctx, a.guid(0), a.str(1), a.attrs(2), a.str(3))
			if err != nil {
				return nil, err
			}
			r.vars["EXPOSED_NAME"] = name
			return obj{{"exposed_name", name}}, nil
		}},
	{name: "UnexposeSnapshot", params: []param{req("snapshotId", kGUID)},
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.UnexposeSnapshot(ctx, a.guid(0))
		}},
	{name: "RevertToSnapshot", params: []param{req("snapshotId", kGUID), opt("forceDismount", kBool, "false")},
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.RevertToSnapshot(ctx, a.guid(0), a.boolean(1))
		}},
	{name: "QueryRevertStatus", params: []param{req("volume", kString)}, async: true,
		start: func(ctx context.Context, r *runner, a args) (*client.Async, error) {
			return r.bc.QueryRevertStatus(ctx, a.str(0))
		}},
	{name: "GetSessionId",
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			id, err := r.bc.GetSessionID(ctx)
			if err != nil {
				return nil, err
			}
			r.vars["SESSION_ID"] = guidText(id)
			return obj{{"session_id", guidText(id)}}, nil
		}},
	// Restore sessions (vss-reference §2.2, D21).
	{name: "SetRestoreState", params: []param{req("restoreType", kRestoreType)},
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetRestoreState(ctx, a.restoreType(0))
		}},
	{name: "SetSelectedForRestore", params: withComponent(nil, req("selected", kBool)),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetSelectedForRestore(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.boolean(4))
		}},
	{name: "SetSelectedForRestoreEx", params: withComponent(nil, req("selected", kBool), opt("instanceId", kGUID, "GUID_NULL")),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetSelectedForRestoreEx(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.boolean(4), a.guid(5))
		}},
	{name: "AddRestoreSubcomponent", params: withComponent(nil, req("subLogicalPath", kString), req("subName", kString),
		opt("repair", kBool, "false")),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.AddRestoreSubcomponent(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.str(4), a.str(5), a.boolean(6))
		}},
	{name: "SetRestoreOptions", params: withComponent(nil, req("options", kString)),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetRestoreOptions(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.str(4))
		}},
	{name: "SetAdditionalRestores", params: withComponent(nil, req("additionalRestores", kBool)),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetAdditionalRestores(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.boolean(4))
		}},
	{name: "AddNewTarget", params: withComponent(nil, req("path", kString), req("filespec", kString), req("recursive", kBool),
		req("alternatePath", kString)),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.AddNewTarget(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.str(4), a.str(5), a.boolean(6), a.str(7))
		}},
	{name: "SetAuthoritativeRestore", params: withComponent(nil, req("authoritative", kBool)),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetAuthoritativeRestore(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.boolean(4))
		}},
	{name: "SetRollForward", params: withComponent(nil, req("rollForwardType", kRollForward), opt("rollForwardPoint", kString, "")),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetRollForward(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.rollForward(4), a.str(5))
		}},
	{name: "SetRestoreName", params: withComponent(nil, req("restoreName", kString)),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetRestoreName(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.str(4))
		}},
	{name: "PreRestore", async: true,
		start: func(ctx context.Context, r *runner, a args) (*client.Async, error) {
			return r.bc.PreRestore(ctx)
		}},
	{name: "SetFileRestoreStatus", params: withComponent(nil, req("status", kFileRestoreStatus)),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetFileRestoreStatus(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.fileRestoreStatus(4))
		}},
	{name: "AddAlternativeLocationMapping", params: withComponent(nil, req("path", kString), req("filespec", kString),
		req("recursive", kBool), req("destination", kString)),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.AddAlternativeLocationMapping(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.str(4), a.str(5), a.boolean(6), a.str(7))
		}},
	{name: "SetRangesFilePath", params: withComponent(nil, req("partialFileIndex", kIndex), req("rangesFile", kString)),
		run: func(ctx context.Context, r *runner, a args) (obj, error) {
			return nil, r.bc.SetRangesFilePath(ctx, a.guid(0), a.ct(1), a.str(2), a.str(3), a.index(4), a.str(5))
		}},
	{name: "PostRestore", async: true,
		start: func(ctx context.Context, r *runner, a args) (*client.Async, error) {
			return r.bc.PostRestore(ctx)
		}},
	// IVssAsync methods on a handle.
	{name: "Wait", params: []param{req("async", kHandle), opt("timeoutMs", kTimeout, "INFINITE")}},
	{name: "QueryStatus", params: []param{req("async", kHandle)}},
	{name: "Cancel", params: []param{req("async", kHandle)}},
}

func methodByName(name string) *method {
	for _, m := range methods {
		if m.name == name {
			return m
		}
	}
	return nil
}

func asyncNames() []string {
	var out []string
	for _, m := range methods {
		if m.async {
			out = append(out, m.name)
		}
	}
	return out
}

// exec runs a parsed line and returns its result. A failure is a result
// too (its HRESULT has the failure bit); the caller decides whether to go
// on.
func (r *runner) exec(ctx context.Context, l *line) obj {
	m, a := l.m, args(l.args)
	switch m.name {
	case "Wait":
		return r.asyncResult(ctx, m.name, a.async(0), a.timeout(1), false)
	case "QueryStatus":
		return r.asyncResult(ctx, m.name, a.async(0), 0, true)
	case "Cancel":
		as := a.async(0)
		h, err := as.Cancel(ctx)
		if err != nil {
			return errResult(m.name, err).add("async_id", as.ID()).add("operation", as.Method())
		}
		return hresultFields(m.name, h, "").add("async_id", as.ID()).add("operation", as.Method())
	}
	if m.async {
		as, err := m.start(ctx, r, a)
		if err != nil {
			return errResult(m.name, err)
		}
		r.asyncs[as.ID()] = as
		r.vars["ASYNC"] = strconv.FormatUint(as.ID(), 10)
		if l.noWait {
			return hresultFields(m.name, vsserr.OK, "").
				add("async_status", vsserr.AsyncPending.Name()).add("async_id", as.ID())
		}
		return r.asyncResult(ctx, m.name, as, -1, false)
	}
	res, err := m.run(ctx, r, a)
	if err != nil {
		return append(errResult(m.name, err), res...)
	}
	return append(hresultFields(m.name, vsserr.OK, ""), res...)
}

func errResult(call string, err error) obj {
	return hresultFields(call, vsserr.Code(err), vsserr.Message(err))
}

// asyncResult waits for (or queries) an operation and reports it as D3 and
// D17 say: S_OK with VSS_S_ASYNC_FINISHED beside it when it succeeded, the
// operation's error as both the result and the async status when it
// failed (so a script that reads async_status never takes a failure for
// a success), VSS_S_ASYNC_CANCELLED when it was cancelled, S_OK with
// VSS_S_ASYNC_PENDING when it still runs.
func (r *runner) asyncResult(ctx context.Context, call string, as *client.Async, d time.Duration, query bool) obj {
	var (
		h   vsserr.HRESULT
		msg string
		err error
	)
	if query {
		h, msg, err = as.QueryStatus(ctx)
	} else {
		h, msg, err = as.WaitTimeout(ctx, d)
	}
	tail := obj{{"async_id", as.ID()}}
	if call != as.Method() {
		tail = tail.add("operation", as.Method())
	}
	if err != nil {
		return append(errResult(call, err), tail...)
	}
	code, status := vsserr.OK, vsserr.AsyncFinished
	switch {
	case h == vsserr.AsyncPending:
		status = vsserr.AsyncPending
	case h == vsserr.AsyncCancelled:
		code, status = h, h
	case h.Failed():
		code, status = h, h
	}
	return append(hresultFields(call, code, msg).add("async_status", status.Name()), tail...)
}

func (r *runner) getWriterMetadata(ctx context.Context, a args) (obj, error) {
	one := func(i int) (obj, error) {
		inst, x, err := r.bc.GetWriterMetadataXML(ctx, i)
		if err != nil {
			return nil, err
		}
		wmd, err := document.ParseWriterMetadata([]byte(x))
		if err != nil {
			return obj{{"index", i}, {"instance_id", guidText(inst)}, {"xml", x}}, err
		}
		n := strconv.Itoa(i + 1)
		r.vars["WRITER_ID_"+n] = guidText(wmd.Identity.WriterID)
		r.vars["INSTANCE_ID_"+n] = guidText(inst)
		r.vars["WRITER_ID"] = guidText(wmd.Identity.WriterID)
		r.vars["INSTANCE_ID"] = guidText(inst)
		return append(obj{{"index", i}, {"instance_id", guidText(inst)}}, wmdObj(wmd, x)...), nil
	}
	return r.listOrOne(ctx, a, r.bc.GetWriterMetadataCount, one)
}

func (r *runner) getWriterStatus(ctx context.Context, a args, ex bool) (obj, error) {
	one := func(i int) (obj, error) {
		ws, err := r.bc.GetWriterStatus(ctx, i)
		if err != nil {
			return nil, err
		}
		return writerStatusObj(i, ws, ex), nil
	}
	return r.listOrOne(ctx, a, r.bc.GetWriterStatusCount, one)
}

func (r *runner) getWriterComponents(ctx context.Context, a args) (obj, error) {
	one := func(i int) (obj, error) {
		wc, err := r.bc.GetWriterComponents(ctx, i)
		if err != nil {
			return nil, err
		}
		return append(obj{{"index", i}}, writerComponentsObj(wc)...), nil
	}
	return r.listOrOne(ctx, a, r.bc.GetWriterComponentsCount, one)
}

// listOrOne prints entry i as "writer", or, with no index, every entry
// under "writers" after their "count".
func (r *runner) listOrOne(ctx context.Context, a args, count func(context.Context) (int, error), one func(int) (obj, error)) (obj, error) {
	if a[0] != nil {
		if i, ok := a[0].(int); ok {
			w, err := one(i)
			if w == nil {
				return nil, err
			}
			return obj{{"writer", w}}, err
		}
	}
	n, err := count(ctx)
	if err != nil {
		return nil, err
	}
	list := make([]obj, 0, n)
	for i := range n {
		w, err := one(i)
		if w != nil {
			list = append(list, w)
		}
		if err != nil {
			return obj{{"count", n}, {"writers", list}}, err
		}
	}
	return obj{{"count", n}, {"writers", list}}, nil
}

func writerStatusObj(i int, ws client.WriterStatus, ex bool) obj {
	o := obj{{"index", i}, {"instance_id", guidText(ws.InstanceID)}, {"writer_id", guidText(ws.WriterID)},
		{"name", ws.Name}, {"instance_name", ws.InstanceName}}
	o = stateFields(o, "state", ws.State)
	o = hrFields(o, "failure", ws.Failure)
	if ex {
		o = hrFields(o, "application", ws.ApplicationHRESULT)
		o = o.add("application_message", ws.ApplicationMessage)
	}
	return o
}

// componentPath is how VSS writes a component's full name: logical path
// and name joined by a backslash, the name alone at the root.
func componentPath(logicalPath, name string) string {
	if logicalPath == "" {
		return name
	}
	return logicalPath + `\` + name
}

func wmdObj(w *document.WriterMetadata, x string) obj {
	comps := make([]obj, 0, len(w.Components))
	for _, c := range w.Components {
		comps = append(comps, wmdComponentObj(c))
	}
	return obj{{"writer_id", guidText(w.Identity.WriterID)}, {"name", w.Identity.FriendlyName},
		{"instance_name", w.Identity.InstanceName}, {"components", comps}, {"xml", x}}
}

func wmdComponentObj(c document.Component) obj {
	files := []obj{}
	add := func(kind string, fs []document.FileDesc) {
		for _, f := range fs {
			files = append(files, obj{{"kind", kind}, {"path", f.Path}, {"filespec", f.Filespec}, {"recursive", f.Recursive}})
		}
	}
	add("files", c.Files)
	add("database_files", c.DatabaseFiles)
	add("database_log_files", c.DatabaseLogFiles)
	return obj{{"component", componentPath(c.LogicalPath, c.Name)}, {"logical_path", c.LogicalPath},
		{"name", c.Name}, {"type", c.Type.String()}, {"caption", c.Caption}, {"selectable", c.Selectable},
		{"files", files}}
}

func writerComponentsObj(wc *document.WriterComponents) obj {
	comps := make([]obj, 0, len(wc.Components))
	for _, c := range wc.Components {
		o := obj{{"component", componentPath(c.LogicalPath, c.Name)}, {"logical_path", c.LogicalPath},
			{"name", c.Name}, {"type", c.Type.String()}, {"backup_succeeded", c.BackupSucceeded},
			{"backup_stamp", c.BackupStamp}, {"previous_backup_stamp", c.PreviousBackupStamp},
			{"backup_options", c.BackupOptions}}
		if c.BackupMetadata != nil {
			o = o.add("backup_metadata", *c.BackupMetadata)
		}
		comps = append(comps, restoreFields(o, &c))
	}
	return obj{{"instance_id", guidText(wc.InstanceID)}, {"writer_id", guidText(wc.WriterID)},
		{"instance_name", wc.InstanceName}, {"components", comps}}
}

// restoreFields adds what a restore reads and writes in a component
// (vss-reference §3.8): the requester's selection and settings, the
// writer's target and metadata, the results of the copy.
func restoreFields(o obj, c *document.ComponentState) obj {
	o = o.add("selected_for_restore", c.SelectedForRestore).add("restore_options", c.RestoreOptions).
		add("additional_restores", c.AdditionalRestores).add("restore_target", c.RestoreTarget.String()).
		add("file_restore_status", c.FileRestoreStatus.String())
	if c.RestoreMetadata != nil {
		o = o.add("restore_metadata", *c.RestoreMetadata)
	}
	if c.RollForwardType != vss.RFUndefined {
		o = o.add("roll_forward_type", c.RollForwardType.String()).add("roll_forward_point", c.RollForwardPoint)
	}
	if c.RestoreName != "" {
		o = o.add("restore_name", c.RestoreName)
	}
	if c.AuthoritativeRestore {
		o = o.add("authoritative_restore", true)
	}
	for _, m := range []struct{ key, msg string }{{"pre_restore_failure_msg", c.PreRestoreFailureMsg}, {"post_restore_failure_msg", c.PostRestoreFailureMsg}} {
		if m.msg != "" {
			o = o.add(m.key, m.msg)
		}
	}
	if len(c.RestoreSubcomponents) > 0 {
		subs := []obj{}
		for _, r := range c.RestoreSubcomponents {
			subs = append(subs, obj{{"component", componentPath(r.LogicalPath, r.Name)}, {"repair", r.Repair}})
		}
		o = o.add("restore_subcomponents", subs)
	}
	if len(c.NewTargets) > 0 {
		nt := []obj{}
		for _, f := range c.NewTargets {
			nt = append(nt, obj{{"path", f.Path}, {"filespec", f.Filespec}, {"recursive", f.Recursive}, {"alternate_path", f.AlternatePath}})
		}
		o = o.add("new_targets", nt)
	}
	if len(c.DirectedTargets) > 0 {
		dt := []obj{}
		for _, d := range c.DirectedTargets {
			dt = append(dt, obj{{"source_path", d.SourcePath}, {"source_filename", d.SourceFilename}, {"source_ranges", d.SourceRanges},
				{"destination_path", d.DestinationPath}, {"destination_filename", d.DestinationFilename}, {"destination_ranges", d.DestinationRanges}})
		}
		o = o.add("directed_targets", dt)
	}
	if len(c.AlternateLocationMappings) > 0 {
		am := []obj{}
		for _, m := range c.AlternateLocationMappings {
			am = append(am, obj{{"path", m.Path}, {"filespec", m.Filespec}, {"recursive", m.Recursive}, {"destination", m.Destination}})
		}
		o = o.add("alternate_location_mappings", am)
	}
	return o
}

func snapshotObj(p client.SnapshotProp) obj {
	created := ""
	if !p.Created.IsZero() {
		created = p.Created.UTC().Format(time.RFC3339Nano)
	}
	return obj{{"snapshot_id", guidText(p.SnapshotID)}, {"snapshot_set_id", guidText(p.SnapshotSetID)},
		{"snapshots_count", p.SnapshotsCount}, {"device_path", p.DevicePath}, {"original_volume", p.OriginalVolume},
		{"originating_machine", p.OriginatingMachine}, {"service_machine", p.ServiceMachine},
		{"exposed_name", p.ExposedName}, {"exposed_path", p.ExposedPath},
		{"provider_id", guidText(p.ProviderID)}, {"provider_name", p.ProviderName},
		{"attributes", p.Attributes.String()}, {"attributes_value", fmt.Sprintf("0x%08X", uint32(p.Attributes))},
		{"created", created}, {"status", p.Status.String()}, {"context", p.Context.String()},
		{"auto_release", p.AutoRelease}, {"consistency", p.Consistency}, {"consistency_reason", p.ConsistencyReason},
		{"session_id", guidText(p.SessionID)}}
}

func providerObj(p client.ProviderProp) obj {
	return obj{{"provider_id", guidText(p.ProviderID)}, {"name", p.Name}, {"type", p.Type.String()},
		{"type_value", int32(p.Type)}, {"version", p.Version}, {"version_id", guidText(p.VersionID)}, {"class_id", guidText(p.ClassID)}}
}

func releaseResult(rel client.Released, err error) obj {
	if err != nil {
		return errResult("Release", err)
	}
	return hresultFields("Release", vsserr.OK, "").add("aborted", rel.Aborted).
		add("shutdown_writers", guidsText(rel.ShutdownWriters)).add("deleted_snapshots", guidsText(rel.DeletedSnapshots))
}
