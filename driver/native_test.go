package driver

import (
	"testing"

	"github.com/seedmq/mq"
)

type nativeRecord struct{ offset int64 }

// lazyRecord counts how often its native delivery is made.
type lazyRecord struct {
	rec   nativeRecord
	built int
}

func (l *lazyRecord) LazyNative() any {
	l.built++
	return l.rec
}

func TestSetLazyNativeBuildsOnAs(t *testing.T) {
	var m mq.Message
	l := &lazyRecord{rec: nativeRecord{offset: 42}}
	SetLazyNative(&m, l)
	if l.built != 0 {
		t.Fatalf("native delivery built %d times before As, want 0", l.built)
	}
	var got nativeRecord
	if !m.As(&got) || got.offset != 42 {
		t.Fatalf("As(*nativeRecord): got %v %+v, want true {offset:42}", m.As(&got), got)
	}
	var wrong string
	if m.As(&wrong) {
		t.Error("As(*string): got true, want false")
	}
	var asLazy *lazyRecord
	if m.As(&asLazy) {
		t.Error("As(**lazyRecord): got true, want false: the driver's own type is not the native delivery")
	}
	if c := m.Clone(); !c.As(&got) || got.offset != 42 {
		t.Errorf("Clone().As: got %+v, want the same native delivery", got)
	}
}

func TestSetNativeAllocationsOfLazy(t *testing.T) {
	l := &lazyRecord{rec: nativeRecord{offset: 1}}
	var m mq.Message
	if n := testing.AllocsPerRun(100, func() { SetLazyNative(&m, l) }); n != 0 {
		t.Errorf("SetLazyNative: %v allocations, want 0", n)
	}
}
