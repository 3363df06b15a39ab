package conformance

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/seedmq/mq"
)

// StressEnv names the environment variable that repeats the whole suite:
// MQ_CONFORMANCE_STRESS=N runs every case N times, each round as a subtest
// named "stress-1" to "stress-N". Unset, empty or 1 runs the suite once.
const StressEnv = "MQ_CONFORMANCE_STRESS"

// maxStressRounds bounds StressEnv so a typo cannot run for days.
const maxStressRounds = 1000

// testCase is one conformance case: a subtest on its own topic, skipped
// unless the broker has every capability in needs and none in lacks.
type testCase struct {
	// name is the subtest name: lowercase letters, digits and '-'.
	name string
	// needs lists capabilities the case requires.
	needs []mq.Capability
	// lacks lists capabilities the broker must not have: the case checks
	// that a broker without them says so with ErrNotSupported.
	lacks []mq.Capability
	// run performs the case.
	run func(t *testing.T, e *env)
}

// extraCases holds cases registered by other files of this package (for
// example middleware.go), in registration order. They run after the core
// cases.
var extraCases []testCase

// register appends cases to the suite, after the core cases and after
// cases registered earlier. Files of this package call it from their init
// functions; the go tool runs init functions in file name order, so the
// order of the suite is fixed.
func register(cs ...testCase) {
	for _, c := range cs {
		if c.name == "" || c.run == nil {
			panic("conformance: register: a case needs a name and a run func")
		}
		if slices.ContainsFunc(allCases(), func(o testCase) bool { return o.name == c.name }) {
			panic("conformance: register: duplicate case " + c.name)
		}
		extraCases = append(extraCases, c)
	}
}

// allCases returns the suite in the order it runs.
func allCases() []testCase {
	return slices.Concat(coreCases, extraCases)
}

// Cases returns the names of the suite's cases in the order Run runs
// them. Each is the name of a subtest of Run, so one case can be selected
// with go test -run 'TestConformance/round-trip$'.
func Cases() []string {
	cs := allCases()
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.name
	}
	return names
}

// Run runs the conformance suite against the broker h opens, each case
// as a subtest of t on a topic of its own. Cases that need a capability
// the broker lacks are skipped with a message naming it; so are the
// provisioning-off case when h.OpenNoProvision is nil and the
// broker-restart case when h.Restart is nil. With MQ_CONFORMANCE_STRESS=N
// in the environment the whole suite runs N times.
//
// Run reads the broker's Capabilities once, from a connection it opens
// and closes first, and assumes every connection h opens reports the same.
// Cases run one after another, never in parallel, so that timing-based
// assertions hold on a loaded machine.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("conformance: Harness.Open is nil; it must open a connection to the broker under test")
	}
	h = h.withDefaults()
	rounds, err := stressRounds(os.Getenv(StressEnv))
	if err != nil {
		t.Fatal(err)
	}
	caps := readCapabilities(t, h)
	t.Logf("conformance: driver %q, capabilities %+v, timeout %v, grace %v", caps.Driver, caps, h.Timeout, h.Grace)
	if rounds == 1 {
		runCases(t, h, caps)
		return
	}
	for i := 1; i <= rounds; i++ {
		t.Run(fmt.Sprintf("stress-%d", i), func(t *testing.T) { runCases(t, h, caps) })
	}
}

// stressRounds parses the StressEnv value.
func stressRounds(v string) (int, error) {
	if v == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxStressRounds {
		return 0, fmt.Errorf("conformance: %s=%q: want a whole number from 1 to %d", StressEnv, v, maxStressRounds)
	}
	return n, nil
}

// readCapabilities opens one connection to read the broker's capabilities.
func readCapabilities(t *testing.T, h Harness) mq.Capabilities {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	b, err := h.Open(ctx)
	if err != nil {
		t.Fatalf("conformance: Harness.Open: %v", err)
	}
	caps := b.Capabilities()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("conformance: Close of the capabilities probe connection: got %v, want nil", err)
	}
	return caps
}

// runCases runs every case once, in order.
func runCases(t *testing.T, h Harness, caps mq.Capabilities) {
	for _, c := range allCases() {
		t.Run(c.name, func(t *testing.T) {
			for _, n := range c.needs {
				if !caps.Has(n) {
					t.Skipf("skipped: needs capability %s, and the %s driver reports Capabilities.%s false", n, caps.Driver, n)
				}
			}
			for _, n := range c.lacks {
				if caps.Has(n) {
					t.Skipf("skipped: checks brokers without capability %s, and the %s driver has it", n, caps.Driver)
				}
			}
			c.run(t, newEnv(t, h, caps, c.name))
		})
	}
}
