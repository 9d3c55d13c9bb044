package document

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lvss/lvss/internal/testenv"
	"github.com/lvss/lvss/vsserr"
)

// An oversized input is refused before any parsing: quickly and without
// allocating anything near its size.
func TestHugeInputRefusedCheaply(t *testing.T) {
	huge := make([]byte, 100<<20)
	copy(huge, okWMD)
	for _, parse := range []func([]byte) error{
		func(b []byte) error { _, err := ParseWriterMetadata(b); return err },
		func(b []byte) error { _, err := ParseBackupComponents(b); return err },
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		err := parse(huge)
		elapsed := time.Since(start)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, vsserr.InvalidXMLDocument) || !strings.Contains(err.Error(), "the limit is 67108864 bytes (64 MiB)") {
			t.Fatalf("got %v", err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
			t.Errorf("refusing 100 MiB allocated %d bytes", grew)
		}
		if elapsed > 100*time.Millisecond {
			t.Errorf("refusing took %v", elapsed)
		}
	}
	allocs := testing.AllocsPerRun(10, func() { _, _ = ParseWriterMetadata(huge) })
	if allocs > 10 {
		t.Errorf("%v allocations to refuse an oversized input", allocs)
	}
}

func TestDeepNestingRefused(t *testing.T) {
	// Far deeper than MaxDepth and never closed: the parser must stop at
	// the cap instead of tracking every open element.
	open := strings.Repeat("<X>", 1_000_000)
	data := []byte(strings.Replace(okWMD, "<BACKUP_LOCATIONS>", "<BACKUP_LOCATIONS>"+open, 1))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := ParseWriterMetadata(data)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, vsserr.InvalidXMLDocument) || !strings.Contains(err.Error(), "nesting deeper than 32 elements") ||
		!posRE.MatchString(err.Error()) {
		t.Fatalf("got %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<10 {
		t.Errorf("refusing deep nesting allocated %d bytes", grew)
	}
	// Nesting inside an unknown element counts too.
	in := strings.Replace(okBCD, "<COMPONENT ", strings.Repeat("<EXT>", MaxDepth)+"<COMPONENT ", 1)
	if _, err := ParseBackupComponents([]byte(in)); !errors.Is(err, vsserr.InvalidXMLDocument) {
		t.Fatalf("got %v", err)
	}
}

func TestElementCountCapped(t *testing.T) {
	if testing.Short() {
		testenv.SkipIfShort(t, "reads a million elements")
	}
	in := strings.Replace(okWMD, "<BACKUP_LOCATIONS>", "<BACKUP_LOCATIONS>"+strings.Repeat("<X/>", MaxElements), 1)
	_, err := ParseWriterMetadata([]byte(in))
	if !errors.Is(err, vsserr.InvalidXMLDocument) || !strings.Contains(err.Error(), "more than 1048576 elements") {
		t.Fatalf("got %v", err)
	}
}

func TestAttributeCaps(t *testing.T) {
	long := strings.Repeat("a", MaxAttributeLength+1)
	in := strings.Replace(okBCD, `componentType="filegroup">`, `componentType="filegroup" backupStamp="`+long+`">`, 1)
	_, err := ParseBackupComponents([]byte(in))
	if !errors.Is(err, vsserr.InvalidXMLDocument) || !strings.Contains(err.Error(), "attribute backupStamp is 8388609 bytes") {
		t.Fatalf("got %v", err)
	}
	// At the cap it is fine.
	in = strings.Replace(okBCD, `componentType="filegroup">`, `componentType="filegroup" backupStamp="`+long[1:]+`">`, 1)
	if _, err := ParseBackupComponents([]byte(in)); err != nil {
		t.Fatal(err)
	}

	var many bytes.Buffer
	for i := range MaxAttributes + 1 {
		many.WriteString(" a")
		many.WriteString(strings.Repeat("x", i))
		many.WriteString(`="1"`)
	}
	in = strings.Replace(okWMD, `<FILE_GROUP `, `<FILE_GROUP`+many.String()+` `, 1)
	_, err = ParseWriterMetadata([]byte(in))
	if !errors.Is(err, vsserr.InvalidXMLDocument) || !strings.Contains(err.Error(), "more than 128 attributes") {
		t.Fatalf("got %v", err)
	}
}

// Whatever Parse accepts, Marshal can write: an input under the size limit
// whose written form would exceed it (quotes read from single-quoted
// attributes are written as &quot;) is refused by Parse.
func TestParseRefusesWhatCannotBeWritten(t *testing.T) {
	if testing.Short() {
		testenv.SkipIfShort(t, "builds a 16 MiB document")
	}
	quotes := strings.Repeat(`"`, MaxAttributeLength)
	in := strings.Replace(okWMD, `<FILE_GROUP componentName="c">`,
		`<FILE_GROUP componentName="c" caption='`+quotes+`'/><FILE_GROUP componentName="d" caption='`+quotes+`'>`, 1)
	_, err := ParseWriterMetadata([]byte(in))
	if !errors.Is(err, vsserr.InvalidXMLDocument) || !strings.Contains(err.Error(), "written document exceeds the limit") {
		t.Fatalf("got %v", err)
	}
	// One such attribute fits.
	in = strings.Replace(okWMD, `<FILE_GROUP componentName="c">`, `<FILE_GROUP componentName="c" caption='`+quotes+`'>`, 1)
	w, err := ParseWriterMetadata([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Marshal(); err != nil {
		t.Fatal(err)
	}
}
