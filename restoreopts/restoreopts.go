package restoreopts

import (
	"maps"
	"slices"
	"strings"

	"github.com/lvss/lvss/vsserr"
)

// The keys of a recovery target: the point a writer that can roll its
// application forward (PostgreSQL from archived WAL) recovers to. At most
// one is given.
const (
	// RecoveryTargetTime is a timestamp with its time zone, in the
	// application's syntax (PostgreSQL: "2026-12-06 13:56:59+00").
	RecoveryTargetTime = "recovery_target_time"
	// RecoveryTargetLSN is a log position (PostgreSQL: "0/3000060").
	RecoveryTargetLSN = "recovery_target_lsn"
	// RecoveryTargetName is a named restore point
	// (PostgreSQL: pg_create_restore_point's name).
	RecoveryTargetName = "recovery_target_name"
	// RecoveryTarget with the value "immediate" ends recovery as soon as
	// the backup is consistent: no log is replayed beyond it.
	RecoveryTarget = "recovery_target"
)

// recoveryKeys are the keys of a recovery target, in the order
// RecoveryTarget looks at them.
var recoveryKeys = []string{RecoveryTargetTime, RecoveryTargetLSN, RecoveryTargetName, RecoveryTarget}

// Options are restore options by key.
type Options map[string]string

// Parse reads a restore options string. A malformed line, a bad key or a
// key given twice is E_INVALIDARG naming it.
func Parse(s string) (Options, error) {
	o := Options{}
	for i, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, vsserr.New(vsserr.InvalidArg, "restore options, line %d: %q is not KEY=VALUE", i+1, line)
		}
		if err := CheckKey(k); err != nil {
			return nil, err
		}
		if err := checkValue(k, v); err != nil {
			return nil, err
		}
		if _, dup := o[k]; dup {
			return nil, vsserr.New(vsserr.InvalidArg, "restore options: %s is given twice", k)
		}
		o[k] = v
	}
	return o, nil
}

// CheckKey says whether k can be a key: not empty, and only lowercase
// letters, digits, '_', '-' and '.'.
func CheckKey(k string) error {
	if k == "" {
		return vsserr.New(vsserr.InvalidArg, "restore options: a key is empty")
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return vsserr.New(vsserr.InvalidArg, "restore options: key %q may only have lowercase letters, digits, '_', '-' and '.'", k)
		}
	}
	return nil
}

func checkValue(k, v string) error {
	if strings.ContainsAny(v, "\n\x00") {
		return vsserr.New(vsserr.InvalidArg, "restore options: the value of %s has a newline or NUL", k)
	}
	return nil
}

// String writes the options, keys sorted, one KEY=VALUE per line without
// a final newline ("" for none). Every key and value must be valid
// (Validate); String does not check.
func (o Options) String() string {
	keys := slices.Sorted(maps.Keys(o))
	lines := make([]string, 0, len(keys))
	for _, k := range keys {
		lines = append(lines, k+"="+o[k])
	}
	return strings.Join(lines, "\n")
}

// Validate checks every key and value, and that at most one recovery
// target is given.
func (o Options) Validate() error {
	for _, k := range slices.Sorted(maps.Keys(o)) {
		if err := CheckKey(k); err != nil {
			return err
		}
		if err := checkValue(k, o[k]); err != nil {
			return err
		}
	}
	var targets []string
	for _, k := range recoveryKeys {
		if _, ok := o[k]; ok {
			targets = append(targets, k)
		}
	}
	if len(targets) > 1 {
		return vsserr.New(vsserr.InvalidArg, "restore options: one recovery target at most, not %s", strings.Join(targets, " and "))
	}
	if v, ok := o[RecoveryTarget]; ok && v != "immediate" {
		return vsserr.New(vsserr.InvalidArg, "restore options: %s=%q: the only value is \"immediate\"", RecoveryTarget, v)
	}
	for _, k := range targets {
		if o[k] == "" {
			return vsserr.New(vsserr.InvalidArg, "restore options: %s is empty", k)
		}
	}
	return nil
}

// RecoveryTarget returns the recovery target the options give: its key
// (one of the RecoveryTarget* constants) and value, or ok false when
// there is none.
func (o Options) RecoveryTarget() (key, value string, ok bool) {
	for _, k := range recoveryKeys {
		if v, found := o[k]; found {
			return k, v, true
		}
	}
	return "", "", false
}
