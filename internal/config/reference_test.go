package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// referenceBlock is the first ```toml block of docs/configuration.md: every
// key with its default. The Debian package installs it, commented out, as
// /etc/lvss/lvssd.toml (packaging/default-config).
func referenceBlock(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n```toml\n")
	block, _, ok2 := strings.Cut(rest, "\n```\n")
	if !ok || !ok2 {
		t.Fatal("docs/configuration.md has no ```toml block")
	}
	return block + "\n"
}

// The reference cannot drift from the code: read as a config file it is
// exactly Default(), and it names every key Config has (keys of tables
// that are off by default, such as [[providers.exec]], in comments).
func TestReferenceIsTheDefaults(t *testing.T) {
	block := referenceBlock(t)
	cfg, err := Parse("docs/configuration.md", []byte(block))
	if err != nil {
		t.Fatalf("the reference block does not parse: %v", err)
	}
	def := Default()
	got, want := reflect.ValueOf(&cfg).Elem(), reflect.ValueOf(&def).Elem()
	emptyToNil(got)
	emptyToNil(want)
	if !reflect.DeepEqual(got.Interface(), want.Interface()) {
		t.Errorf("docs/configuration.md's reference is not Default():\n doc:  %+v\n code: %+v", got.Interface(), want.Interface())
	}
	for _, key := range keys(reflect.TypeOf(Config{}), "") {
		section, leaf := "", key
		if i := strings.LastIndex(key, "."); i >= 0 {
			section, leaf = key[:i], key[i+1:]
		}
		if section != "" && !regexp.MustCompile(`(?m)^(# )?\[{1,2}`+regexp.QuoteMeta(section)+`\]{1,2}`).MatchString(block) {
			t.Errorf("docs/configuration.md's reference has no section [%s] (for %s)", section, key)
		}
		if !regexp.MustCompile(`(?m)^(# )?` + regexp.QuoteMeta(leaf) + `\s*=`).MatchString(block) {
			t.Errorf("docs/configuration.md's reference does not show the key %s", key)
		}
	}
}

// keys lists the dotted key of every leaf of a config type, by its toml
// tags; tables inside arrays of tables ([[...]]) are named like tables.
func keys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft.NumField() > 0 && !ft.Implements(textUnmarshaler) && !reflect.PointerTo(ft).Implements(textUnmarshaler) {
			out = append(out, keys(ft, key)...)
			continue
		}
		out = append(out, key)
	}
	return out
}

// emptyToNil makes empty slices nil, as Default() leaves them: "users = []"
// in the reference and no users in the code are the same default.
func emptyToNil(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Field(i).CanSet() {
				emptyToNil(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 && !v.IsNil() {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		for i := 0; i < v.Len(); i++ {
			emptyToNil(v.Index(i))
		}
	}
}
