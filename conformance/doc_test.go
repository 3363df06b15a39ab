package conformance

import (
	"os"
	"strings"
	"testing"

	"github.com/seedmq/mq"
)

// TestDocListsEveryCase keeps the package documentation's case list in
// step with the suite.
func TestDocListsEveryCase(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range coreCases {
		if !strings.Contains(string(doc), c.name) {
			t.Errorf("doc.go does not mention case %q", c.name)
		}
	}
}

// TestCaseNames checks the names are usable as subtest names and topic
// parts, and unique.
func TestCaseNames(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range Cases() {
		if seen[n] {
			t.Errorf("case %q appears twice", n)
		}
		seen[n] = true
		if n == "" || n[0] < 'a' || n[0] > 'z' || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			t.Errorf("case name %q: want lowercase letters, digits and '-', starting with a letter", n)
		}
	}
	if got := len(coreCases); got < 30 {
		t.Errorf("core cases: got %d, want at least 30", got)
	}
}

// TestStressRounds checks the parsing of MQ_CONFORMANCE_STRESS.
func TestStressRounds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"", 1, true}, {"1", 1, true}, {"20", 20, true},
		{"0", 0, false}, {"-3", 0, false}, {"x", 0, false}, {"1001", 0, false},
	} {
		got, err := stressRounds(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("stressRounds(%q): got %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestNames checks generated topic and group names stay within what every
// broker accepts, even for the longest case name.
func TestNames(t *testing.T) {
	for _, c := range Cases() {
		e := newEnv(t, Harness{}.withDefaults(), mq.Capabilities{}, c)
		for _, n := range []string{e.topic, e.group, e.newTopic(), e.newGroup()} {
			if len(n) > maxNameLen || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || n[0] < 'a' || n[0] > 'z' {
				t.Errorf("case %s: generated name %q: want at most %d of [a-z0-9-], starting with a letter", c, n, maxNameLen)
			}
		}
	}
}
