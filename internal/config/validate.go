package config

import (
	"reflect"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Validate checks c as Parse does after decoding: every timeout in range,
// the rules between values, and the access lists. Use it on a Config built
// or changed in code; Parse already calls it.
func (c Config) Validate() error {
	return validate(&c, nil)
}

// validate is the one place for rules that go beyond a single value's type.
// doc, when not nil, locates errors in the file the values came from.
func validate(c *Config, doc *document) error {
	if err := checkDurations(reflect.ValueOf(c).Elem(), "", doc); err != nil {
		return err
	}

	t := &c.Timeouts
	// The kernel hold happens inside the writers' freeze window; a hold that
	// could outlast it would keep filesystems frozen after writers have been
	// told their freeze is over. The value the operator most likely just
	// changed is the one set in the file, hold before freeze.
	if t.Hold >= t.Freeze {
		return doc.errorAt([]string{"timeouts.hold", "timeouts.freeze"},
			"timeouts.hold (%s) must be shorter than timeouts.freeze (%s): a filesystem hold cannot outlast the writers' freeze window",
			t.Hold, t.Freeze)
	}

	if err := checkAccess(&c.Access, doc); err != nil {
		return err
	}
	if err := checkProviders(c, doc); err != nil {
		return err
	}
	if err := checkMetrics(c.Metrics, doc); err != nil {
		return err
	}
	if err := checkDebug(c.Debug, doc); err != nil {
		return err
	}
	if err := checkCluster(c.Cluster, doc); err != nil {
		return err
	}
	return checkSamba(c, doc)
}

// checkProviders checks limits, each provider's section by its own rules
// (in its package; exec's are given the hold its commit must fit in), and
// the rules between sections: provider names unique and known in the
// order. The checks run in the order they always have, so that a file
// with several problems still gets the same first error.
func checkProviders(c *Config, doc *document) error {
	if c.Limits.MaxSnapshotsPerVolume < 1 {
		return doc.errorAt([]string{"limits.max_snapshots_per_volume"}, "limits.max_snapshots_per_volume must be at least 1")
	}
	// Fewer would not hold even the events of one large backup, which
	// lvss backup reads back for its summary.
	if c.Limits.MaxEvents < 1000 {
		return doc.errorAt([]string{"limits.max_events"}, "limits.max_events must be at least 1000")
	}
	p := &c.Providers
	if err := p.Btrfs.Validate("providers.btrfs"); err != nil {
		return doc.locate(err)
	}
	known := map[string]bool{"btrfs": true, "copy": true}
	for i, e := range p.Exec {
		k := "providers.exec" + index(i)
		if e.Name == "" || known[e.Name] || e.Name == "exec" {
			return doc.errorAt([]string{k + ".name", k}, "%s.name: %q must be set and differ from btrfs, copy, exec and the other exec providers", k, e.Name)
		}
		known[e.Name] = true
		if err := e.Validate(k, c.Timeouts.Hold.D()); err != nil {
			return doc.locate(err)
		}
	}
	if err := p.Copy.Validate("providers.copy"); err != nil {
		return doc.locate(err)
	}
	for i, n := range p.Order {
		if !known[n] && n != "exec" {
			return doc.errorAt([]string{"providers.order" + index(i), "providers.order"}, "providers.order: unknown provider %q", n)
		}
	}
	return nil
}

// checkDurations applies the Duration range to every Duration field by
// reflection, so a timeout added later is covered without touching this.
func checkDurations(v reflect.Value, prefix string, doc *document) error {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if !f.IsExported() || tag == "" || tag == "-" {
				continue
			}
			if err := checkDurations(v.Field(i), appendKey(prefix, tag), doc); err != nil {
				return err
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			if err := checkDurations(v.Index(i), prefix+index(i), doc); err != nil {
				return err
			}
		}
	case reflect.Pointer:
		if !v.IsNil() {
			return checkDurations(v.Elem(), prefix, doc)
		}
	default:
		if d, ok := v.Interface().(Duration); ok {
			if err := d.Check(); err != nil {
				return doc.errorAt([]string{prefix}, "%s: %v", prefix, err)
			}
		}
	}
	return nil
}

// checkAccess checks every account list of [access] and the writer
// class bindings: each binding names a class ID or a name (or both), the
// class ID is a GUID, and no class or name is bound twice, since two
// bindings of one class would leave it unclear who may register it.
func checkAccess(a *Access, doc *document) error {
	lists := []struct {
		names     []string
		key, what string
	}{
		{a.Groups, "access.groups", "group"}, {a.Users, "access.users", "user"},
		{a.RequesterGroups, "access.requester_groups", "group"}, {a.RequesterUsers, "access.requester_users", "user"},
		{a.WriterGroups, "access.writer_groups", "group"}, {a.WriterUsers, "access.writer_users", "user"},
		{a.AdminGroups, "access.admin_groups", "group"}, {a.AdminUsers, "access.admin_users", "user"},
	}
	for _, l := range lists {
		if err := checkNames(l.names, l.key, l.what, doc); err != nil {
			return err
		}
	}
	classes, names := map[uuid.UUID]string{}, map[string]string{}
	for i := range a.WriterClasses {
		wc := &a.WriterClasses[i]
		k := "access.writer_class" + index(i)
		if wc.ClassID == "" && wc.Name == "" {
			return doc.errorAt([]string{k + ".users", k + ".groups", k},
				"%s: set class_id (a writer class GUID) or name (a writer name), or both: a binding must say which writers it binds", k)
		}
		if wc.ClassID != "" {
			id, err := uuid.Parse(wc.ClassID)
			if err != nil || id == uuid.Nil || len(wc.ClassID) != 36 {
				return doc.errorAt([]string{k + ".class_id"},
					"%s.class_id: %q is not a writer class ID (a GUID such as 7fb0b9cd-c65d-4295-9e38-eda7166ef992; lvss list writers shows them)", k, wc.ClassID)
			}
			if prev, dup := classes[id]; dup {
				return doc.errorAt([]string{k + ".class_id"}, "%s.class_id: class %s is already bound by %s", k, id, prev)
			}
			classes[id] = k
		}
		if wc.Name != "" {
			// Writer names are free text ("System Writer"); only what no
			// Hello could carry is refused.
			if strings.TrimSpace(wc.Name) == "" || strings.ContainsFunc(wc.Name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				return doc.errorAt([]string{k + ".name"}, "%s.name: %q is not a writer name", k, wc.Name)
			}
			n := strings.ToLower(wc.Name)
			if prev, dup := names[n]; dup {
				return doc.errorAt([]string{k + ".name"}, "%s.name: writer name %q is already bound by %s", k, wc.Name, prev)
			}
			names[n] = k
		}
		if err := checkNames(wc.Groups, k+".groups", "group", doc); err != nil {
			return err
		}
		if err := checkNames(wc.Users, k+".users", "user", doc); err != nil {
			return err
		}
	}
	return nil
}

// checkNames refuses entries that could never match an account, since a
// typo there would silently lock out the people it was meant to admit.
func checkNames(names []string, key, what string, doc *document) error {
	for i, n := range names {
		k := key + index(i)
		if why := badName(n, what); why != "" {
			return doc.errorAt([]string{k, key}, "%s: %s", k, why)
		}
	}
	return nil
}

// badName says why n cannot name a user or group (what), or "" if it
// can. Numeric names are uids (or gids) and must fit one.
func badName(n, what string) string {
	if n == "" {
		return "empty " + what + " name"
	}
	if strings.ContainsFunc(n, func(r rune) bool {
		return r <= ' ' || r == ':' || r == ',' || r == '/' || r == 0x7f
	}) {
		return strconv.Quote(n) + " is not a valid " + what + " name"
	}
	if isDigits(n) {
		// 4294967295 is (uid_t)-1, which means "no change" to the
		// kernel and is never a real id.
		if id, err := strconv.ParseUint(n, 10, 32); err != nil || id == 1<<32-1 {
			return n + " is not a valid numeric id"
		}
	}
	return ""
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
