package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"
)

func TestDefaults(t *testing.T) {
	c := Default()
	want := map[string]time.Duration{
		"Identify": 30 * time.Second, "PrepareBackup": 60 * time.Second,
		"PrepareSnapshot": 120 * time.Second, "Freeze": 60 * time.Second,
		"Thaw": 60 * time.Second, "PostSnapshot": 60 * time.Second,
		"BackupComplete": 60 * time.Second, "BackupShutdown": 30 * time.Second,
		"Abort": 30 * time.Second, "Restore": 120 * time.Second,
		"Hold": 10 * time.Second, "CreationLease": 10 * time.Minute,
		"RequesterSend": 30 * time.Second, "ProviderCall": 120 * time.Second,
	}
	v := reflect.ValueOf(c.Timeouts)
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		w, ok := want[name]
		if !ok {
			t.Errorf("Timeouts.%s has no expected default in this test", name)
			continue
		}
		if got := v.Field(i).Interface().(Duration).D(); got != w {
			t.Errorf("Timeouts.%s = %v, want %v", name, got, w)
		}
	}
	if want := (Access{Groups: []string{"lvss"}, Users: []string{}, RequesterGroups: []string{}, RequesterUsers: []string{},
		WriterGroups: []string{}, WriterUsers: []string{}, AdminGroups: []string{}, AdminUsers: []string{},
		WriterClasses: []WriterClass{}}); !reflect.DeepEqual(c.Access, want) {
		t.Errorf("Access = %+v", c.Access)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	// Default must hand out fresh slices: callers may append to them.
	c.Access.Groups[0] = "changed"
	if Default().Access.Groups[0] != "lvss" {
		t.Error("Default shares its Groups slice")
	}
}

func TestParseOverlay(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		edit func(*Config) // applied to Default() to get the expectation
	}{
		{"empty", "", func(*Config) {}},
		{"comments only", "# nothing here\n\n  # still nothing\n", func(*Config) {}},
		{"empty tables", "[timeouts]\n[access]\n", func(*Config) {}},
		{"one timeout", "[timeouts]\nfreeze = \"1m30s\"\n", func(c *Config) {
			c.Timeouts.Freeze = Duration(90 * time.Second)
		}},
		{"dotted keys", "timeouts.hold = \"2s\"\ntimeouts.creation_lease = \"1h\"\n", func(c *Config) {
			c.Timeouts.Hold = Duration(2 * time.Second)
			c.Timeouts.CreationLease = Duration(time.Hour)
		}},
		{"inline table", "timeouts = { abort = \"5s\", restore = \"24h\" }\n", func(c *Config) {
			c.Timeouts.Abort = Duration(5 * time.Second)
			c.Timeouts.Restore = Duration(24 * time.Hour)
		}},
		{"groups replace the default", "[access]\ngroups = [\"backup\", \"wheel\"]\nusers = [\"alice\", \"1001\"]\n", func(c *Config) {
			c.Access.Groups = []string{"backup", "wheel"}
			c.Access.Users = []string{"alice", "1001"}
		}},
		{"no groups at all", "[access]\ngroups = []\n", func(c *Config) {
			c.Access.Groups = []string{}
		}},
		{"roles and writer classes", `[access]
requester_groups = ["backup"]
requester_users = ["61001"]
writer_groups = ["61200"]
writer_users = ["redis"]
admin_groups = ["adm"]
admin_users = ["61300"]
[[access.writer_class]]
class_id = "7fb0b9cd-c65d-4295-9e38-eda7166ef992"
name = "postgres"
users = ["postgres"]
[[access.writer_class]]
name = "System Writer"
groups = ["61400"]
[[access.writer_class]]
class_id = "5d1e5c9b-340c-4dc2-8583-b1f60ab181c3"
`, func(c *Config) {
			a := &c.Access
			a.RequesterGroups, a.RequesterUsers = []string{"backup"}, []string{"61001"}
			a.WriterGroups, a.WriterUsers = []string{"61200"}, []string{"redis"}
			a.AdminGroups, a.AdminUsers = []string{"adm"}, []string{"61300"}
			a.WriterClasses = []WriterClass{
				{ClassID: "7fb0b9cd-c65d-4295-9e38-eda7166ef992", Name: "postgres", Users: []string{"postgres"}},
				{Name: "System Writer", Groups: []string{"61400"}},
				{ClassID: "5d1e5c9b-340c-4dc2-8583-b1f60ab181c3"},
			}
		}},
		{"CRLF line ends", "[timeouts]\r\nthaw = \"7s\"\r\n", func(c *Config) {
			c.Timeouts.Thaw = Duration(7 * time.Second)
		}},
		{"metrics on TCP", "[metrics]\nlisten = \"127.0.0.1:9177\"\n", func(c *Config) {
			c.Metrics.Listen = "127.0.0.1:9177"
		}},
		{"metrics on IPv6, any free port", "metrics.listen = \"[::1]:0\"\n", func(c *Config) {
			c.Metrics.Listen = "[::1]:0"
		}},
		{"metrics on a Unix socket", "[metrics]\nlisten = \"unix:/run/lvss/metrics.sock\"\nsocket_group = \"prometheus\"\n", func(c *Config) {
			c.Metrics = Metrics{Listen: "unix:/run/lvss/metrics.sock", SocketGroup: "prometheus"}
		}},
		{"metrics off", "[metrics]\nlisten = \"\"\n", func(*Config) {}},
		{"profiling on a Unix socket", "[debug]\nlisten = \"unix:/run/lvss/debug.sock\"\n", func(c *Config) {
			c.Debug.Listen = "unix:/run/lvss/debug.sock"
		}},
		{"remote exposure with Samba's defaults", "[samba]\nremote_exposure = true\n", func(c *Config) {
			c.Samba.RemoteExposure = true
		}},
		{"samba elsewhere", "[samba]\nconfig = \"/opt/samba/etc/smb.conf\"\nnet = \"/opt/samba/bin/net\"\nremote_exposure = true\n", func(c *Config) {
			c.Samba = Samba{Config: "/opt/samba/etc/smb.conf", Net: "/opt/samba/bin/net", RemoteExposure: true}
		}},
		{"previous versions and smb.conf", `[samba]
config = "/etc/samba/shares.conf"
[[previous_versions]]
path = "/srv/share"
[[previous_versions]]
path = "/srv/share/projects"
all_persistent = true
`, func(c *Config) {
			c.Samba.Config = "/etc/samba/shares.conf"
			c.PreviousVersions = []PreviousVersion{{Path: "/srv/share"}, {Path: "/srv/share/projects", AllPersistent: true}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("lvssd.toml", []byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			want := Default()
			tc.edit(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown key", "# lvssd\n\n[timeouts]\nfrezee = \"5s\"\n",
			`lvssd.toml:4:1: unknown key "timeouts.frezee"`},
		{"unknown top-level key", "hold = \"5s\"\n",
			`lvssd.toml:1:1: unknown key "hold"`},
		{"unknown table", "[timeoutz]\nhold = \"5s\"\n",
			`lvssd.toml:1:2: unknown table "timeoutz"`},
		{"unknown subtable", "[timeouts.writer]\nhold = \"5s\"\n",
			`lvssd.toml:1:11: unknown table "timeouts.writer"`},
		{"unknown dotted key", "timeouts.hold = \"5s\"\ntimeouts.bad = 1\n",
			`lvssd.toml:2:10: unknown key "timeouts.bad"`},
		{"unknown key in inline table", "timeouts = {hold = \"1s\", hodl = \"2s\"}\n",
			`lvssd.toml:1:26: unknown key "timeouts.hodl"`},
		{"field name instead of tag", "[timeouts]\nHold = \"5s\"\n",
			`lvssd.toml:2:1: unknown key "timeouts.Hold"`},
		{"quoted key", "[timeouts]\n\"a.b\" = 1\n",
			`lvssd.toml:2:1: unknown key "timeouts.\"a.b\""`},

		{"cluster host with a slash", "[cluster]\nhost = \"a/b\"\nendpoints = [\"http://10.0.0.1:2379\"]\n",
			`lvssd.toml:2:8: cluster.host: host name "a/b": want 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit`},
		{"cluster without endpoints", "[cluster]\nhost = \"db1\"\n",
			`lvssd.toml:2:8: cluster.endpoints: a cluster host needs etcd's client URLs`},
		{"cluster endpoint not a URL", "[cluster]\nhost = \"db1\"\nendpoints = [\"10.0.0.1:2379\"]\n",
			`lvssd.toml:3:14: cluster.endpoints: "10.0.0.1:2379" is not an http:// or https:// URL`},
		{"cluster cert without key", "[cluster]\nhost = \"db1\"\nendpoints = [\"https://e:2379\"]\ncert = \"/c.pem\"\n",
			`lvssd.toml:4:8: cluster.cert and cluster.key go together`},
		{"cluster prefix with a trailing slash", "[cluster]\nhost = \"db1\"\nendpoints = [\"https://e:2379\"]\nprefix = \"/lvss/\"\n",
			`lvssd.toml:4:10: cluster.prefix "/lvss/": want an absolute key path such as "/lvss", without a trailing slash`},
		{"cluster lease too short", "[cluster]\nhost = \"db1\"\nendpoints = [\"https://e:2379\"]\nlease_ttl = \"1s\"\n",
			`lvssd.toml:4:13: cluster.lease_ttl 1s: at least 2s (etcd's leases count in seconds)`},

		{"negative duration", "[timeouts]\n\n  hold    = \"-5s\"\n",
			`lvssd.toml:3:13: timeouts.hold: duration must be > 0 ("-5s")`},
		{"zero duration", "[timeouts]\nabort = \"0s\"\n",
			`lvssd.toml:2:9: timeouts.abort: duration must be > 0 ("0s")`},
		{"too long", "timeouts.creation_lease = \"24h1s\"\n",
			`lvssd.toml:1:27: timeouts.creation_lease: duration must be <= 24h ("24h1s")`},
		{"not a duration", "[timeouts]\nthaw = \"soon\"\n",
			`lvssd.toml:2:8: timeouts.thaw: invalid duration "soon": want a number with a unit, such as "30s" or "1m30s"`},
		{"bare number", "[timeouts]\nthaw = \"60\"\n",
			`lvssd.toml:2:8: timeouts.thaw: invalid duration "60": want a number with a unit, such as "30s" or "1m30s"`},

		{"integer for a duration", "[timeouts]\nhold = 5\n",
			`lvssd.toml:2:8: timeouts.hold: want a duration string such as "30s", got an integer`},
		{"string for a list", "[access]\ngroups = \"backup\"\n",
			`lvssd.toml:2:10: access.groups: want an array of strings, got a string`},
		{"integer in a list", "[access]\ngroups = [\"a\", 7]\n",
			`lvssd.toml:2:16: access.groups[1]: want a string, got an integer`},
		{"scalar for a table", "timeouts = 3\n",
			`lvssd.toml:1:12: timeouts: want a table, got an integer`},
		{"table for a scalar", "[timeouts.hold]\n",
			`lvssd.toml:1:11: timeouts.hold: want a duration string such as "30s", got a table`},
		{"array of tables for a table", "[[access]]\n",
			`lvssd.toml:1:3: access: want a table, got an array of tables`},
		{"dotted key through a scalar", "[timeouts]\nhold.x = 1\n",
			`lvssd.toml:2:6: timeouts.hold: want a duration string such as "30s", got a table`},

		{"set twice", "[timeouts]\nhold = \"1s\"\nhold = \"2s\"\n",
			`lvssd.toml:3:8: timeouts.hold: set twice (first on line 2)`},
		{"set twice via dotted key", "timeouts.hold = \"1s\"\n[timeouts]\nhold = \"2s\"\n",
			`lvssd.toml:3:8: timeouts.hold: set twice (first on line 1)`},
		{"syntax", "[timeouts]\nhold = \n",
			`lvssd.toml:2:8: unexpected character U+000A at start of value`},

		{"hold not shorter than freeze, both set", "[timeouts]\nhold = \"30s\"\nfreeze = \"30s\"\n",
			`lvssd.toml:2:8: timeouts.hold (30s) must be shorter than timeouts.freeze (30s): a filesystem hold cannot outlast the writers' freeze window`},
		{"hold above default freeze", "[timeouts]\n\nhold = \"2m\"\n",
			`lvssd.toml:3:8: timeouts.hold (2m0s) must be shorter than timeouts.freeze (1m0s): a filesystem hold cannot outlast the writers' freeze window`},
		{"freeze below default hold", "[timeouts]\nfreeze = \"5s\"\n",
			`lvssd.toml:2:10: timeouts.hold (10s) must be shorter than timeouts.freeze (5s): a filesystem hold cannot outlast the writers' freeze window`},

		{"empty user", "[access]\nusers = [\"alice\", \"\"]\n",
			`lvssd.toml:2:19: access.users[1]: empty user name`},
		{"user with a space", "[access]\nusers = [\"bad name\"]\n",
			`lvssd.toml:2:10: access.users[0]: "bad name" is not a valid user name`},
		{"group with a colon", "access.groups = [\"a:b\"]\n",
			`lvssd.toml:1:18: access.groups[0]: "a:b" is not a valid group name`},
		{"uid out of range", "[access]\nusers = [\"4294967296\"]\n",
			`lvssd.toml:2:10: access.users[0]: 4294967296 is not a valid numeric id`},
		{"uid -1", "[access]\nusers = [\"4294967295\"]\n",
			`lvssd.toml:2:10: access.users[0]: 4294967295 is not a valid numeric id`},
		{"bad requester group", "[access]\nrequester_groups = [\"a b\"]\n",
			`lvssd.toml:2:21: access.requester_groups[0]: "a b" is not a valid group name`},
		{"bad admin user", "[access]\nadmin_users = [\"\"]\n",
			`lvssd.toml:2:16: access.admin_users[0]: empty user name`},
		{"writer class without class or name", "[[access.writer_class]]\nusers = [\"postgres\"]\n",
			`lvssd.toml:2:10: access.writer_class[0]: set class_id (a writer class GUID) or name (a writer name), or both: a binding must say which writers it binds`},
		{"writer class with a bad GUID", "[[access.writer_class]]\nclass_id = \"postgres\"\n",
			`lvssd.toml:2:12: access.writer_class[0].class_id: "postgres" is not a writer class ID (a GUID such as 7fb0b9cd-c65d-4295-9e38-eda7166ef992; lvss list writers shows them)`},
		{"writer class bound twice", "[[access.writer_class]]\nclass_id = \"7fb0b9cd-c65d-4295-9e38-eda7166ef992\"\n[[access.writer_class]]\nclass_id = \"7FB0B9CD-C65D-4295-9E38-EDA7166EF992\"\n",
			`lvssd.toml:4:12: access.writer_class[1].class_id: class 7fb0b9cd-c65d-4295-9e38-eda7166ef992 is already bound by access.writer_class[0]`},
		{"writer name bound twice", "[[access.writer_class]]\nname = \"Postgres\"\n[[access.writer_class]]\nname = \"postgres\"\n",
			`lvssd.toml:4:8: access.writer_class[1].name: writer name "postgres" is already bound by access.writer_class[0]`},
		{"writer class with a bad user", "[[access.writer_class]]\nname = \"postgres\"\nusers = [\"a:b\"]\n",
			`lvssd.toml:3:10: access.writer_class[0].users[0]: "a:b" is not a valid user name`},

		{"metrics: a path without unix:", "[metrics]\nlisten = \"/run/lvss/metrics.sock\"\n",
			`lvssd.toml:2:10: metrics.listen: "/run/lvss/metrics.sock" is neither host:port (such as "127.0.0.1:9177") nor unix:PATH; for a Unix socket write "unix:/run/lvss/metrics.sock"`},
		{"metrics: no port", "[metrics]\nlisten = \"127.0.0.1\"\n",
			`lvssd.toml:2:10: metrics.listen: "127.0.0.1" is neither host:port (such as "127.0.0.1:9177") nor unix:PATH`},
		{"metrics: port out of range", "[metrics]\nlisten = \"127.0.0.1:65536\"\n",
			`lvssd.toml:2:10: metrics.listen: "127.0.0.1:65536": the port must be a number from 0 to 65535`},
		{"metrics: port by name", "[metrics]\nlisten = \"localhost:http\"\n",
			`lvssd.toml:2:10: metrics.listen: "localhost:http": the port must be a number from 0 to 65535`},
		{"metrics: relative socket", "[metrics]\nlisten = \"unix:metrics.sock\"\n",
			`lvssd.toml:2:10: metrics.listen: "unix:metrics.sock": the socket path must be absolute, as in "unix:/run/lvss/metrics.sock"`},
		{"metrics: unclean socket path", "[metrics]\nlisten = \"unix:/run//lvss/\"\n",
			`lvssd.toml:2:10: metrics.listen: "unix:/run//lvss/": write the socket path in its clean form, "unix:/run/lvss"`},
		{"metrics: socket path too long", "[metrics]\nlisten = \"unix:/" + strings.Repeat("a", 107) + "\"\n",
			`lvssd.toml:2:10: metrics.listen: "unix:/` + strings.Repeat("a", 107) + `": a Unix socket path holds at most 107 bytes`},
		{"samba: relative config", "[samba]\nconfig = \"smb.conf\"\n",
			`lvssd.toml:2:10: samba.config: "smb.conf" must be an absolute path, such as "/etc/samba/smb.conf"`},
		{"samba: empty config", "[samba]\nconfig = \"\"\n",
			`lvssd.toml:2:10: samba.config: "" must be an absolute path, such as "/etc/samba/smb.conf"`},
		{"samba: net not clean", "[samba]\nnet = \"/usr/bin/../bin/net\"\n",
			`lvssd.toml:2:7: samba.net: write "/usr/bin/../bin/net" in its clean form, "/usr/bin/net"`},
		{"metrics: socket_group on TCP", "[metrics]\nlisten = \"127.0.0.1:9177\"\nsocket_group = \"prometheus\"\n",
			`lvssd.toml:3:16: metrics.socket_group applies only to a Unix socket (listen = "unix:PATH")`},
		{"metrics: socket_group without listen", "[metrics]\nsocket_group = \"prometheus\"\n",
			`lvssd.toml:2:16: metrics.socket_group applies only to a Unix socket (listen = "unix:PATH")`},
		{"metrics: bad socket_group", "[metrics]\nlisten = \"unix:/run/m.sock\"\nsocket_group = \"a b\"\n",
			`lvssd.toml:3:16: metrics.socket_group: "a b" is not a valid group name`},
		{"metrics: listen not a string", "[metrics]\nlisten = 9177\n",
			`lvssd.toml:2:10: metrics.listen: want a string, got an integer`},
		{"debug: a path without unix:", "[debug]\nlisten = \"/run/lvss/debug.sock\"\n",
			`lvssd.toml:2:10: debug.listen: "/run/lvss/debug.sock" is neither host:port (such as "127.0.0.1:9177") nor unix:PATH; for a Unix socket write "unix:/run/lvss/debug.sock"`},
		{"debug: no socket_group", "[debug]\nlisten = \"unix:/run/d.sock\"\nsocket_group = \"adm\"\n",
			`lvssd.toml:3:1: unknown key "debug.socket_group"`},
		{"metrics: unknown key", "[metrics]\nport = 9177\n",
			`lvssd.toml:2:1: unknown key "metrics.port"`},

		{"samba: relative config", "[samba]\nconfig = \"smb.conf\"\n",
			`lvssd.toml:2:10: samba.config: "smb.conf" must be an absolute path, such as "/etc/samba/smb.conf"`},
		{"samba: empty config", "[samba]\nconfig = \"\"\n",
			`lvssd.toml:2:10: samba.config: "" must be an absolute path, such as "/etc/samba/smb.conf"`},
		{"samba: unclean config", "[samba]\nconfig = \"/etc/samba/../samba/smb.conf\"\n",
			`lvssd.toml:2:10: samba.config: write "/etc/samba/../samba/smb.conf" in its clean form, "/etc/samba/smb.conf"`},
		{"previous versions: no path", "[[previous_versions]]\nall_persistent = true\n",
			`lvssd.toml:1:3: previous_versions[0].path must be set: the directory a Samba share serves, such as "/srv/share"`},
		{"previous versions: relative path", "[[previous_versions]]\npath = \"srv/share\"\n",
			`lvssd.toml:2:8: previous_versions[0].path: "srv/share" must be an absolute path`},
		{"previous versions: unclean path", "[[previous_versions]]\npath = \"/srv/share/\"\n",
			`lvssd.toml:2:8: previous_versions[0].path: write the path in its clean form, "/srv/share"`},
		{"previous versions: a path twice", "[[previous_versions]]\npath = \"/srv/share\"\n[[previous_versions]]\npath = \"/srv/share\"\n",
			`lvssd.toml:4:8: previous_versions[1].path: /srv/share is already previous_versions[0].path; lvssd keeps one snapdir per path`},
		{"previous versions: unknown key", "[[previous_versions]]\npath = \"/srv/share\"\nname = \"share\"\n",
			`lvssd.toml:3:1: unknown key "previous_versions[0].name"`},
		{"previous versions: not a bool", "[[previous_versions]]\npath = \"/srv/share\"\nall_persistent = \"yes\"\n",
			`lvssd.toml:3:18: previous_versions[0].all_persistent: want true or false, got a string`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("lvssd.toml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted, want %s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got  %s\n want %s", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not a *config.Error", err)
			}
			if e.File != "lvssd.toml" || e.Line == 0 || e.Column == 0 {
				t.Errorf("position missing: %+v", e)
			}
		})
	}
}

func TestErrorFields(t *testing.T) {
	_, err := Parse("/etc/lvss/lvssd.toml", []byte("[timeouts]\nhold = \"-1s\"\n"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%v is not a *config.Error", err)
	}
	want := Error{File: "/etc/lvss/lvssd.toml", Line: 2, Column: 8, Key: "timeouts.hold",
		Msg: `timeouts.hold: duration must be > 0 ("-1s")`}
	if *e != want {
		t.Errorf("got  %+v\nwant %+v", *e, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()

	c, err := Load("")
	if err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf(`Load("") = %+v, %v`, c, err)
	}

	missing := filepath.Join(dir, "nope.toml")
	if _, err := Load(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load of a missing file: %v", err)
	}

	empty := filepath.Join(dir, "empty.toml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(empty); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load of an empty file = %+v, %v", c, err)
	}

	bad := filepath.Join(dir, "lvssd.toml")
	if err := os.WriteFile(bad, []byte("[timeouts]\n\n\nfrezee = \"1s\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if want := bad + `:4:1: unknown key "timeouts.frezee"`; err == nil || err.Error() != want {
		t.Errorf("Load = %v, want %s", err, want)
	}
}

func TestValidateInCode(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"zero timeout", func(c *Config) { c.Timeouts.Identify = 0 },
			`timeouts.identify: duration must be > 0 ("0s")`},
		{"too long", func(c *Config) { c.Timeouts.CreationLease = Duration(48 * time.Hour) },
			`timeouts.creation_lease: duration must be <= 24h ("48h0m0s")`},
		{"hold", func(c *Config) { c.Timeouts.Hold = c.Timeouts.Freeze },
			`timeouts.hold (1m0s) must be shorter than timeouts.freeze (1m0s): a filesystem hold cannot outlast the writers' freeze window`},
		{"group", func(c *Config) { c.Access.Groups = append(c.Access.Groups, "") },
			`access.groups[1]: empty group name`},
		{"metrics", func(c *Config) { c.Metrics.Listen = "nope" },
			`metrics.listen: "nope" is neither host:port (such as "127.0.0.1:9177") nor unix:PATH`},
		// A provider section's own rules, reported without a file.
		{"provider section", func(c *Config) { c.Providers.Copy.Volumes = []string{"rel"} },
			`providers.copy.volumes[0]: "rel" is not an absolute path`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || err.Error() != tc.want {
				t.Errorf("Validate = %v, want %s", err, tc.want)
			}
		})
	}
}

// A Config printed with go-toml must read back the same, so lvssd can show
// its effective configuration in the file's own syntax.
func TestMarshalRoundTrip(t *testing.T) {
	c := Default()
	c.Timeouts.Freeze = Duration(90 * time.Second)
	c.Access.Users = []string{"alice"}
	data, err := toml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse("printed", data)
	if err != nil {
		t.Fatalf("%v in\n%s", err, data)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("got  %+v\nwant %+v", got, c)
	}
}

func TestProvidersSection(t *testing.T) {
	cfg, err := Parse("lvssd.toml", []byte(`
[limits]
max_snapshots_per_volume = 10
min_free = "1GiB"

[providers]
order = ["san", "btrfs", "copy"]

[[providers.btrfs.volume]]
path = "/srv/data"
snapshot_dir = "/srv/.snaps"

[[providers.exec]]
name = "san"
volumes = ["/srv/san"]
commit = "san-snap create"
delete = "san-snap delete $LVSS_SNAPSHOT_HANDLE"
timeout = "5s"

[providers.copy]
volumes = ["/srv/plain"]
max_bytes = "512MiB"
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.MinFree != 1<<30 || cfg.Providers.Copy.MaxBytes != 512<<20 || cfg.Providers.Exec[0].Timeout.D().Seconds() != 5 || cfg.Providers.Exec[0].OtherTimeout != nil ||
		cfg.Providers.Btrfs.Volumes[0].SnapshotDir != "/srv/.snaps" || cfg.Providers.Order[0] != "san" {
		t.Fatalf("%+v", cfg)
	}
	def := Default()
	if def.Providers.Copy.MaxBytes != 1<<30 || def.Limits.MaxSnapshotsPerVolume != 512 {
		t.Fatalf("defaults %+v", def)
	}
	bad := []struct{ doc, want string }{
		{"[providers]\norder = [\"zfs\"]\n", `lvssd.toml:2:10: providers.order: unknown provider "zfs"`},
		{"[providers.copy]\nvolumes = [\"rel\"]\n", `lvssd.toml:2:12: providers.copy.volumes[0]: "rel" is not an absolute path`},
		{"[providers.copy]\nmax_bytes = \"lots\"\n", `lvssd.toml:2:13: providers.copy.max_bytes: want a size such as "1GiB", got "lots"`},
		{"[[providers.exec]]\nname = \"btrfs\"\ncommit = \"x\"\ndelete = \"y\"\nvolumes = [\"/a\"]\n", `lvssd.toml:2:8: providers.exec[0].name: "btrfs" must be set and differ from btrfs, copy, exec and the other exec providers`},
		{"[[providers.exec]]\nname = \"s\"\ncommit = \"x\"\ndelete = \"y\"\nvolumes = [\"/a\"]\ntimeout = \"30s\"\n", `lvssd.toml:6:11: providers.exec[0].timeout (30s) must fit in timeouts.hold (10s): the commit runs inside the filesystem freeze`},
		{"[limits]\nmax_snapshots_per_volume = 0\n", `lvssd.toml:2:28: limits.max_snapshots_per_volume must be at least 1`},
		{"[[providers.exec]]\nname = \"s\"\ncommit = \"x\"\ndelete = \"y\"\nvolumes = [\"/a\"]\nexpose = \"e\"\n", `lvssd.toml:6:10: providers.exec[0]: expose and unexpose go together: set both or neither`},
		{"[providers.copy]\nsnapshot_dir = \"/srv/copies\"\nvolumes = [\"/srv/copies/x\"]\n", `lvssd.toml:3:12: providers.copy.volumes[0]: "/srv/copies/x" is inside providers.copy.snapshot_dir`},
	}
	for _, b := range bad {
		_, err := Parse("lvssd.toml", []byte(b.doc))
		if err == nil || err.Error() != b.want {
			t.Errorf("%q:\n got  %v\n want %s", b.doc, err, b.want)
		}
	}
}

func TestMaxEventsBounds(t *testing.T) {
	c, err := Parse("t.toml", []byte("[limits]\nmax_events = 5000\n"))
	if err != nil || c.Limits.MaxEvents != 5000 {
		t.Fatalf("max_events = 5000: %+v, %v", c.Limits, err)
	}
	if _, err := Parse("t.toml", []byte("[limits]\nmax_events = 10\n")); err == nil || !strings.Contains(err.Error(), "limits.max_events must be at least 1000") {
		t.Fatalf("max_events = 10: %v", err)
	}
}
