package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzConfiguredWriter reads a writer unit's NAME.conf, any name and any
// content, as lvss doctor does: one entry per file, named after the file,
// and the writer it runs found among the arguments or an error said,
// never a panic.
func FuzzConfiguredWriter(f *testing.F) {
	f.Add("pg-main", []byte("# the subscribed one\n--log-level=debug\nexec\n--name\npg\n--instance-name=main\n--component\ndata=/srv\n"))
	f.Add("shop", []byte("postgres\n--instance-name\nshop\n"))
	f.Add("empty", []byte("--log-format\njson\n"))
	f.Add("x", []byte("--args-file=/etc/passwd\n"))
	f.Add("ünï code", []byte("--name\n"))
	f.Add("long", []byte(strings.Repeat("a", 1<<17)))
	f.Fuzz(func(t *testing.T, name string, content []byte) {
		if name == "" || strings.ContainsAny(name, "/\x00") || len(name) > 200 {
			return
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name+".conf"), content, 0o644); err != nil {
			return
		}
		cws := readConfiguredWriters(dir)
		if len(cws) != 1 {
			t.Fatalf("%d entries for one file", len(cws))
		}
		cw := cws[0]
		if cw.unit != "lvss-writer@"+name+".service" || cw.file != filepath.Join(dir, name+".conf") {
			t.Fatalf("unit %q file %q for %q", cw.unit, cw.file, name)
		}
		if cw.err == nil && cw.kind != "" && cw.name == "" {
			t.Fatalf("writer %q without a name", cw.kind)
		}
		_ = configuredWriterFindings(cws, nil)
	})
}
