package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/client"
	"github.com/lvss/lvss/vss"
)

// writeJSON and list shadows' streamed array write what encoding/json's
// Encoder (EscapeHTML off, two-space indent) wrote before they had a fast
// path of their own, byte for byte: every kind of value an obj holds, and
// strings that need escaping of every kind.
func TestAppendIndentedIsEncodingJSON(t *testing.T) {
	tricky := []string{"", "plain /srv/data", `quote " and \ backslash`, "<html> & 'x'", "tab\there\nnewline\r\x00\x1f\x7f",
		"é ü 中文 🙂", "line\u2028sep\u2029", "bad \xff\xfe utf-8", "{\"json\":[1,2]}"}
	sn := client.SnapshotProp{SnapshotID: uuid.New(), SnapshotSetID: uuid.New(), SnapshotsCount: 2, OriginalVolume: "/srv",
		DevicePath: "/srv/.lvss-snapshots/x", ProviderName: "btrfs", ProviderID: uuid.New(), Context: vss.CtxClientAccessible,
		Attributes: vss.Attributes(vss.CtxClientAccessible), AutoRelease: true, Created: time.Now(), Consistency: "crash"}
	var list []obj
	for _, s := range tricky {
		list = append(list, obj{{s, s}, {"n", -42}, {"u32", uint32(7)}, {"u64", uint64(1 << 63)}, {"i32", int32(-3)},
			{"i64", int64(9)}, {"t", true}, {"f", false}, {"float", 2.5}, {"nil", nil}, {"map", map[string]int{"b": 2, "a": 1}},
			{"strs", []string{s, "x"}}, {"nilstrs", []string(nil)}, {"emptystrs", []string{}},
			{"objs", []obj{{{"inner", s}}, {}}}, {"nilobjs", []obj(nil)}, {"o", obj{{"deep", obj{{"deeper", []string{s}}}}}},
			{"empty", obj{}}, {"raw", json.RawMessage(`{"a": [1, 2]}`)}})
	}
	list = append(list, shadowObj(sn), obj{})
	for _, in := range [][]obj{nil, {}, list[:1], list} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		v := in
		if v == nil {
			v = []obj{}
		}
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := writeJSON(&got, in); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%d objects:\n got  %q\n want %q", len(in), got.String(), want.String())
		}
	}
}
