package conformance

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

// crashCases kill a consumer process with handlers in flight.
var crashCases = []testCase{
	{name: "consumer-crash", run: consumerCrash},
}

// Bounds of consumer-crash.
const (
	// CrashChildEnv marks the subprocess of consumer-crash and names its
	// topic and group ("topic group").
	CrashChildEnv = "MQ_CONFORMANCE_CRASH_CHILD"
	// crashMessages is how many messages consumer-crash publishes, each
	// with a key of its own.
	crashMessages = 8
	// crashConcurrency is the subprocess's Concurrency: that many handlers
	// start and never return.
	crashConcurrency = 4
	// CrashSettle is how long consumer-crash lets the subprocess run
	// after its handlers started, before it kills it: longer than the
	// cadence at which drivers record started deliveries (Kafka's commit
	// interval).
	CrashSettle = time.Second
	// crashStartedLine prefixes the line the subprocess prints, with a
	// message ID, when a handler starts.
	crashStartedLine = "mq-conformance-handler-started "
)

// consumerCrash: a subprocess (this test binary, run again for this case
// alone) subscribes with Concurrency 4 to 8 published messages; its
// handlers never return. Once they have all started, and CrashSettle
// later, it is killed with SIGKILL. A new subscriber of the same group
// then gets every message (nothing lost), and the messages whose handlers
// had started come back with Attempt 2 or more. Skipped for brokers that
// are not Persistent, which live in the test's own process (memory),
// where a subprocess cannot reach them.
func consumerCrash(t *testing.T, e *env) {
	if v := os.Getenv(CrashChildEnv); v != "" {
		crashChild(t, e, v)
		return
	}
	if !e.caps.Persistent {
		t.Skip("skipped: needs a broker outside the test process (Capabilities.Persistent false, as for the in-process memory broker): the case kills a consumer subprocess")
	}
	pub := e.open(t)
	e.provision(t, pub, e.topic, e.group)
	msgs := make([]*mq.Message, crashMessages)
	for i := range msgs {
		msgs[i] = &mq.Message{Key: "k" + strconv.Itoa(i), Body: []byte("crash-" + strconv.Itoa(i))}
	}
	e.publish(t, pub, e.topic, msgs...)

	started := runCrashChild(t, e)
	t.Logf("killed the consumer subprocess with %d handlers running", len(started))

	c := newCollector()
	e.sub(t, e.open(t), c.handler(0, nil))
	e.awaitAckedFor(t, 2*e.timeout, c, "every message after the consumer crashed", ids(msgs))
	var startedAttempts, rest []int
	for _, id := range started {
		got := c.attempts(id)
		if len(got) == 0 || got[0] < 2 {
			t.Errorf("message %s, whose handler was running when the consumer was killed: got attempts %v, want the redelivery's Attempt at least 2", id, got)
		}
		startedAttempts = append(startedAttempts, got...)
	}
	for _, m := range msgs {
		if !slices.Contains(started, m.ID) {
			rest = append(rest, c.attempts(m.ID)...)
		}
	}
	t.Logf("after the crash: messages whose handlers had started arrived with attempts %v, the others with %v", startedAttempts, rest)
}

// runCrashChild starts the subprocess, waits for crashConcurrency of its
// handlers to start, lets it run CrashSettle more, kills it and returns
// the IDs of the messages whose handlers had started.
func runCrashChild(t *testing.T, e *env) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*e.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], crashChildArgs(t.Name(), 3*e.timeout)...)
	cmd.Env = append(os.Environ(), CrashChildEnv+"="+e.topic+" "+e.group)
	// The subprocess exits when its stdin ends, so it dies with this
	// process even if the kill below never happens.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("consumer subprocess: %v", err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("consumer subprocess: %v", err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("consumer subprocess: %v", err)
	}
	var (
		mu      sync.Mutex
		started []string
		other   bytes.Buffer
	)
	startedCh := make(chan struct{}, crashMessages)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			if id, ok := strings.CutPrefix(line, crashStartedLine); ok {
				started = append(started, id)
				select {
				case startedCh <- struct{}{}:
				default: // more than were waited for
				}
			} else if other.Len() < 64<<10 {
				other.WriteString(line + "\n")
			}
			mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	waited := false
	defer func() {
		if !waited {
			_ = cmd.Process.Kill()
			<-readDone
			_ = cmd.Wait()
		}
	}()
	deadline := time.NewTimer(e.timeout)
	defer deadline.Stop()
	for n := 0; n < crashConcurrency; n++ {
		select {
		case <-startedCh:
		case <-readDone:
			_ = cmd.Wait()
			waited = true
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("the consumer subprocess ended (%v) after %d handlers started, want %d running; its output:\n%s%s", cmd.ProcessState, n, crashConcurrency, other.String(), stderr.String())
		case <-deadline.C:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("%d handlers started in the consumer subprocess within %v, want %d; its output:\n%s", n, e.timeout, crashConcurrency, other.String())
		}
	}
	time.Sleep(CrashSettle)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill the consumer subprocess: %v", err)
	}
	<-readDone
	_ = cmd.Wait()
	waited = true
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), started...)
}

// crashChildArgs returns the arguments that run this program again for
// the test named name alone, bounded by timeout: this process's own
// arguments without its -test flags, then -test.run matching exactly
// name.
func crashChildArgs(name string, timeout time.Duration) []string {
	var args []string
	in := os.Args[1:]
	for i := 0; i < len(in); i++ {
		a := in[i]
		flag, ok := strings.CutPrefix(a, "-test.")
		if !ok {
			args = append(args, a)
			continue
		}
		if !strings.Contains(flag, "=") && testFlagTakesValue[flag] {
			i++ // its value is the next argument
		}
	}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return append(args, "-test.run="+strings.Join(parts, "/"), "-test.count=1", "-test.timeout="+timeout.String())
}

// testFlagTakesValue lists the go test flags whose value may follow as a
// separate argument.
var testFlagTakesValue = map[string]bool{
	"run": true, "skip": true, "count": true, "timeout": true, "parallel": true, "cpu": true,
	"list": true, "shuffle": true, "bench": true, "benchtime": true, "outputdir": true,
	"coverprofile": true, "cpuprofile": true, "memprofile": true, "memprofilerate": true,
	"blockprofile": true, "blockprofilerate": true, "mutexprofile": true, "mutexprofilefraction": true,
	"trace": true, "testlogfile": true, "gocoverdir": true, "fuzz": true, "fuzztime": true, "fuzzminimizetime": true,
}

// crashChild is consumer-crash's subprocess: it subscribes to the topic
// and group named by v with handlers that print the message ID and never
// return, until it is killed. It exits by itself when its stdin ends (the
// parent died) or after three case timeouts.
func crashChild(t *testing.T, e *env, v string) {
	topic, group, ok := strings.Cut(v, " ")
	if !ok {
		t.Fatalf("%s=%q: want \"topic group\"", CrashChildEnv, v)
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(2)
	}()
	time.AfterFunc(3*e.timeout, func() {
		fmt.Fprintln(os.Stderr, "consumer-crash subprocess: not killed in time; exiting")
		os.Exit(2)
	})
	b := e.open(t)
	var mu sync.Mutex
	h := func(ctx context.Context, m *mq.Message) error {
		mu.Lock()
		fmt.Fprintf(os.Stdout, "%s%s\n", crashStartedLine, m.ID)
		mu.Unlock()
		<-ctx.Done() // never, before the kill cuts the handler short
		return ctx.Err()
	}
	err := b.Subscribe(context.Background(), topic, h, mq.Group(group), mq.Concurrency(crashConcurrency))
	t.Fatalf("Subscribe in the consumer subprocess returned %v before the kill", err)
}
