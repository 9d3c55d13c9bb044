package catalog

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vsserr"
)

// TestQueryEvents: the first or the newest matching events, after a
// sequence number, always oldest first; Limit counts matches only.
func TestQueryEvents(t *testing.T) {
	db := openTest(t)
	if got, last, err := db.QueryEvents(EventQuery{}); err != nil || len(got) != 0 || last != 0 {
		t.Fatalf("empty log: %v, last %d, %v", got, last, err)
	}
	for i := 1; i <= 10; i++ {
		e := Event{Time: base.Add(time.Duration(i) * time.Second), Message: fmt.Sprint("event ", i)}
		if i%3 == 0 {
			e.Level, e.Code = LevelError, vsserr.ProviderVeto
		}
		if _, err := db.AppendEvent(e); err != nil {
			t.Fatal(err)
		}
	}
	errorsOnly := func(e Event) bool { return e.Level == LevelError }
	seqs := func(ev []Event) []uint64 {
		var s []uint64
		for _, e := range ev {
			s = append(s, e.Seq)
		}
		return s
	}
	for _, c := range []struct {
		name string
		q    EventQuery
		want []uint64
	}{
		{"all", EventQuery{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"first 3", EventQuery{Limit: 3}, []uint64{1, 2, 3}},
		{"newest 3", EventQuery{Limit: 3, Newest: true}, []uint64{8, 9, 10}},
		{"newest without a limit is all", EventQuery{Newest: true}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"errors", EventQuery{Match: errorsOnly}, []uint64{3, 6, 9}},
		{"first 2 errors", EventQuery{Match: errorsOnly, Limit: 2}, []uint64{3, 6}},
		{"newest 2 errors", EventQuery{Match: errorsOnly, Limit: 2, Newest: true}, []uint64{6, 9}},
		{"newest 5 errors after 4", EventQuery{Match: errorsOnly, Limit: 5, Newest: true, AfterSeq: 4}, []uint64{6, 9}},
		{"after 7", EventQuery{AfterSeq: 7}, []uint64{8, 9, 10}},
		{"after the end", EventQuery{AfterSeq: 1<<64 - 1}, nil},
		{"none match", EventQuery{Match: func(Event) bool { return false }, Limit: 3, Newest: true}, nil},
	} {
		got, last, err := db.QueryEvents(c.q)
		if err != nil || !reflect.DeepEqual(seqs(got), c.want) || last != 10 {
			t.Errorf("%s: %v, last %d, %v; want %v, last 10", c.name, seqs(got), last, err, c.want)
		}
	}
	got, _, _ := db.QueryEvents(EventQuery{Match: errorsOnly, Limit: 1, Newest: true})
	if len(got) != 1 || got[0].Code != vsserr.ProviderVeto || got[0].Message != "event 9" || !got[0].Time.Equal(base.Add(9*time.Second)) {
		t.Errorf("decoded %+v", got)
	}
}

// TestVolumeCounts: one entry per volume, in path order, with its count
// and its newest snapshot; volumes that share a prefix stay apart.
func TestVolumeCounts(t *testing.T) {
	db := openTest(t)
	if vc, err := db.VolumeCounts(); err != nil || len(vc) != 0 {
		t.Fatalf("empty catalog: %+v %v", vc, err)
	}
	set := uuid.New()
	var newest Snapshot
	var all []Snapshot
	for i := 0; i < 3; i++ {
		s := snap(set, uuid.Nil, "/data", base.Add(time.Duration(3-i)*time.Hour))
		s.ProviderName = fmt.Sprint("p", i)
		if i == 0 {
			newest = s
		}
		all = append(all, s)
	}
	d2 := snap(set, uuid.Nil, "/data2", base)
	all = append(all, d2, snap(set, uuid.Nil, "", base))
	if err := db.PutSnapshots(all...); err != nil {
		t.Fatal(err)
	}
	vc, err := db.VolumeCounts()
	if err != nil {
		t.Fatal(err)
	}
	if len(vc) != 2 || vc[0].Volume != "/data" || vc[0].Snapshots != 3 || vc[0].Newest.ID != newest.ID || vc[0].Newest.ProviderName != "p0" ||
		vc[1].Volume != "/data2" || vc[1].Snapshots != 1 || vc[1].Newest.ID != d2.ID {
		t.Fatalf("VolumeCounts = %+v", vc)
	}
	if err := db.DeleteSnapshot(newest.ID); err != nil {
		t.Fatal(err)
	}
	if vc, _ := db.VolumeCounts(); len(vc) != 2 || vc[0].Snapshots != 2 || vc[0].Newest.ProviderName != "p1" {
		t.Fatalf("after a delete: %+v", vc)
	}
}
