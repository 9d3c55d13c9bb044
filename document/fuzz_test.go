package document

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/lvss/lvss/vsserr"
)

// seed adds every testdata document (of both kinds: each parser must also
// cope with the other's documents) and the error-table bases.
func seed(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.xml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(okWMD))
	f.Add([]byte(okBCD))
}

// checkParseError: a refusal is always one of the two document errors and
// says why.
func checkParseError(t *testing.T, err error) {
	code := vsserr.Code(err)
	if code != vsserr.CorruptXMLDocument && code != vsserr.InvalidXMLDocument {
		t.Fatalf("unexpected error code %v: %v", code, err)
	}
	if vsserr.Message(err) == "" {
		t.Fatalf("error without a reason: %v", err)
	}
}

func FuzzParseWriterMetadata(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := ParseWriterMetadata(data)
		if err != nil {
			checkParseError(t, err)
			return
		}
		out, err := w.Marshal()
		if err != nil {
			t.Fatalf("parsed but cannot marshal: %v", err)
		}
		again, err := ParseWriterMetadata(out)
		if err != nil {
			t.Fatalf("marshalled output does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(w, again) {
			t.Fatalf("value changed across a round trip:\n%+v\n%+v", w, again)
		}
		if out2, err := again.Marshal(); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("not a fixed point: %v", err)
		}
		if !reflect.DeepEqual(w.Clone(), w) {
			t.Fatal("Clone differs")
		}
	})
}

func FuzzParseBackupComponents(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBackupComponents(data)
		if err != nil {
			checkParseError(t, err)
			return
		}
		out, err := b.Marshal()
		if err != nil {
			t.Fatalf("parsed but cannot marshal: %v", err)
		}
		again, err := ParseBackupComponents(out)
		if err != nil {
			t.Fatalf("marshalled output does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(b, again) {
			t.Fatalf("value changed across a round trip:\n%+v\n%+v", b, again)
		}
		if out2, err := again.Marshal(); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("not a fixed point: %v", err)
		}
		if !reflect.DeepEqual(b.Clone(), b) {
			t.Fatal("Clone differs")
		}
		// Every writer's view, edited with nothing changed, merges back
		// in every phase and leaves the document as it was.
		for _, w := range b.Writers {
			view := b.ForWriter(w.InstanceID)
			for p := PhaseReadOnly; p <= PhasePostRestore; p++ {
				c := b.Clone()
				if err := c.ApplyWriterEdits(p, w.InstanceID, &view.Writers[0]); err != nil {
					t.Fatalf("unchanged edit refused in %v: %v", p, err)
				}
				if !reflect.DeepEqual(c, b) {
					t.Fatalf("unchanged edit changed the document in %v", p)
				}
			}
		}
	})
}
