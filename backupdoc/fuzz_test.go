package backupdoc

import (
	"bytes"
	"os"
	"testing"

	"github.com/lvss/lvss/vsserr"
)

// FuzzRead: any bytes given as a backup archive either read, or are
// refused with one of the codes the package documents (E_INVALIDARG for
// what is not an lvss archive, the XML codes for a damaged document) —
// never a panic, never VSS_E_UNEXPECTED; and an archive that reads is one
// Write can write again, which reads back the same.
func FuzzRead(f *testing.F) {
	if b, err := os.ReadFile("testdata/sample.tar"); err == nil {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 1024))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Read(bytes.NewReader(data))
		if err != nil {
			switch vsserr.Code(err) {
			case vsserr.InvalidArg, vsserr.InvalidXMLDocument, vsserr.CorruptXMLDocument:
			default:
				t.Fatalf("refused with %s: %v", vsserr.Code(err), err)
			}
			return
		}
		var out bytes.Buffer
		if err := Write(&out, a.Manifest, a.BCDXML, a.WMDXML); err != nil {
			t.Fatalf("read, but cannot be written again: %v", err)
		}
		if _, err := Read(bytes.NewReader(out.Bytes())); err != nil {
			t.Fatalf("written again, it does not read: %v", err)
		}
	})
}

// FuzzReadAny: the same for ReadAny, seeded with both kinds of archive:
// any bytes either read as one kind or are refused with a documented
// code, and a cluster archive that reads can be written again.
func FuzzReadAny(f *testing.F) {
	for _, name := range []string{"testdata/sample.tar", "testdata/cluster.tar"} {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, c, err := ReadAny(bytes.NewReader(data))
		if err != nil {
			switch vsserr.Code(err) {
			case vsserr.InvalidArg, vsserr.InvalidXMLDocument, vsserr.CorruptXMLDocument:
			default:
				t.Fatalf("refused with %s: %v", vsserr.Code(err), err)
			}
			return
		}
		if (a == nil) == (c == nil) {
			t.Fatalf("ReadAny returned %v and %v", a, c)
		}
		if c == nil {
			return
		}
		hosts := map[string][]byte{}
		for _, h := range c.Hosts {
			hosts[h.Host] = h.Data
		}
		var out bytes.Buffer
		if err := WriteCluster(&out, c.Manifest, hosts); err != nil {
			t.Fatalf("read, but cannot be written again: %v", err)
		}
		if _, err := ReadCluster(bytes.NewReader(out.Bytes())); err != nil {
			t.Fatalf("written again, it does not read: %v", err)
		}
	})
}
