package server

import (
	"fmt"
	"log/slog"
	"os/user"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Role is what a peer may do; a peer may hold several (L50).
type Role uint8

const (
	// RoleAdmin reads: the Admin service (lists, status, events, doctor)
	// and the session calls that only read (Query,
	// GetSnapshotProperties...). Nothing that creates or changes.
	RoleAdmin Role = 1 << iota
	// RoleRequester may call everything of the Requester and Admin
	// services.
	RoleRequester
	// RoleWriter may subscribe writers whose class no binding names.
	RoleWriter
)

// Has reports whether r includes every role of want.
func (r Role) Has(want Role) bool { return r&want == want }

func (r Role) String() string {
	var out []string
	for _, x := range []struct {
		r    Role
		name string
	}{{RoleRequester, "requester"}, {RoleWriter, "writer"}, {RoleAdmin, "admin"}} {
		if r.Has(x.r) {
			out = append(out, x.name)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// Rules are the access rules as lvssd.toml's [access] states them
// (internal/config.Access), user and group names or numeric ids.
type Rules struct {
	Users, Groups                   []string // requester and writer (access.users, access.groups)
	RequesterUsers, RequesterGroups []string
	WriterUsers, WriterGroups       []string
	AdminUsers, AdminGroups         []string
	WriterClasses                   []ClassBinding
}

// ClassBinding reserves the writers of a class ID or a name (either
// matches; uuid.Nil or "" leaves that side out) to the listed accounts.
type ClassBinding struct {
	ClassID       uuid.UUID
	Name          string
	Users, Groups []string
	Key           string // where the binding was configured, for messages: "access.writer_class[0]"
}

// grant is one configured list: the accounts it names and the roles it
// gives them.
type grant struct {
	key   string // "access.requester_groups"
	group bool
	ids   map[uint32]bool
	roles Role
}

// binding is a resolved ClassBinding.
type binding struct {
	ClassBinding
	uids, gids map[uint32]bool
}

// Access decides who may do what (L50): root everything; the accounts of
// the configured lists their lists' roles; writer classes bound to
// accounts may be registered by those accounts (and root) only.
// Everyone else is refused. The decision has one place, here; the server
// asks it at every RPC and every session call.
type Access struct {
	grants   []grant
	bindings []binding
}

// NewAccess resolves the names of the rules once, at start. Names that do
// not exist are skipped with a warning: a missing `lvss` group simply
// means only root. Numeric ids need no passwd or group entry.
func NewAccess(r Rules, log *slog.Logger) *Access {
	a := &Access{}
	add := func(names []string, key string, group bool, roles Role) {
		if len(names) == 0 {
			return
		}
		a.grants = append(a.grants, grant{key: key, group: group, ids: resolve(names, group, key, log), roles: roles})
	}
	add(r.Users, "access.users", false, RoleRequester|RoleWriter|RoleAdmin)
	add(r.Groups, "access.groups", true, RoleRequester|RoleWriter|RoleAdmin)
	add(r.RequesterUsers, "access.requester_users", false, RoleRequester|RoleAdmin)
	add(r.RequesterGroups, "access.requester_groups", true, RoleRequester|RoleAdmin)
	add(r.WriterUsers, "access.writer_users", false, RoleWriter)
	add(r.WriterGroups, "access.writer_groups", true, RoleWriter)
	add(r.AdminUsers, "access.admin_users", false, RoleAdmin)
	add(r.AdminGroups, "access.admin_groups", true, RoleAdmin)
	for i, b := range r.WriterClasses {
		if b.Key == "" {
			b.Key = "access.writer_class[" + strconv.Itoa(i) + "]"
		}
		a.bindings = append(a.bindings, binding{ClassBinding: b,
			uids: resolve(b.Users, false, b.Key+".users", log), gids: resolve(b.Groups, true, b.Key+".groups", log)})
	}
	return a
}

// resolve turns names or numeric IDs into a set of numeric IDs.
func resolve(names []string, group bool, key string, log *slog.Logger) map[uint32]bool {
	ids := map[uint32]bool{}
	for _, name := range names {
		if n, err := strconv.ParseUint(name, 10, 32); err == nil {
			ids[uint32(n)] = true
			continue
		}
		var id string
		var err error
		if group {
			var g *user.Group
			if g, err = user.LookupGroup(name); err == nil {
				id = g.Gid
			}
		} else {
			var u *user.User
			if u, err = user.Lookup(name); err == nil {
				id = u.Uid
			}
		}
		if err != nil {
			log.Warn("access: unknown name ignored", "key", key, "name", name)
			continue
		}
		if n, err := strconv.ParseUint(id, 10, 32); err == nil {
			ids[uint32(n)] = true
		}
	}
	return ids
}

// inGroup reports whether the peer's primary or supplementary groups
// include one of ids.
func inGroup(p PeerInfo, ids map[uint32]bool) (uint32, bool) {
	if ids[p.GID] {
		return p.GID, true
	}
	for _, g := range p.Groups {
		if ids[g] {
			return g, true
		}
	}
	return 0, false
}

// matches says whether g names the peer, and by which id (the uid, or
// the gid of the group that matched). Names are looked up only when a
// message needs them (who), not on every decision.
func (g grant) matches(p PeerInfo) (uint32, bool) {
	if !g.group {
		return p.UID, g.ids[p.UID]
	}
	return inGroup(p, g.ids)
}

// who names the account that matched.
func who(id uint32, group bool) string {
	if group {
		return "group " + groupName(id)
	}
	return "user " + userName(id)
}

// Roles returns every role the peer holds. Class bindings are not roles:
// they are asked about with MayRegister.
func (a *Access) Roles(p PeerInfo) Role {
	if p.UID == 0 {
		return RoleRequester | RoleWriter | RoleAdmin
	}
	var r Role
	for _, g := range a.grants {
		if _, ok := g.matches(p); ok {
			r |= g.roles
		}
	}
	return r
}

// bound reports whether some class binding names the peer, so that it may
// open a writer stream at all (its Hello is judged by MayRegister).
func (a *Access) bound(p PeerInfo) bool {
	for _, b := range a.bindings {
		if _, _, ok := b.names(p); ok {
			return true
		}
	}
	return false
}

func (b binding) names(p PeerInfo) (uint32, bool, bool) {
	if b.uids[p.UID] {
		return p.UID, false, true
	}
	gid, ok := inGroup(p, b.gids)
	return gid, true, ok
}

// bindingFor returns the binding of a writer's class ID or name, if any.
// Config refuses a class or name bound twice, so the first match is the
// only one.
func (a *Access) bindingFor(class uuid.UUID, name string) *binding {
	for i := range a.bindings {
		b := &a.bindings[i]
		if (b.ClassID != uuid.Nil && b.ClassID == class) || (b.Name != "" && strings.EqualFold(b.Name, name)) {
			return b
		}
	}
	return nil
}

// MayRegister decides whether the peer may subscribe a writer of class
// and name. A bound class (by ID or by name) is for its binding's accounts
// and root only, writer role or not; any other class needs the writer
// role. why says what the peer lacks, for the refusal.
func (a *Access) MayRegister(p PeerInfo, class uuid.UUID, name string) (ok bool, why string) {
	if p.UID == 0 {
		return true, ""
	}
	if b := a.bindingFor(class, name); b != nil {
		if _, _, ok := b.names(p); ok {
			return true, ""
		}
		what := "class " + class.String()
		if b.ClassID == uuid.Nil || b.ClassID != class {
			what = "name " + strconv.Quote(name)
		}
		return false, fmt.Sprintf("writer %q (%s) is bound by %s to %s", name, what, b.Key, b.accounts())
	}
	if a.Roles(p).Has(RoleWriter) {
		return true, ""
	}
	return false, "it needs the writer role (" + RoleWriter.keys() + ")"
}

// accounts lists who a binding admits, for messages.
func (b binding) accounts() string {
	var out []string
	for _, u := range b.Users {
		out = append(out, "user "+u)
	}
	for _, g := range b.Groups {
		out = append(out, "group "+g)
	}
	if len(out) == 0 {
		return "root alone"
	}
	return "root and " + strings.Join(out, ", ")
}

// keys names the configuration keys that grant role r, for messages and
// hints.
func (r Role) keys() string {
	switch r {
	case RoleRequester:
		return "root, access.requester_users, access.requester_groups, access.users or access.groups"
	case RoleWriter:
		return "root, access.writer_users, access.writer_groups, access.users or access.groups; or a [[access.writer_class]] binding"
	case RoleAdmin:
		return "root, access.admin_users or access.admin_groups; requesters have it too"
	}
	return "root"
}

// AllowedBy names the rules that let the peer in and the roles they give:
// "root", "group lvss (access.groups: requester, writer, admin)"; "" when
// none does.
func (a *Access) AllowedBy(p PeerInfo) string {
	if p.UID == 0 {
		return "root"
	}
	var out []string
	for _, g := range a.grants {
		if id, ok := g.matches(p); ok {
			out = append(out, fmt.Sprintf("%s (%s: %s)", who(id, g.group), g.key, g.roles))
		}
	}
	for _, b := range a.bindings {
		if id, group, ok := b.names(p); ok {
			out = append(out, fmt.Sprintf("%s (%s: writer %s)", who(id, group), b.Key, b.what()))
		}
	}
	return strings.Join(out, "; ")
}

// what names the writers a binding covers.
func (b binding) what() string {
	switch {
	case b.ClassID != uuid.Nil && b.Name != "":
		return fmt.Sprintf("class %s or name %q", b.ClassID, b.Name)
	case b.ClassID != uuid.Nil:
		return "class " + b.ClassID.String()
	}
	return "name " + strconv.Quote(b.Name)
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
