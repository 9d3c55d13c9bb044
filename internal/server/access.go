package server

import (
	"fmt"
	"log/slog"
	"os/user"
	"strconv"
)

// Access decides who may be a requester, writer or admin client. Root
// always may; so may the listed users and members of the listed groups.
// (The finer roles — writer class IDs bound to users — come later; the
// decision has one place, here.)
type Access struct {
	uids map[uint32]bool
	gids map[uint32]bool
	desc string
}

// NewAccess resolves user and group names (or numeric IDs) once, at start.
// Names that do not exist are skipped with a warning: a missing `lvss`
// group simply means only root.
func NewAccess(users, groups []string, log *slog.Logger) *Access {
	a := &Access{
		uids: resolveIDs(users, "user", func(n string) (string, error) {
			u, err := user.Lookup(n)
			if err != nil {
				return "", err
			}
			return u.Uid, nil
		}, log),
		gids: resolveIDs(groups, "group", func(n string) (string, error) {
			g, err := user.LookupGroup(n)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		}, log),
	}
	a.desc = fmt.Sprintf("root, users %v, groups %v", users, groups)
	return a
}

// resolveIDs turns names or numeric IDs into a set of numeric IDs.
func resolveIDs(names []string, kind string, lookup func(string) (string, error), log *slog.Logger) map[uint32]bool {
	ids := map[uint32]bool{}
	for _, name := range names {
		id := name
		if _, err := strconv.ParseUint(name, 10, 32); err != nil {
			if id, err = lookup(name); err != nil {
				log.Warn("access: unknown "+kind+" ignored", kind, name)
				continue
			}
		}
		if n, err := strconv.ParseUint(id, 10, 32); err == nil {
			ids[uint32(n)] = true
		}
	}
	return ids
}

// Allowed reports whether the peer may use the daemon.
func (a *Access) Allowed(p PeerInfo) bool {
	if p.UID == 0 || a.uids[p.UID] || a.gids[p.GID] {
		return true
	}
	for _, g := range p.Groups {
		if a.gids[g] {
			return true
		}
	}
	return false
}

// AllowedBy names the rule that lets the peer in: "root", "user 1000",
// "group 1001"; "" when none does.
func (a *Access) AllowedBy(p PeerInfo) string {
	switch {
	case p.UID == 0:
		return "root"
	case a.uids[p.UID]:
		return "user " + userName(p.UID) + " (access.users)"
	case a.gids[p.GID]:
		return "group " + groupName(p.GID) + " (access.groups)"
	}
	for _, g := range p.Groups {
		if a.gids[g] {
			return "group " + groupName(g) + " (access.groups)"
		}
	}
	return ""
}

// userName is the name of a uid, or the number when it has none.
func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

// groupName is the name of a gid, or the number when it has none.
func groupName(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return id
}

// String says who is allowed, for error messages and logs.
func (a *Access) String() string { return a.desc }
