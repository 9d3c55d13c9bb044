package exec

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxField bounds a handle or device path: they are stored in the catalog
// and passed back in the environment.
const maxField = 4096

// handleLine is one line of commit or list output: HANDLE, optionally
// followed by a TAB and the snapshot's device path.
type handleLine struct {
	handle string
	device string // "" when the command gave none
}

// devicePath is where the snapshot can be read: the device the command
// named, else the handle itself.
func (h handleLine) devicePath() string {
	if h.device != "" {
		return h.device
	}
	return h.handle
}

// parseLine reads "HANDLE" or "HANDLE<TAB>DEVICE_PATH". Surrounding spaces
// and a CR are trimmed; control characters are refused because a handle
// goes back into a command's environment and a newline would break the
// newline-separated lists there.
func parseLine(l string) (handleLine, error) {
	h, d, _ := strings.Cut(strings.TrimRight(l, "\r"), "\t")
	h, d = strings.TrimSpace(h), strings.TrimSpace(d)
	if h == "" {
		return handleLine{}, fmt.Errorf("empty handle")
	}
	for _, f := range []string{h, d} {
		if len(f) > maxField {
			return handleLine{}, fmt.Errorf("field longer than %d bytes", maxField)
		}
		if !utf8.ValidString(f) {
			return handleLine{}, fmt.Errorf("not UTF-8: %q", f)
		}
		if strings.IndexFunc(f, unicode.IsControl) >= 0 {
			return handleLine{}, fmt.Errorf("control character in %q", f)
		}
	}
	return handleLine{handle: h, device: d}, nil
}

// lines splits output into its non-blank lines. complete drops a last line
// without its newline: output of a killed command may end mid-line.
func lines(out []byte, complete bool) []string {
	s := string(out)
	if complete {
		i := strings.LastIndexByte(s, '\n')
		if i < 0 {
			return nil
		}
		s = s[:i]
	}
	var ls []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			ls = append(ls, l)
		}
	}
	return ls
}

// parseCommit reads the output of a successful commit: exactly one line
// per volume, in the order of LVSS_VOLUME_1..N, handles distinct.
func parseCommit(out []byte, over bool, n int) ([]handleLine, error) {
	if over {
		return nil, fmt.Errorf("commit command printed more than %d bytes on stdout", commitOutCap)
	}
	ls := lines(out, false)
	if len(ls) != n {
		return nil, fmt.Errorf("commit command printed %d handle lines for %d volumes; want one line per volume, in order: HANDLE or HANDLE<TAB>DEVICE_PATH", len(ls), n)
	}
	seen := map[string]bool{}
	hs := make([]handleLine, n)
	for i, l := range ls {
		h, err := parseLine(l)
		if err != nil {
			return nil, fmt.Errorf("commit command output line %d: %w", i+1, err)
		}
		if seen[h.handle] {
			return nil, fmt.Errorf("commit command printed handle %q twice", h.handle)
		}
		seen[h.handle] = true
		hs[i] = h
	}
	return hs, nil
}

// salvage returns the well-formed handle lines of a commit that failed or
// printed bad output: they may name snapshots that exist and must be
// deleted when the set is aborted. Malformed lines are ignored rather than
// passed to the delete command, which could do harm with them.
func salvage(out []byte, complete bool) []handleLine {
	var hs []handleLine
	seen := map[string]bool{}
	for _, l := range lines(out, complete) {
		if h, err := parseLine(l); err == nil && !seen[h.handle] {
			seen[h.handle] = true
			hs = append(hs, h)
		}
	}
	return hs
}

// parseList reads the output of the list command: one line per snapshot
// held, same format as commit's lines.
func parseList(out []byte, over bool) ([]handleLine, error) {
	if over {
		return nil, fmt.Errorf("list command printed more than %d bytes on stdout", otherOutCap)
	}
	var hs []handleLine
	for i, l := range lines(out, false) {
		h, err := parseLine(l)
		if err != nil {
			return nil, fmt.Errorf("list command output line %d: %w", i+1, err)
		}
		hs = append(hs, h)
	}
	return hs, nil
}
