// Package smbshare publishes directories as read-only SMB shares through
// Samba's own share management: the shares Samba keeps in its registry
// (`net conf addshare`, `net conf delshare`), which smbd serves at once,
// without a reload, when its smb.conf says `registry shares = yes`. It is
// how lvssd answers ExposeSnapshot with VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY
// (docs/decisions.md L58, docs/previous-versions.md).
//
// lvssd never edits smb.conf and never reads Samba's files itself: every
// question goes to Samba's tools, given the smb.conf Samba runs with
// (`-s`), so that includes, a registry-only configuration and Samba's own
// rules apply exactly as smbd applies them:
//
//   - testparm --parameter-name "registry shares": can shares be added?
//   - testparm -s: every share defined, in the file or the registry
//     (a name in use);
//   - net conf addshare NAME PATH writeable=n guest_ok=n COMMENT;
//   - net conf list: the registry's shares with their paths and comments;
//   - net conf delshare NAME, then smbcontrol smbd close-share NAME, which
//     ends the connections still open to it.
//
// Each command runs in a process group of its own under a deadline
// (Options.Timeout, default 30 s, and the caller's context): a tool that
// hangs, on a wedged registry lock say, is killed with its children and
// reported, and lvssd goes on.
//
// Errors carry HRESULTs: VSS_E_NOT_SUPPORTED when Samba is missing or
// not set up for registry shares (the message says what to install or
// set), VSS_E_UNEXPECTED_PROVIDER_ERROR when a tool fails or runs past
// its deadline (its own last line of output kept), E_INVALIDARG for a
// name Windows would refuse (CheckName).
package smbshare
