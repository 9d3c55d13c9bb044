package cmdout

import (
	"strings"
	"testing"
)

func TestCappedAndTail(t *testing.T) {
	c := &Capped{Max: 5}
	if n, err := c.Write([]byte("abc")); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	if n, err := c.Write([]byte("defgh")); n != 5 || err != nil {
		t.Fatal("a capped write must report success", n, err)
	}
	if b, over := c.Bytes(); string(b) != "abcde" || !over {
		t.Fatalf("%q %v", b, over)
	}
	tl := &Tail{Max: 20}
	tl.Write([]byte(strings.Repeat("x", 40) + "\nfirst\n"))
	tl.Write([]byte("the reason\n\n  \n"))
	if got := tl.LastLine(); got != "the reason" {
		t.Fatalf("last line %q", got)
	}
}
