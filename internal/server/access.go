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
	a := &Access{uids: map[uint32]bool{}, gids: map[uint32]bool{}}
	for _, u := range users {
		if n, err := strconv.ParseUint(u, 10, 32); err == nil {
			a.uids[uint32(n)] = true
			continue
		}
		if uu, err := user.Lookup(u); err == nil {
			if n, err := strconv.ParseUint(uu.Uid, 10, 32); err == nil {
				a.uids[uint32(n)] = true
			}
			continue
		}
		log.Warn("access: unknown user ignored", "user", u)
	}
	for _, g := range groups {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			a.gids[uint32(n)] = true
			continue
		}
		if gg, err := user.LookupGroup(g); err == nil {
			if n, err := strconv.ParseUint(gg.Gid, 10, 32); err == nil {
				a.gids[uint32(n)] = true
			}
			continue
		}
		log.Warn("access: unknown group ignored", "group", g)
	}
	a.desc = fmt.Sprintf("root, users %v, groups %v", users, groups)
	return a
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

// String says who is allowed, for error messages and logs.
func (a *Access) String() string { return a.desc }
