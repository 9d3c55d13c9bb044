package config

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/lvss/lvss/provider/btrfs"
	"github.com/lvss/lvss/provider/exec"
	"github.com/lvss/lvss/provider/filecopy"
)

// Config is lvssd's configuration.
type Config struct {
	Timeouts  Timeouts  `toml:"timeouts"`
	Access    Access    `toml:"access"`
	Limits    Limits    `toml:"limits"`
	Providers Providers `toml:"providers"`
	Metrics   Metrics   `toml:"metrics"`
	Debug     Debug     `toml:"debug"`
	Cluster   Cluster   `toml:"cluster"`
	Samba     Samba     `toml:"samba"`
	// PreviousVersions are the directories whose snapshots Windows
	// clients of a Samba share see as Previous Versions (samba.go).
	PreviousVersions []PreviousVersion `toml:"previous_versions"`
}

// Timeouts are the deadlines the coordinator gives writers, the kernel hold
// and the creation as a whole. Expiry is reported with the HRESULT VSS uses
// for it.
type Timeouts struct {
	Identify        Duration `toml:"identify"`         // writer answer to Identify
	PrepareBackup   Duration `toml:"prepare_backup"`   // writer answer to PrepareForBackup
	PrepareSnapshot Duration `toml:"prepare_snapshot"` // longer than Freeze, as in VSS
	Freeze          Duration `toml:"freeze"`           // upper bound of the Freeze→Thaw window; writers may only lower it
	Thaw            Duration `toml:"thaw"`             // writer answer to Thaw
	PostSnapshot    Duration `toml:"post_snapshot"`    // writer answer to PostSnapshot
	BackupComplete  Duration `toml:"backup_complete"`  // writer answer to BackupComplete
	BackupShutdown  Duration `toml:"backup_shutdown"`  // writer answer to BackupShutdown
	Abort           Duration `toml:"abort"`            // writer answer to Abort
	Restore         Duration `toml:"restore"`          // writer answer to PreRestore and PostRestore
	Hold            Duration `toml:"hold"`             // filesystem flush-and-hold window
	CreationLease   Duration `toml:"creation_lease"`   // system-wide creation lock lease (D7)
	RequesterSend   Duration `toml:"requester_send"`   // how long a response may wait for its requester to read it
	ProviderCall    Duration `toml:"provider_call"`    // each provider call of a creation but the commit (L45)
}

// Access says who besides root may talk to lvssd, and in which role
// (docs/operations.md, "Who may do what"). Every list takes names or
// numeric ids. Root has every role.
type Access struct {
	// Groups and Users may be requesters and writers: the one role lvssd
	// had before roles were split, kept with its meaning.
	Groups []string `toml:"groups"`
	Users  []string `toml:"users"`
	// Requesters: sessions, snapshots, exposure, revert, restore, and
	// every read the admin role has.
	RequesterGroups []string `toml:"requester_groups"`
	RequesterUsers  []string `toml:"requester_users"`
	// Writers: subscribe writers of classes no writer_class binds.
	WriterGroups []string `toml:"writer_groups"`
	WriterUsers  []string `toml:"writer_users"`
	// Admins (read-only): lists, status, events, doctor, Query and
	// GetSnapshotProperties; nothing that creates or changes.
	AdminGroups []string `toml:"admin_groups"`
	AdminUsers  []string `toml:"admin_users"`
	// WriterClasses bind writer classes to the accounts that alone (with
	// root) may register them.
	WriterClasses []WriterClass `toml:"writer_class"`
}

// WriterClass binds the writers whose class ID or name matches to the
// listed users and groups: nobody else but root may subscribe such a
// writer, and the listed accounts may, without a writer role. Empty lists
// leave the class to root alone.
type WriterClass struct {
	ClassID string   `toml:"class_id"` // a GUID, e.g. the PostgreSQL writer's 7fb0b9cd-c65d-4295-9e38-eda7166ef992
	Name    string   `toml:"name"`     // a writer name, compared case-insensitively
	Users   []string `toml:"users"`
	Groups  []string `toml:"groups"`
}

// Default returns the configuration lvssd uses when the file sets nothing.
func Default() Config {
	return Config{
		Timeouts: Timeouts{
			Identify:        Duration(30 * time.Second),
			PrepareBackup:   Duration(60 * time.Second),
			PrepareSnapshot: Duration(120 * time.Second),
			Freeze:          Duration(60 * time.Second),
			Thaw:            Duration(60 * time.Second),
			PostSnapshot:    Duration(60 * time.Second),
			BackupComplete:  Duration(60 * time.Second),
			BackupShutdown:  Duration(30 * time.Second),
			Abort:           Duration(30 * time.Second),
			Restore:         Duration(120 * time.Second),
			Hold:            Duration(10 * time.Second),
			CreationLease:   Duration(10 * time.Minute),
			RequesterSend:   Duration(30 * time.Second),
			ProviderCall:    Duration(120 * time.Second),
		},
		Access: Access{
			Groups: []string{"lvss"},
			Users:  []string{}, RequesterGroups: []string{}, RequesterUsers: []string{}, WriterGroups: []string{},
			WriterUsers: []string{}, AdminGroups: []string{}, AdminUsers: []string{}, WriterClasses: []WriterClass{},
		},
		Limits: Limits{MaxSnapshotsPerVolume: 512, MinFree: 64 << 20, MaxEvents: 100_000},
		// Empty rather than nil lists, so a printed config reads back equal.
		Providers: Providers{
			Order: []string{"btrfs", "exec", "copy"},
			Btrfs: btrfs.Config{Volumes: []btrfs.VolumeConfig{}},
			Exec:  []exec.Config{},
			Copy:  filecopy.Config{Volumes: []string{}, MaxBytes: 1 << 30},
		},
		Cluster:          defaultCluster(),
		Samba:            Samba{Config: DefaultSambaConfig},
		PreviousVersions: []PreviousVersion{},
	}
}

// DefaultPath is where lvssd looks for its configuration when --config
// does not say.
const DefaultPath = "/etc/lvss/lvssd.toml"

// LoadOrDefault is Load for lvssd's start: a file that was not named
// explicitly (the default path) may be absent, and then the defaults apply
// and used is "". A file named explicitly must exist.
func LoadOrDefault(path string, explicit bool) (cfg Config, used string, err error) {
	if !explicit {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return Default(), "", nil
		}
	}
	cfg, err = Load(path)
	if err != nil {
		return Config{}, "", err
	}
	return cfg, path, nil
}

// Load reads the file at path over the defaults. An empty path means no file
// and yields Default; a path that does not exist is an error, since an
// operator who names a file expects it to be used.
func Load(path string) (Config, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return Parse(path, data)
}

// Parse reads a configuration document over the defaults. name is used in
// error messages only. The first problem in the document is returned as an
// *Error.
func Parse(name string, data []byte) (Config, error) {
	doc, err := scan(name, data, reflect.TypeOf(Config{}))
	if err != nil {
		return Config{}, err
	}
	cfg := Default()
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, decodeError(name, err)
	}
	if err := validate(&cfg, doc); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// decodeError gives go-toml's errors our file:line:column form. Most
// problems are caught by scan first; what reaches here is syntax errors and
// values refused by UnmarshalText.
func decodeError(name string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		de := &strict.Errors[0]
		line, col := de.Position()
		return &Error{File: name, Line: line, Column: col, Key: joinKey(de.Key()),
			Msg: "unknown key " + strconv.Quote(joinKey(de.Key()))}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		e := &Error{File: name, Line: line, Column: col, Key: joinKey(de.Key()),
			Msg: strings.TrimPrefix(de.Error(), "toml: ")}
		if e.Key != "" {
			e.Msg = e.Key + ": " + e.Msg
		}
		return e
	}
	return &Error{File: name, Msg: err.Error()}
}
