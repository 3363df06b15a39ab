package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests run the mq binary, built once by TestMain, as a user would.

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// bin is the path of the mq binary under test.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "mq-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "mq")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building mq:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of mq did.
type result struct {
	stdout, stderr string
	code           int
}

// runMQ runs the binary with args and stdin, bounded by a minute, and
// returns its output and exit code.
func runMQ(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = testEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
	if ctx.Err() != nil {
		t.Fatalf("mq %s: did not end within the bound; stderr:\n%s", strings.Join(args, " "), r.stderr)
	}
	if err != nil && r.code < 0 {
		t.Fatalf("mq %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// want fails t unless r ended with code.
func (r result) want(t *testing.T, code int, what string) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", what, r.code, code, r.stdout, r.stderr)
	}
	return r
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// testEnv is the environment of the binary: the test's, with static AWS
// credentials for ElasticMQ when none are set.
func testEnv() []string {
	env := os.Environ()
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		env = append(env, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test")
	}
	return env
}

// background is an mq process running while the test does other things.
type background struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	mu     sync.Mutex
	stderr []string
	lines  chan string
	done   chan struct{}
}

// start runs mq in the background and waits until a line of its standard
// error matches ready.
func start(t *testing.T, ready string, args ...string) *background {
	t.Helper()
	b := &background{lines: make(chan string, 100), done: make(chan struct{})}
	b.cmd = exec.Command(bin, args...)
	b.cmd.Env = testEnv()
	b.cmd.Stdout = &b.stdout
	errPipe, err := b.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(b.lines)
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			b.mu.Lock()
			b.stderr = append(b.stderr, sc.Text())
			b.mu.Unlock()
			select {
			case b.lines <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
		b.wait(t, time.Minute)
	})
	re := regexp.MustCompile(ready)
	deadline := time.After(time.Minute)
	for {
		select {
		case l, ok := <-b.lines:
			if !ok {
				t.Fatalf("mq %s ended before saying %q; stderr:\n%s", strings.Join(args, " "), ready, b.errText())
			}
			if re.MatchString(l) {
				return b
			}
		case <-deadline:
			t.Fatalf("mq %s did not say %q within a minute; stderr:\n%s", strings.Join(args, " "), ready, b.errText())
		}
	}
}

func (b *background) errText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.stderr, "\n")
}

// wait waits up to d for the process to end and returns its result.
func (b *background) wait(t *testing.T, d time.Duration) result {
	t.Helper()
	ch := make(chan struct{})
	go func() {
		for range b.lines {
		}
		_ = b.cmd.Wait()
		close(ch)
	}()
	select {
	case <-ch:
	case <-time.After(d):
		_ = b.cmd.Process.Kill()
		<-ch
		t.Fatalf("mq did not end within %v; stderr:\n%s", d, b.errText())
	}
	return result{stdout: b.stdout.String(), stderr: b.errText(), code: b.cmd.ProcessState.ExitCode()}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestHelpGolden(t *testing.T) {
	golden(t, "help.golden", runMQ(t, "", "--help").want(t, 0, "mq --help").stdout)
	for _, c := range commands {
		if c.hidden {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			r := runMQ(t, "", c.name, "--help").want(t, 0, "mq "+c.name+" --help")
			golden(t, c.name+".help.golden", r.stdout)
			if r.stderr != "" {
				t.Errorf("--help wrote to standard error: %q", r.stderr)
			}
			if !strings.Contains(r.stdout, "exit codes:") {
				t.Errorf("--help does not list the exit codes")
			}
			// mq help NAME is the same.
			if h := runMQ(t, "", "help", c.name).want(t, 0, "mq help "+c.name); h.stdout != r.stdout {
				t.Errorf("mq help %s differs from mq %s --help", c.name, c.name)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	os.Unsetenv("MQ_CLI_TEST_UNSET")
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no command", nil, 2, "usage: mq COMMAND"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown flag", []string{"publish", "mem://", "t", "x", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"missing argument", []string{"publish", "mem://"}, 2, "want URL TOPIC [BODY], got 1 argument(s)"},
		{"extra argument", []string{"lag", "mem://", "t", "g", "h"}, 2, "extra"},
		{"unknown scheme", []string{"ping", "nats://127.0.0.1"}, 2, "unknown scheme"},
		{"unset env URL", []string{"ping", "env:MQ_CLI_TEST_UNSET"}, 2, "MQ_CLI_TEST_UNSET is not set"},
		{"bad count", []string{"publish", "mem://", "t", "x", "-n", "0"}, 2, "-n 0"},
		{"id with count", []string{"publish", "mem://", "t", "x", "-n", "2", "--id", "a"}, 2, "--id names one message"},
		{"bad regexp", []string{"redrive", "mem://", "dlq", "--match-error", "("}, 2, "--match-error"},
		{"json and body", []string{"tail", "mem://", "t", "--json", "--body"}, 2, "exclude"},
		{"not found", []string{"lag", "mem://", "t", "g"}, 4, "not found"},
		{"replay into itself", []string{"replay", "mem://", "t", "--from-topic", "t"}, 2, "forever"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runMQ(t, "", tc.args...).want(t, tc.code, strings.Join(tc.args, " "))
			if !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("stderr %q does not say %q", r.stderr, tc.msg)
			}
			if r.stdout != "" && tc.code != 0 {
				t.Errorf("stdout %q, want nothing on an error", r.stdout)
			}
		})
	}
}

var uuidLine = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestPublishMemory(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "body")
	if err := os.WriteFile(file, []byte("from a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		n     int
	}{
		{"argument", "", []string{"hello", "-k", "k1", "-H", "a=b", "-H", "c=d"}, 1},
		{"count and batch", "", []string{"hello", "-n", "25", "--batch", "10"}, 25},
		{"stdin", "from stdin", nil, 1},
		{"file", "", []string{"-f", file}, 1},
		{"lines", "one\ntwo\r\nthree", []string{"--lines"}, 3},
		{"rate", "", []string{"x", "-n", "5", "--rate", "50"}, 5},
		{"given id", "", []string{"x", "--id", "my-id"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runMQ(t, tc.stdin, append([]string{"publish", "mem://", "t"}, tc.args...)...).want(t, 0, "publish")
			ids := lines(r.stdout)
			if len(ids) != tc.n {
				t.Fatalf("got %d IDs, want %d: %q", len(ids), tc.n, r.stdout)
			}
			for _, id := range ids {
				if !uuidLine.MatchString(id) && id != "my-id" {
					t.Errorf("ID %q is not a UUIDv7", id)
				}
			}
			if want := fmt.Sprintf("published %d in ", tc.n); !strings.Contains(r.stderr, want) {
				t.Errorf("stderr %q does not report %q", r.stderr, want)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		r := runMQ(t, "", "publish", "mem://", "t", "x", "-n", "2", "--json", "-q").want(t, 0, "publish --json")
		for _, l := range lines(r.stdout) {
			var v struct{ ID, Topic string }
			if err := json.Unmarshal([]byte(l), &v); err != nil || !uuidLine.MatchString(v.ID) || v.Topic != "t" {
				t.Errorf("line %q: want {\"id\":UUIDv7,\"topic\":\"t\"} (%v)", l, err)
			}
		}
		if r.stderr != "" {
			t.Errorf("-q: stderr %q, want nothing", r.stderr)
		}
	})
	t.Run("over-size", func(t *testing.T) {
		r := runMQ(t, strings.Repeat("x", 2<<20), "publish", "mem://", "t").want(t, 1, "publish of 2 MiB")
		if !strings.Contains(r.stderr, "too large") {
			t.Errorf("stderr %q does not say the message is too large", r.stderr)
		}
	})
}

func TestPingMemory(t *testing.T) {
	r := runMQ(t, "", "ping", "mem://").want(t, 0, "ping")
	if !strings.Contains(r.stdout, "memory driver") || !strings.Contains(r.stdout, "ok: ping") {
		t.Errorf("stdout %q", r.stdout)
	}
	r = runMQ(t, "", "ping", "mem://", "--json", "-c", "2", "-i", "10ms").want(t, 0, "ping --json")
	ls := lines(r.stdout)
	if len(ls) != 2 {
		t.Fatalf("got %d JSON lines, want 2: %q", len(ls), r.stdout)
	}
	var v struct {
		OK           bool
		Driver       string
		URL          string
		Capabilities struct{ FanOut bool }
	}
	if err := json.Unmarshal([]byte(ls[0]), &v); err != nil || !v.OK || v.Driver != "memory" || v.URL != "mem://" || !v.Capabilities.FanOut {
		t.Errorf("ping --json: %q (%v)", ls[0], err)
	}
}

// TestSecretsNeverPrinted: a password in the URL appears in no output,
// whatever fails.
func TestSecretsNeverPrinted(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	t.Setenv("MQ_CLI_TEST_URL", "amqp://someone:"+secret+"@127.0.0.1:1/")
	for _, args := range [][]string{
		{"ping", "amqp://someone:" + secret + "@127.0.0.1:1/", "--timeout", "2s"},
		{"ping", "env:MQ_CLI_TEST_URL", "--timeout", "2s"},
		{"ping", "kafka://someone:" + secret + "@127.0.0.1:1", "--timeout", "2s"},
		{"tail", "amqp://someone:" + secret + "@127.0.0.1:1/", "t", "--timeout", "2s"},
		{"ping", "amqp://someone:" + secret + "#x@127.0.0.1:1/", "--timeout", "2s"},
		{"conform", "amqp://someone:" + secret + "@127.0.0.1:1/", "--timeout", "2s"},
	} {
		r := runMQ(t, "", args...)
		if r.code == 0 {
			t.Errorf("mq %v: exit 0, want a failure", args[:2])
		}
		if strings.Contains(r.stdout+r.stderr, secret) || strings.Contains(r.stdout+r.stderr, "someone") {
			t.Errorf("mq %s printed the user info:\n%s%s", args[0], r.stdout, r.stderr)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://user:pass@host:5672/vh?x=1": "amqp://***@host:5672/vh?x=1",
		"kafka://k1:9092,k2:9092?group=g":   "kafka://k1:9092,k2:9092?group=g",
		"mem://":                            "mem://",
		"sqs://?region=r&endpoint=http://h": "sqs://?region=r&endpoint=http://h",
		"amqp://u:p#x@h/":                   "<URL not shown: it does not parse>",
		"amqp://u:p%zz@h/":                  "<URL not shown: it does not parse>",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWithQueueExpires(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://h/":                   "amqp://h/?queue_expires=5m",
		"amqps://h/v?prefetch=3":      "amqps://h/v?prefetch=3&queue_expires=5m",
		"amqp://h/?queue_expires=1h":  "amqp://h/?queue_expires=1h",
		"kafka://h:9092":              "kafka://h:9092",
		"sqs://?region=r&endpoint=xx": "sqs://?region=r&endpoint=xx",
	} {
		if got := withQueueExpires(in); got != want {
			t.Errorf("withQueueExpires(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTailMemory: mem:// is per process, so a tail sees only what its
// own process publishes, which is nothing; it shows the temporary group
// and the --idle and -n ends.
func TestTailMemory(t *testing.T) {
	r := runMQ(t, "", "tail", "mem://", "t", "--idle", "300ms").want(t, 0, "tail --idle")
	if !regexp.MustCompile(`tailing t on mem:// through temporary group mq-tail-[0-9a-f]{12} \(removed on exit\)`).MatchString(r.stderr) {
		t.Errorf("stderr %q does not announce the temporary group", r.stderr)
	}
	if !strings.Contains(r.stderr, "received 0 message(s)") {
		t.Errorf("stderr %q does not count the messages", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
}

// TestInterrupt: Ctrl-C ends tail normally, and a publish run before it
// is done with exit code 130.
func TestInterrupt(t *testing.T) {
	tail := start(t, "^tailing", "tail", "mem://", "t")
	_ = tail.cmd.Process.Signal(syscall.SIGINT)
	r := tail.wait(t, 10*time.Second)
	if r.code != 0 || !strings.Contains(r.stderr, "received 0") {
		t.Errorf("tail after SIGINT: exit %d, stderr %q; want 0 and a count", r.code, r.stderr)
	}

	pub := start(t, "^published [1-9]", "publish", "mem://", "t", "x", "-n", "1000", "--rate", "20", "--progress")
	_ = pub.cmd.Process.Signal(syscall.SIGINT)
	r = pub.wait(t, 10*time.Second)
	if r.code != 130 || !strings.Contains(r.stderr, "interrupted") {
		t.Errorf("publish after SIGINT: exit %d, stderr %q; want 130, interrupted", r.code, r.stderr)
	}
	if n := len(lines(r.stdout)); n == 0 || n >= 1000 {
		t.Errorf("publish after SIGINT printed %d IDs, want some but not all", n)
	}
}

func TestConformMemory(t *testing.T) {
	r := runMQ(t, "", "conform", "mem://", "--run", "^(round-trip|no-fan-out)$").want(t, 0, "conform")
	for _, re := range []string{
		`(?m)^conformance of mem://mq-conform \(memory driver\)$`,
		`(?m)^round-trip +PASS +[0-9.]+s`,
		`(?m)^no-fan-out +SKIP +[0-9.]+s +skipped: checks brokers without capability FanOut`,
		`(?m)^1 passed, 1 skipped, 0 failed$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("conform output does not match %s:\n%s", re, r.stdout)
		}
	}
	r = runMQ(t, "", "conform", "mem://", "--run", "^round-trip$", "--json").want(t, 0, "conform --json")
	ls := lines(r.stdout)
	if len(ls) != 2 || !strings.Contains(ls[0], `"case":"round-trip"`) || !strings.Contains(ls[0], `"result":"pass"`) ||
		!strings.Contains(ls[1], `"passed":1`) {
		t.Errorf("conform --json:\n%s", r.stdout)
	}
	list := runMQ(t, "", "conform", "--list").want(t, 0, "conform --list")
	if !strings.Contains(list.stdout, "round-trip\n") {
		t.Errorf("conform --list does not list round-trip:\n%s", list.stdout)
	}
}
