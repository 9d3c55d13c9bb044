package cluster_test

import (
	"testing"

	"github.com/lvss/lvss/internal/testenv/lvssdtest"
)

// TestMain removes the binaries the lvssd tests built (lvssdtest.Bin).
func TestMain(m *testing.M) { lvssdtest.Main(m) }
