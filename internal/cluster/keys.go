package cluster

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vsserr"
)

// DefaultPrefix is where lvss keeps its keys when [cluster] prefix is not
// set.
const DefaultPrefix = "/lvss"

// Point is a stage of a host's part of a cluster set; a host arrives at
// each in this order (docs/cluster.md, "Keys").
type Point string

const (
	Accepted Point = "accepted" // the job is taken and a local session is open
	Prepared Point = "prepared" // writers prepared, providers ready; nothing frozen
	// FrozenFrontEnd, FrozenBackEnd and FrozenSystem: the host's writers
	// of that level are frozen (VSS's freeze order holds across hosts).
	FrozenFrontEnd Point = "frozen-front-end"
	FrozenBackEnd  Point = "frozen-back-end"
	FrozenSystem   Point = "frozen-system"
	Frozen         Point = "frozen"      // every writer of the host is frozen
	Committed      Point = "committed"   // the host's snapshots exist; writers still frozen
	Snapshotted    Point = "snapshotted" // thawed, PostSnapshot done; snapshots published
	Completed      Point = "completed"   // BackupComplete done
)

// Points are the points in the order hosts reach them.
var Points = []Point{Accepted, Prepared, FrozenFrontEnd, FrozenBackEnd, FrozenSystem, Frozen, Committed, Snapshotted, Completed}

// Keys spells the keys under one prefix.
type Keys struct{ Prefix string }

// NewKeys checks a prefix ("/lvss", "/prod/lvss") and returns its Keys.
func NewKeys(prefix string) (Keys, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	clean := path.Clean(prefix)
	if !strings.HasPrefix(prefix, "/") || clean != prefix || clean == "/" {
		return Keys{}, vsserr.New(vsserr.InvalidArg, "cluster prefix %q: want an absolute key path such as %q, without a trailing slash", prefix, DefaultPrefix)
	}
	return Keys{Prefix: prefix}, nil
}

// hostName is what a host may be called: it is a key component and an
// argument of HOST:PATH, so no slash and no colon.
var hostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// CheckHost refuses a host name that cannot be a key component.
func CheckHost(name string) error {
	if !hostName.MatchString(name) {
		return vsserr.New(vsserr.InvalidArg, "host name %q: want 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// HostsPrefix is where hosts register.
func (k Keys) HostsPrefix() string { return k.Prefix + "/hosts/" }

// Host is a host's registration.
func (k Keys) Host(h string) string { return k.HostsPrefix() + h }

// SetsPrefix holds every cluster set.
func (k Keys) SetsPrefix() string { return k.Prefix + "/sets/" }

// Set is the prefix of one set's keys.
func (k Keys) Set(id uuid.UUID) string { return k.SetsPrefix() + id.String() + "/" }

// Job is the set's job, under the requester's lease.
func (k Keys) Job(id uuid.UUID) string { return k.Set(id) + "job" }

// Abort is the set's abort, created once.
func (k Keys) Abort(id uuid.UUID) string { return k.Set(id) + "abort" }

// Complete is the requester's word that COMMAND ran.
func (k Keys) Complete(id uuid.UUID) string { return k.Set(id) + "complete" }

// Record is a kept set's record.
func (k Keys) Record(id uuid.UUID) string { return k.Set(id) + "record" }

// Delete asks the hosts to delete a set.
func (k Keys) Delete(id uuid.UUID) string { return k.Set(id) + "delete" }

// DeletedPrefix holds the hosts' reports that they deleted their parts.
func (k Keys) DeletedPrefix(id uuid.UUID) string { return k.Set(id) + "deleted/" }

// Deleted is a host's report that it deleted its part.
func (k Keys) Deleted(id uuid.UUID, host string) string { return k.DeletedPrefix(id) + host }

// AtPrefix holds the hosts' arrivals at a point.
func (k Keys) AtPrefix(id uuid.UUID, p Point) string { return k.Set(id) + "at/" + string(p) + "/" }

// At is a host's arrival at a point.
func (k Keys) At(id uuid.UUID, p Point, host string) string { return k.AtPrefix(id, p) + host }

// ParseSetKey splits a key under SetsPrefix into the set's ID and the rest
// ("job", "abort", "at/frozen/HOST"...).
func (k Keys) ParseSetKey(key string) (uuid.UUID, string, error) {
	rest, ok := strings.CutPrefix(key, k.SetsPrefix())
	if !ok {
		return uuid.Nil, "", fmt.Errorf("key %q is not under %s", key, k.SetsPrefix())
	}
	idText, tail, ok := strings.Cut(rest, "/")
	if !ok {
		return uuid.Nil, "", fmt.Errorf("key %q names no set", key)
	}
	id, err := uuid.Parse(idText)
	if err != nil {
		return uuid.Nil, "", fmt.Errorf("key %q: set ID: %v", key, err)
	}
	return id, tail, nil
}
