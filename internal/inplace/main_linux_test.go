package inplace

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/lvss/lvss/internal/mountinfo"
)

// helperEnv makes the test binary a helper COMMAND (or a helper parent)
// instead of running the tests; see runHelper.
const helperEnv = "LVSS_INPLACE_TEST_HELPER"

func TestMain(m *testing.M) {
	// As lvss's main does: Command re-executes this binary.
	MaybeRunChild()
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(h, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// runHelper is the test binary run as something else than the tests:
//
//   - "write PATH": a COMMAND that creates PATH and says how that went:
//     "EROFS" (exit 0) or the error (exit 1). It tells EROFS by errno,
//     which a shell's message would not.
//   - "same-namespace SNAPSHOT ORIGINAL": a parent, itself started in a
//     throwaway mount namespace, that starts the hidden mode without
//     Unshareflags, so that the child is still in its parent's namespace,
//     and relays its status; then prints "LEAKED" if the child's mount is
//     in that namespace. Should the child's guard fail, the mount lands in
//     the throwaway namespace, never the host's.
func runHelper(mode string, args []string) int {
	switch {
	case mode == "write" && len(args) == 1:
		f, err := os.Create(args[0])
		if err == nil {
			f.Close()
			fmt.Println("wrote", args[0])
			return 1
		}
		if errors.Is(err, syscall.EROFS) {
			fmt.Println("EROFS")
			return 0
		}
		fmt.Println(err)
		return 1
	case mode == "same-namespace" && len(args) == 2:
		ns, err := os.Readlink("/proc/self/ns/mnt")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		blob, _ := json.Marshal(spec{Mounts: []Mount{{Snapshot: args[0], Original: args[1]}}, Dir: "/", HostNS: ns})
		child := exec.Command("/proc/self/exe", ChildArg, string(blob), "true")
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		child.Env = os.Environ()[:0:0] // not a helper: the hidden mode
		err = child.Run()
		ms, _ := mountinfo.Read()
		for _, m := range ms {
			if m.MountPoint == args[1] {
				fmt.Println("LEAKED")
			}
		}
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			return ee.ExitCode()
		} else if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "%s=%s %q: unknown helper\n", helperEnv, mode, args)
	return 2
}
