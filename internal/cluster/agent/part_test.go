package agent

import (
	"testing"

	"github.com/lvss/lvss/internal/cluster"
	"github.com/lvss/lvss/internal/coordinator"
	"github.com/lvss/lvss/vss"
)

// TestNeededLevelBarriers: a freeze level's point is waited at only when
// some host has a writer at that level and some host one at a later
// level; the last point (frozen) always is; levels not known keep every
// point.
func TestNeededLevelBarriers(t *testing.T) {
	fe, be, sys := coordinator.BarrierFrozenLevel(vss.LevelFrontEnd), coordinator.BarrierFrozenLevel(vss.LevelBackEnd),
		coordinator.BarrierFrozenLevel(vss.LevelSystem)
	for _, tc := range []struct {
		name   string
		levels []vss.AppLevel
		want   map[coordinator.BarrierPoint]bool
	}{
		{"unknown", nil, map[coordinator.BarrierPoint]bool{fe: true, be: true, sys: true, coordinator.BarrierFrozen: true}},
		{"no writer", []vss.AppLevel{}, map[coordinator.BarrierPoint]bool{fe: false, be: false, sys: false, coordinator.BarrierFrozen: true}},
		{"front end only", []vss.AppLevel{vss.LevelFrontEnd}, map[coordinator.BarrierPoint]bool{fe: false, be: false, sys: false, coordinator.BarrierFrozen: true}},
		{"front and back end", []vss.AppLevel{vss.LevelBackEnd, vss.LevelFrontEnd}, map[coordinator.BarrierPoint]bool{fe: true, be: false, sys: false, coordinator.BarrierFrozen: true}},
		{"back end and system", []vss.AppLevel{vss.LevelSystem, vss.LevelBackEnd}, map[coordinator.BarrierPoint]bool{fe: false, be: true, sys: false, coordinator.BarrierFrozen: true}},
	} {
		p := &part{levels: tc.levels}
		for pt, want := range tc.want {
			if got := p.needed(pt); got != want {
				t.Errorf("%s: needed(%s) = %v, want %v", tc.name, pt, got, want)
			}
		}
		if !p.needed(coordinator.BarrierPrepared) || !p.needed(coordinator.BarrierCommitted) {
			t.Errorf("%s: prepared and committed must always be waited at", tc.name)
		}
	}
}

// TestLevelsOf: the union of the hosts' levels; a host that did not say,
// or said something unknown, makes it unknown (every point kept).
func TestLevelsOf(t *testing.T) {
	got := levelsOf(map[string]*cluster.Arrival{
		"a": {Levels: []string{"VSS_APP_FRONT_END"}},
		"b": {Levels: []string{"VSS_APP_BACK_END", "VSS_APP_FRONT_END"}},
		"c": {Levels: []string{}},
	})
	if len(got) != 2 {
		t.Fatalf("levelsOf: %v, want front-end and back-end", got)
	}
	if got := levelsOf(map[string]*cluster.Arrival{"a": {Levels: []string{"VSS_APP_FRONT_END"}}, "old": {}}); got != nil {
		t.Fatalf("a host without levels: %v, want nil (unknown)", got)
	}
	if got := levelsOf(map[string]*cluster.Arrival{"a": {Levels: []string{}}}); got == nil || len(got) != 0 {
		t.Fatalf("no writer anywhere: %v, want empty, not unknown", got)
	}
}
