package backupdoc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lvss/lvss/vss"
	"github.com/lvss/lvss/vsserr"
)

// The archive of a cluster set (lvss cluster backup --bcd FILE): a tar
// holding cluster.json, then each host's own archive, byte for byte as
// the host wrote it, as hosts/HOST.tar (docs/backup-archive.md, "Cluster
// archives"). Each host's part is a whole single-host archive, so that
// taking it out with any tar gives exactly what lvss backup --bcd would
// have written on that host.

// ClusterFormat is cluster.json's "format": what tells a cluster archive
// from a single host's (whose manifest says Format) and from any other
// tar.
const ClusterFormat = "lvss-cluster-backup-archive"

// ClusterVersion is cluster.json's version this package writes and the
// only one it reads. It goes up on the rules of Version.
const ClusterVersion = 1

const (
	clusterFile = "cluster.json"
	hostsDir    = "hosts/"
)

// Limits of a cluster archive. A host's archive may be as large as any
// single archive (its files' limit and the tar's own headers); in
// practice each went through etcd, whose values are at most 1.5 MiB by
// default.
const (
	maxHosts       = 1024
	maxHostArchive = maxTotal + 8<<20 // a 512-byte header and up to 511 bytes of padding per file, and the end blocks
	maxClusterAll  = 1 << 30
)

var clusterLayout = &layout{
	what:  fmt.Sprintf("an lvss cluster backup archive (version %d)", ClusterVersion),
	holds: clusterFile + " and " + hostsDir + "<host>.tar",
	known: func(name string) bool {
		if name == clusterFile {
			return true
		}
		_, ok := hostOf(name)
		return ok
	},
	limit: func(name string) int64 {
		if name == clusterFile {
			return maxManifest
		}
		return maxHostArchive
	},
	total:   maxClusterAll,
	entries: maxHosts + 1 + 8,
}

// hostName is what a host may be called in a cluster set, the rule of
// lvss cluster (internal/cluster.CheckHost): its archive is named after
// it, so no slash, and it is no "." or "..".
var hostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// HostArchiveName is the name inside a cluster archive of a host's
// archive.
func HostArchiveName(host string) string { return hostsDir + host + ".tar" }

// hostOf reads the host from hosts/HOST.tar.
func hostOf(name string) (string, bool) {
	stem, ok := strings.CutPrefix(name, hostsDir)
	if !ok {
		return "", false
	}
	host, ok := strings.CutSuffix(stem, ".tar")
	if !ok || !hostName.MatchString(host) {
		return "", false
	}
	return host, true
}

// ClusterManifest is cluster.json: the cluster set, and which hosts'
// archives the file holds.
type ClusterManifest struct {
	// Format and Version identify the layout; WriteCluster fills them in
	// when they are empty and refuses other values.
	Format  string
	Version int
	// Stage is the stage of every host's archive: StageSnapshot once
	// every host had its snapshots, StageBackupComplete once every host
	// had BackupComplete.
	Stage       Stage
	LvssVersion string // the lvss that ran lvss cluster backup
	Requester   string // who ran it: user@machine[pid]
	// Time is when this file was written, kept to the second in UTC as
	// in Manifest; it is the modification time of every tar entry.
	Time          time.Time
	SnapshotSetID uuid.UUID // the cluster set's ID, every host's set ID
	BackupType    vss.BackupType
	// Consistency is "application" when every host's part is, else the
	// weakest; WriteCluster works it out from the hosts' archives.
	Consistency string
	// Hosts are the hosts in name order; WriteCluster fills them in
	// from the hosts' archives.
	Hosts []ClusterHost
}

// ClusterHost is one host's entry in cluster.json.
type ClusterHost struct {
	Host string
	// Consistency is "application" when every snapshot of the host's
	// archive is, else the weakest of them.
	Consistency string
	// SHA256 is the hash of hosts/HOST.tar, in lowercase hex: a reader
	// checks it, so that a host's part changed or swapped is refused.
	SHA256 string
}

// ClusterArchive is a cluster archive as ReadCluster found it, every part
// checked.
type ClusterArchive struct {
	Manifest ClusterManifest
	// Hosts are the hosts' archives in name order.
	Hosts []HostArchive
}

// HostArchive is one host's part of a cluster archive.
type HostArchive struct {
	Host string
	// Data is hosts/HOST.tar as stored: a single host's archive, which
	// Archive is read from.
	Data    []byte
	Archive *Archive
}

// Host returns the archive of host, or nil.
func (c *ClusterArchive) Host(host string) *HostArchive {
	for i := range c.Hosts {
		if c.Hosts[i].Host == host {
			return &c.Hosts[i]
		}
	}
	return nil
}

// HostNames are the hosts, in name order.
func (c *ClusterArchive) HostNames() []string {
	out := make([]string, 0, len(c.Hosts))
	for _, h := range c.Hosts {
		out = append(out, h.Host)
	}
	return out
}

// The consistency levels, weakest first (docs/decisions.md L16). A level
// this package does not know ranks below them all.
var consistencyRank = map[string]int{"none": 1, "crash": 2, "application": 3}

// PartConsistency is a host's consistency in a cluster set: "application"
// when every snapshot of its archive is, else the weakest of them (the
// first of equals). A host without snapshots is "application", as an
// empty set has nothing inconsistent in it.
func PartConsistency(m *Manifest) string {
	levels := make([]string, 0, len(m.Snapshots))
	for _, s := range m.Snapshots {
		levels = append(levels, s.Consistency)
	}
	return WeakestConsistency(levels...)
}

// WeakestConsistency is "application" when every one of levels is, else
// the weakest of them (the first of equals): the consistency of a cluster
// set from its hosts'.
func WeakestConsistency(levels ...string) string {
	out := "application"
	for _, l := range levels {
		if consistencyRank[l] < consistencyRank[out] {
			out = l
		}
	}
	return out
}

// WriteCluster writes the archive of a cluster set to w: cluster.json,
// then hosts/HOST.tar for each entry of hosts (host → its archive, as
// Write wrote it on that host), in host name order, byte for byte. Every
// tar entry is a regular file, mode 0644, owned by uid and gid 0 without
// names, modified at the manifest's time: the bytes depend on the
// arguments alone.
//
// Each host's archive is read and checked as Read does, and must be of
// that host (its manifest's Host), of the cluster set (SnapshotSetID) and
// at the manifest's Stage. WriteCluster fills in the manifest's Hosts and
// Consistency from them, and its Format and Version when empty; nothing
// is written when a check fails.
func WriteCluster(w io.Writer, m ClusterManifest, hosts map[string][]byte) error {
	m = m.normalized()
	if err := m.checkHead(); err != nil {
		return err
	}
	if m.Time.Unix() < 0 {
		return clusterErr("time %s is before 1970", timeText(m.Time))
	}
	if len(hosts) == 0 {
		return clusterErr("a cluster set has at least one host")
	}
	if len(hosts) > maxHosts {
		return clusterErr("%d hosts, more than the %d an archive allows", len(hosts), maxHosts)
	}
	names := slices.Sorted(maps.Keys(hosts))
	m.Hosts = nil
	var levels []string
	for _, h := range names {
		if !hostName.MatchString(h) {
			return clusterErr("host name %q: want 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", h)
		}
		a, err := readHost(h, hosts[h])
		if err != nil {
			return err
		}
		if err := m.checkHost(h, a); err != nil {
			return err
		}
		sum := sha256.Sum256(hosts[h])
		c := PartConsistency(&a.Manifest)
		m.Hosts = append(m.Hosts, ClusterHost{Host: h, Consistency: c, SHA256: hex.EncodeToString(sum[:])})
		levels = append(levels, c)
	}
	m.Consistency = WeakestConsistency(levels...)
	mj, err := m.bytes()
	if err != nil {
		return err
	}
	entries := []tarEntry{{clusterFile, mj}}
	for _, h := range names {
		entries = append(entries, tarEntry{HostArchiveName(h), hosts[h]})
	}
	return writeTar(w, clusterLayout, "cluster archive", m.Time, entries)
}

// WriteClusterFile writes a cluster archive (as WriteCluster does) to
// path, replacing what is there atomically, as WriteFile does.
func WriteClusterFile(path string, m ClusterManifest, hosts map[string][]byte) error {
	var b bytes.Buffer
	if err := WriteCluster(&b, m, hosts); err != nil {
		return err
	}
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(b.Bytes())
		return err
	})
}

// ReadCluster reads and checks a cluster archive WriteCluster wrote. It
// refuses what Read refuses of a tar (not one, compressed, truncated,
// links, a file twice, files over the limits) and, naming the problem
// (E_INVALIDARG unless a host's archive has a damaged document, which
// keeps its XML code):
//
//   - a missing cluster.json, one that is not JSON, not of ClusterFormat,
//     of another version, without stage, time, snapshot set or hosts, or
//     listing a host twice;
//   - a host listed without its hosts/HOST.tar, or the other way round;
//   - a host's archive whose SHA-256 is not the one listed, that Read
//     refuses (the message names hosts/HOST.tar and the file inside it),
//     or that is of another host, set or stage;
//   - a consistency that is not what the hosts' archives say.
func ReadCluster(r io.Reader) (*ClusterArchive, error) {
	files, _, err := readTar(r, clusterLayout)
	if err != nil {
		return nil, err
	}
	return clusterFrom(files)
}

// ReadAny reads either kind of archive: a single host's (Read) or a
// cluster set's (ReadCluster), as its first file says. One of the two
// results is nil. An archive of neither kind is refused as Read refuses
// it.
func ReadAny(r io.Reader) (*Archive, *ClusterArchive, error) {
	files, l, err := readTar(r, singleLayout, clusterLayout)
	if err != nil {
		return nil, nil, err
	}
	if l == clusterLayout {
		c, err := clusterFrom(files)
		return nil, c, err
	}
	a, err := archiveFrom(files)
	return a, nil, err
}

// clusterFrom checks the files of a cluster archive and builds the
// ClusterArchive from them.
func clusterFrom(files map[string][]byte) (*ClusterArchive, error) {
	cj, ok := files[clusterFile]
	if !ok {
		return nil, vsserr.New(vsserr.InvalidArg, "the archive holds no %s: it is not an lvss cluster backup archive", clusterFile)
	}
	m, err := decodeClusterManifest(cj)
	if err != nil {
		return nil, err
	}
	if err := m.checkHead(); err != nil {
		return nil, err
	}
	if len(m.Hosts) == 0 {
		return nil, clusterErr("hosts is empty: a cluster set has at least one host")
	}
	listed := map[string]bool{}
	for i, h := range m.Hosts {
		if !hostName.MatchString(h.Host) {
			return nil, clusterErr("hosts[%d]: host name %q is not one lvss cluster gives", i, h.Host)
		}
		if listed[h.Host] {
			return nil, clusterErr("host %s is listed twice", h.Host)
		}
		listed[h.Host] = true
	}
	for name := range files {
		if h, ok := hostOf(name); ok && !listed[h] {
			return nil, clusterErr("%s is in the archive but %s does not list host %s", name, clusterFile, h)
		}
	}
	c := &ClusterArchive{Manifest: m}
	var levels []string
	for _, h := range m.Hosts {
		name := HostArchiveName(h.Host)
		data, ok := files[name]
		if !ok {
			return nil, vsserr.New(vsserr.InvalidArg, "%s lists host %s but the archive has no %s", clusterFile, h.Host, name)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != h.SHA256 {
			return nil, vsserr.New(vsserr.InvalidArg, "%s is not the archive %s lists (its SHA-256 differs): it was changed or replaced",
				name, clusterFile)
		}
		a, err := readHost(h.Host, data)
		if err != nil {
			return nil, err
		}
		if err := m.checkHost(h.Host, a); err != nil {
			return nil, err
		}
		if got := PartConsistency(&a.Manifest); got != h.Consistency {
			return nil, clusterErr("host %s's consistency is %q, but the snapshots of %s say %q", h.Host, h.Consistency, name, got)
		}
		levels = append(levels, h.Consistency)
		c.Hosts = append(c.Hosts, HostArchive{Host: h.Host, Data: data, Archive: a})
	}
	if got := WeakestConsistency(levels...); got != m.Consistency {
		return nil, clusterErr("consistency is %q, but the hosts' parts say %q", m.Consistency, got)
	}
	slices.SortFunc(c.Hosts, func(a, b HostArchive) int { return strings.Compare(a.Host, b.Host) })
	return c, nil
}

// readHost reads a host's archive, naming it in any error (the code stays
// the inner one's: a damaged document is still an XML error).
func readHost(host string, data []byte) (*Archive, error) {
	a, err := Read(bytes.NewReader(data))
	if err != nil {
		return nil, vsserr.New(vsserr.Code(err), "%s: %s", HostArchiveName(host), vsserr.Message(err))
	}
	return a, nil
}

// checkHost: a host's archive belongs in the cluster archive only if it
// is that host's, of this set, at this stage.
func (m *ClusterManifest) checkHost(host string, a *Archive) error {
	name := HostArchiveName(host)
	switch {
	case a.Manifest.Host != host:
		return vsserr.New(vsserr.InvalidArg, "%s is the archive of host %q, not of %s", name, a.Manifest.Host, host)
	case a.Manifest.SnapshotSetID != m.SnapshotSetID:
		return vsserr.New(vsserr.InvalidArg, "%s is of snapshot set %s, not of the cluster set %s", name, a.Manifest.SnapshotSetID, m.SnapshotSetID)
	case a.Manifest.Stage != m.Stage:
		return vsserr.New(vsserr.InvalidArg, "%s was written at stage %q, the cluster archive at %q", name, a.Manifest.Stage, m.Stage)
	}
	return nil
}

func (m ClusterManifest) normalized() ClusterManifest {
	if m.Format == "" {
		m.Format = ClusterFormat
	}
	if m.Version == 0 {
		m.Version = ClusterVersion
	}
	m.Time = m.Time.Truncate(time.Second).UTC()
	m.Hosts = slices.Clone(m.Hosts)
	return m
}

// checkHead checks what cluster.json says of the set itself.
func (m *ClusterManifest) checkHead() error {
	if err := checkClusterFormat(m.Format, m.Version); err != nil {
		return err
	}
	if !m.Stage.known() {
		return clusterErr("stage %q is neither %q nor %q", m.Stage, StageSnapshot, StageBackupComplete)
	}
	if m.Time.IsZero() {
		return clusterErr("time is missing")
	}
	if m.SnapshotSetID == uuid.Nil {
		return clusterErr("snapshot_set_id is missing")
	}
	return nil
}

// checkClusterFormat is the first question about cluster.json: is it of
// an archive this package knows how to read?
func checkClusterFormat(format string, version int) error {
	if format != ClusterFormat {
		return clusterErr("format %q is not %q: this is not an lvss cluster backup archive", format, ClusterFormat)
	}
	if version != ClusterVersion {
		if version > ClusterVersion {
			return clusterErr("version %d is newer than this lvss reads (%d): read the archive with the lvss that wrote it, or a later one",
				version, ClusterVersion)
		}
		return clusterErr("version %d is not one this lvss reads (%d)", version, ClusterVersion)
	}
	return nil
}

func clusterErr(format string, args ...any) error {
	return vsserr.New(vsserr.InvalidArg, "%s: %s", clusterFile, fmt.Sprintf(format, args...))
}

// The JSON form of cluster.json; as for manifest.json, enumerations are
// written as name and number, and the number is what a reader takes.
type clusterJSON struct {
	Format          string            `json:"format"`
	Version         int               `json:"version"`
	Stage           Stage             `json:"stage"`
	LvssVersion     string            `json:"lvss_version"`
	Requester       string            `json:"requester"`
	Time            string            `json:"time"`
	SnapshotSetID   string            `json:"snapshot_set_id"`
	BackupType      string            `json:"backup_type"`
	BackupTypeValue int32             `json:"backup_type_value"`
	Consistency     string            `json:"consistency"`
	Hosts           []clusterHostJSON `json:"hosts"`
}

type clusterHostJSON struct {
	Host        string `json:"host"`
	Consistency string `json:"consistency"`
	Archive     string `json:"archive"` // hosts/HOST.tar, for people and jq
	SHA256      string `json:"sha256"`
}

// MarshalJSON writes the manifest as cluster.json holds it.
func (m ClusterManifest) MarshalJSON() ([]byte, error) {
	j := clusterJSON{Format: m.Format, Version: m.Version, Stage: m.Stage, LvssVersion: m.LvssVersion, Requester: m.Requester,
		Time: timeText(m.Time), SnapshotSetID: m.SnapshotSetID.String(),
		BackupType: m.BackupType.String(), BackupTypeValue: int32(m.BackupType), Consistency: m.Consistency,
		Hosts: make([]clusterHostJSON, 0, len(m.Hosts))}
	for _, h := range m.Hosts {
		j.Hosts = append(j.Hosts, clusterHostJSON{Host: h.Host, Consistency: h.Consistency, Archive: HostArchiveName(h.Host), SHA256: h.SHA256})
	}
	return plainJSON(j)
}

// UnmarshalJSON reads cluster.json, checking the syntax of the values it
// converts; fields it does not know are ignored (optional fields may be
// added within a version).
func (m *ClusterManifest) UnmarshalJSON(data []byte) error {
	var j clusterJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	out := ClusterManifest{Format: j.Format, Version: j.Version, Stage: j.Stage, LvssVersion: j.LvssVersion, Requester: j.Requester,
		BackupType: vss.BackupType(j.BackupTypeValue), Consistency: j.Consistency}
	var errs fieldErrs
	out.Time = errs.time("time", j.Time)
	out.SnapshotSetID = errs.guid("snapshot_set_id", j.SnapshotSetID)
	for i, h := range j.Hosts {
		at := fmt.Sprintf("hosts[%d].", i)
		if h.Archive != HostArchiveName(h.Host) {
			errs.add(at+"archive", "%q is not %q", h.Archive, HostArchiveName(h.Host))
		}
		if b, err := hex.DecodeString(h.SHA256); err != nil || len(b) != sha256.Size || hex.EncodeToString(b) != h.SHA256 {
			errs.add(at+"sha256", "%q is not a SHA-256 in lowercase hex", h.SHA256)
		}
		out.Hosts = append(out.Hosts, ClusterHost{Host: h.Host, Consistency: h.Consistency, SHA256: h.SHA256})
	}
	if err := errs.err(); err != nil {
		return err
	}
	*m = out
	return nil
}

// bytes is cluster.json: indented, with a final newline.
func (m ClusterManifest) bytes() ([]byte, error) {
	compact, err := m.MarshalJSON()
	if err != nil {
		return nil, vsserr.Wrap(vsserr.InvalidArg, err, "%s", clusterFile)
	}
	var b bytes.Buffer
	if err := json.Indent(&b, compact, "", "  "); err != nil {
		return nil, vsserr.Wrap(vsserr.InvalidArg, err, "%s", clusterFile)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// decodeClusterManifest reads format and version first, as
// decodeManifest does, so that another kind of file or a newer version is
// named as such.
func decodeClusterManifest(data []byte) (ClusterManifest, error) {
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return ClusterManifest{}, vsserr.New(vsserr.InvalidArg, "%s is not a cluster manifest: %v", clusterFile, err)
	}
	if err := checkClusterFormat(head.Format, head.Version); err != nil {
		return ClusterManifest{}, err
	}
	var m ClusterManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return ClusterManifest{}, vsserr.New(vsserr.InvalidArg, "%s: %v", clusterFile, err)
	}
	return m, nil
}
