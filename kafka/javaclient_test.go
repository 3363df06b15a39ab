package kafka_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq/kafka/kafkatest"
)

// The Java side of the interoperability tests: kafka/testdata/javaclient,
// compiled with the machine's javac against the kafka-clients jar of the
// Kafka distribution scripts/brokers installs (no download of its own).

// EnvKafkaClientsClasspath names the variable holding the class path of
// kafka-clients and slf4j-api, as `scripts/brokers env` prints it. When it
// is unset the tests look where scripts/brokers installs Kafka.
const EnvKafkaClientsClasspath = "MQ_TEST_KAFKA_CLIENTS_CLASSPATH"

// kafkaVersion is the Kafka distribution scripts/brokers installs.
const kafkaVersion = "3.9.1"

// javaUnavailable skips t, or fails it in CI (MQ_TEST_REQUIRE_BROKERS=1).
func javaUnavailable(t *testing.T, why string) {
	t.Helper()
	msg := "Java interoperability test: " + why + "; install a JDK and run `scripts/brokers up kafka` (or set " + EnvKafkaClientsClasspath + ")"
	if v := os.Getenv("MQ_TEST_REQUIRE_BROKERS"); v == "1" || v == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// kafkaClientsClasspath finds kafka-clients and slf4j-api: the variable,
// else the layout scripts/brokers uses ($MQ_BROKERS_CACHE, default
// .cache/brokers at the root of the checkout whose scripts/brokers runs
// the brokers, else this one's).
func kafkaClientsClasspath(t *testing.T) string {
	t.Helper()
	if cp := os.Getenv(EnvKafkaClientsClasspath); cp != "" {
		for _, f := range filepath.SplitList(cp) {
			if _, err := os.Stat(f); err != nil {
				javaUnavailable(t, EnvKafkaClientsClasspath+" names a missing file: "+err.Error())
			}
		}
		return cp
	}
	cache := os.Getenv("MQ_BROKERS_CACHE")
	if cache == "" {
		root := ""
		if s := os.Getenv("MQ_TEST_BROKERS_SCRIPT"); s != "" {
			root = filepath.Dir(filepath.Dir(s))
		} else if _, file, _, ok := runtime.Caller(0); ok {
			root = filepath.Dir(filepath.Dir(file))
		}
		cache = filepath.Join(root, ".cache", "brokers")
	}
	lib := filepath.Join(cache, "kafka", kafkaVersion, "lib")
	var cp []string
	for _, pattern := range []string{"kafka-clients-*.jar", "slf4j-api-*.jar"} {
		m, _ := filepath.Glob(filepath.Join(lib, pattern))
		if len(m) == 0 {
			javaUnavailable(t, "no "+pattern+" in "+lib)
		}
		cp = append(cp, m[0])
	}
	return strings.Join(cp, string(os.PathListSeparator))
}

// javaClient compiles the Java tool into a temporary directory and returns
// the class path to run it with.
func javaClient(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"javac", "java"} {
		if _, err := exec.LookPath(tool); err != nil {
			javaUnavailable(t, tool+" not found")
		}
	}
	cp := kafkaClientsClasspath(t)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "javac", "-d", out, "-cp", cp, filepath.Join("testdata", "javaclient", "MqJava.java"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, b)
	}
	return out + string(os.PathListSeparator) + cp
}

// javaProc is a running client process of an interoperability test:
// MqJava, or the librdkafka script (rdkafka_test.go), which print the
// same lines.
type javaProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	err    error // of Wait, once exited is closed

	mu     sync.Mutex
	lines  []string
	stderr bytes.Buffer
}

// startJava runs MqJava with args against the test broker. Cleanup stops
// it: stdin is closed (the consumer commits and leaves), and the process
// is killed if it has not exited 20s later.
func startJava(t *testing.T, cp, name string, args ...string) *javaProc {
	t.Helper()
	bootstrap := strings.Join(kafkatest.Addrs(t), ",")
	full := append([]string{"-cp", cp, "MqJava", args[0], bootstrap}, args[1:]...)
	return startProc(t, "java "+name, exec.Command("java", full...))
}

// startProc starts cmd, collecting its output lines. Cleanup stops it as
// startJava says.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *javaProc {
	t.Helper()
	p := &javaProc{t: t, name: name, cmd: cmd, exited: make(chan struct{})}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
	}()
	go func() {
		<-lines // Wait closes the pipe: read it all first
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// stop closes stdin and waits up to 20s for the process to exit, then
// kills it (this process only, by its pid). It returns Wait's error.
func (p *javaProc) stop() error {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.t.Errorf("%s did not exit within 20s of its stdin closing; killing pid %d", p.name, p.cmd.Process.Pid)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	return p.err
}

// wait waits for the process to exit by itself, up to d.
func (p *javaProc) wait(d time.Duration) error {
	select {
	case <-p.exited:
		return p.err
	case <-time.After(d):
		return fmt.Errorf("%s still running after %v", p.name, d)
	}
}

// snapshot returns the lines printed so far.
func (p *javaProc) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// output returns stdout and stderr for failure messages.
func (p *javaProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "stdout:\n" + strings.Join(p.lines, "\n") + "\nstderr:\n" + p.stderr.String()
}

// waitFor waits up to d for a line satisfying ok and returns it.
func (p *javaProc) waitFor(d time.Duration, what string, ok func(string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for seen := 0; ; {
		lines := p.snapshot()
		for ; seen < len(lines); seen++ {
			if ok(lines[seen]) {
				return lines[seen]
			}
		}
		select {
		case <-p.exited:
			p.t.Fatalf("%s exited (%v) before %s\n%s", p.name, p.err, what, p.output())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: no %s within %v\n%s", p.name, what, d, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assigned returns the partitions of the last ASSIGNED line, and whether
// there was one.
func (p *javaProc) assigned() ([]int, bool) {
	lines := p.snapshot()
	for i := len(lines) - 1; i >= 0; i-- {
		if rest, ok := strings.CutPrefix(lines[i], "ASSIGNED"); ok {
			return parseInts(strings.TrimSpace(rest)), true
		}
	}
	return nil, false
}

// records returns the values of the RECORD lines.
func (p *javaProc) records() []string {
	var out []string
	for _, l := range p.snapshot() {
		if rest, ok := strings.CutPrefix(l, "RECORD "); ok {
			f := strings.SplitN(rest, " ", 3)
			if len(f) == 3 {
				out = append(out, f[2])
			}
		}
	}
	return out
}

// checkNoException fails t if the process printed an exception.
func (p *javaProc) checkNoException() {
	p.t.Helper()
	for _, l := range p.snapshot() {
		if strings.HasPrefix(l, "EXCEPTION") {
			p.t.Errorf("%s: %s\n%s", p.name, l, p.output())
			return
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.stderr.String(); strings.Contains(s, "Exception") {
		p.t.Errorf("%s logged an exception:\n%s", p.name, s)
	}
}

func parseInts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}
