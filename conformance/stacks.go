package conformance

import (
	"bytes"
	"runtime/pprof"
	"testing"
)

// maxStackDump bounds the goroutine dump logged by logStacks.
const maxStackDump = 256 << 10

// logStacks logs every goroutine's stack, so that a Close or Subscribe
// that did not return says where it is stuck. Called only on paths that
// already failed.
func logStacks(t testing.TB) {
	t.Helper()
	var buf bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&buf, 2)
	b := buf.Bytes()
	if len(b) > maxStackDump {
		b = append(b[:maxStackDump:maxStackDump], "\n... (cut)"...)
	}
	t.Logf("goroutines when the wait gave up:\n%s", b)
}
