package argsfile

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Flag is the option that names the file; it must come first.
const Flag = "--args-file"

// Expand returns argv with a leading "--args-file FILE" (or
// "--args-file=FILE") replaced by the arguments FILE holds; argv without
// it comes back unchanged. In the file, each line is one argument, with
// its leading and trailing blanks removed; empty lines and lines whose
// first non-blank character is '#' are skipped. What follows the option on
// the command line comes after the file's arguments.
func Expand(argv []string) ([]string, error) {
	if len(argv) == 0 {
		return argv, nil
	}
	var path string
	var rest []string
	switch {
	case argv[0] == Flag:
		if len(argv) < 2 || argv[1] == "" {
			return nil, fmt.Errorf("%s needs a FILE", Flag)
		}
		path, rest = argv[1], argv[2:]
	case strings.HasPrefix(argv[0], Flag+"="):
		path, rest = strings.TrimPrefix(argv[0], Flag+"="), argv[1:]
		if path == "" {
			return nil, fmt.Errorf("%s needs a FILE", Flag)
		}
	default:
		return argv, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Flag, err)
	}
	args, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", Flag, path, err)
	}
	return append(args, rest...), nil
}

// Parse reads the arguments of a file's content.
func Parse(data []byte) ([]string, error) {
	var args []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if line == Flag || strings.HasPrefix(line, Flag+"=") {
			return nil, fmt.Errorf("line %d: a file cannot name another %s", n, Flag)
		}
		args = append(args, line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return args, nil
}
