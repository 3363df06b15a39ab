package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/conformance"
)

var conformCmd = &command{
	name:    "conform",
	args:    "URL",
	summary: "run the conformance suite against a broker and print a pass/skip/fail table",
	run:     runConform,
}

// conformChildCmd is the process that runs the suite. conformance.Run
// needs a *testing.T, which only the testing package can make: the child
// runs the suite under testing.Main (the entry point kept for programs
// that run tests outside go test) with -test.v, and the parent reads its
// output. A process of its own also keeps the suite's goroutine-leak
// checks and testing's own exit away from the parent.
var conformChildCmd = &command{
	name:   "__conform",
	hidden: true,
	run:    runConformChild,
}

// Environment of the child: the URL never goes on a command line.
const (
	envConformURL     = "MQ_CONFORM_URL"
	envConformNoProv  = "MQ_CONFORM_NO_PROVISION_URL"
	envConformTimeout = "MQ_CONFORM_TIMEOUT"
)

const conformAbout = `
conform runs the conformance suite of package
github.com/seedmq/mq/conformance against the broker at URL: the behaviour
every mq driver must have, checked on your broker's version, configuration
and URL parameters. Cases the broker's capabilities exclude are skipped,
naming the capability; the broker-restart case is always skipped (conform
cannot restart your broker). Each case creates topics and groups named
mqc-<case>-<random> and leaves them (on RabbitMQ, add queue_expires=10m to
the URL to have its queues removed); the suite takes minutes on a real
broker.

The provisioning-off case opens URL with provision=false added (or
--no-provision-url). A mem:// URL without a name is given one, so that the
suite's connections share one in-process server.

Results stream as the cases finish; the summary counts them. Exit 0 when
no case failed, 1 otherwise. -v prints the suite's own log (go test -v
output) on standard error. MQ_CONFORMANCE_STRESS=N repeats the suite.

Examples:
  mq conform kafka://127.0.0.1:9092 --timeout 60s
  mq conform env:MQ_URL --run 'round-trip|fan-out' --json`

func runConform(c *cli, args []string) error {
	fs := c.newFlags(conformAbout)
	timeout := fs.Duration("timeout", 30*time.Second, "bound on each wait for an expected delivery (Harness.Timeout)")
	run := fs.String("run", "", "run only the cases whose names match this `regexp`")
	noProv := fs.String("no-provision-url", "", "`URL` of the same broker with provisioning off (default: URL plus provision=false; \"none\" skips that case)")
	verbose := fs.Bool("v", false, "print the suite's log on standard error")
	asJSON := fs.Bool("json", false, "print one JSON object per case, then a summary object")
	list := fs.Bool("list", false, "list the cases and exit")
	pos, err := c.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	if *list {
		for _, name := range conformance.Cases() {
			fmt.Fprintln(c.stdout, name)
		}
		return nil
	}
	if len(pos) != 1 {
		return usagef("want URL")
	}
	var filter *regexp.Regexp
	if *run != "" {
		if filter, err = regexp.Compile(*run); err != nil {
			return usagef("--run: %v", err)
		}
	}
	raw, err := resolveURL(pos[0])
	if err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Let mq.Open say what is wrong, without echoing the URL.
		_, err = mq.Open(c.ctx, raw)
		return err
	}
	if strings.EqualFold(u.Scheme, "mem") && u.Host == "" {
		u.Host = "mq-conform"
		raw = u.String()
	}
	np := *noProv
	switch np {
	case "none":
		np = ""
	case "":
		q := u.Query()
		q.Set("provision", "false")
		v := *u
		v.RawQuery = q.Encode()
		np = v.String()
	default:
		if np, err = resolveURL(np); err != nil {
			return err
		}
	}
	// Fail fast, with the driver's own message, on a URL that does not
	// open, rather than in every case.
	b, shown, err := c.open(raw, *timeout)
	if err != nil {
		return err
	}
	caps := b.Capabilities()
	c.close(b, *timeout)

	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program to run the suite: %w", err)
	}
	pattern := "^TestConformance$"
	if filter != nil {
		var names []string
		for _, n := range conformance.Cases() {
			if filter.MatchString(n) {
				names = append(names, regexp.QuoteMeta(n))
			}
		}
		if len(names) == 0 {
			return usagef("--run %q matches no case; mq conform --list lists them", *run)
		}
		pattern += "/^(" + strings.Join(names, "|") + ")$"
	}
	cmd := exec.CommandContext(c.ctx, exe, conformChildCmd.name, "-test.v", "-test.run", pattern)
	cmd.Env = append(os.Environ(), envConformURL+"="+raw, envConformNoProv+"="+np, envConformTimeout+"="+timeout.String())
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if *verbose {
		cmd.Stderr = scrubWriter{c.stderr}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if !*asJSON {
		fmt.Fprintf(c.stdout, "conformance of %s (%s driver)\n%-32s %-5s %9s  %s\n", shown, caps.Driver, "CASE", "RESULT", "TIME", "DETAIL")
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	var log io.Writer = io.Discard
	if *verbose {
		log = c.stderr
	}
	sum, perr := c.readConformance(out, log, *asJSON)
	werr := cmd.Wait()
	if perr != nil {
		return perr
	}
	if *asJSON {
		if err := writeJSON(c.stdout, map[string]any{"url": shown, "driver": caps.Driver, "passed": sum.pass, "skipped": sum.skip, "failed": sum.fail}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "\n%d passed, %d skipped, %d failed\n", sum.pass, sum.skip, sum.fail)
	}
	switch {
	case c.ctx.Err() != nil:
		return c.ctx.Err()
	case sum.fail > 0:
		return &exitError{exitFailed, ""}
	case werr != nil:
		return fmt.Errorf("the suite ended abnormally (%v); run with -v to see its output", werr)
	case sum.pass+sum.skip == 0:
		return errors.New("the suite ran no case; run with -v to see its output")
	}
	return nil
}

type conformSummary struct{ pass, skip, fail int }

var (
	resultLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): TestConformance/(\S+) \(([0-9.]+)s\)`)
	runLine    = regexp.MustCompile(`^=== (RUN|CONT|NAME|PAUSE)\s+TestConformance/(\S+)`)
	logLine    = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)
)

// readConformance reads the child's go test -v output, printing each
// case's result as it finishes.
func (c *cli) readConformance(r io.Reader, log io.Writer, asJSON bool) (conformSummary, error) {
	var sum conformSummary
	logs := map[string][]string{}
	current := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := scrub(sc.Text())
		fmt.Fprintln(log, line)
		if m := runLine.FindStringSubmatch(line); m != nil {
			current = m[2]
			continue
		}
		if m := logLine.FindStringSubmatch(line); m != nil && current != "" {
			logs[current] = append(logs[current], m[1])
			continue
		}
		m := resultLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		result, name, secs := m[1], m[2], m[3]
		var detail []string
		switch result {
		case "PASS":
			sum.pass++
		case "SKIP":
			sum.skip++
			if l := logs[name]; len(l) > 0 {
				detail = l[len(l)-1:]
			}
		case "FAIL":
			sum.fail++
			for _, l := range logs[name] {
				if !strings.HasPrefix(l, "topic ") {
					detail = append(detail, l)
				}
			}
		}
		delete(logs, name)
		var err error
		if asJSON {
			out := map[string]any{"case": name, "result": strings.ToLower(result), "seconds": secs}
			if len(detail) > 0 {
				out["detail"] = strings.Join(detail, "\n")
			}
			err = writeJSON(c.stdout, out)
		} else {
			first := ""
			if len(detail) > 0 {
				first = detail[0]
			}
			_, err = fmt.Fprintf(c.stdout, "%-32s %-5s %8ss  %s\n", name, result, secs, first)
			for _, d := range detail[min(1, len(detail)):] {
				if err == nil {
					_, err = fmt.Fprintf(c.stdout, "%-32s %-5s %9s  %s\n", "", "", "", d)
				}
			}
		}
		if err != nil {
			return sum, err
		}
	}
	return sum, sc.Err()
}

// runConformChild runs the suite under testing.Main; it never returns.
func runConformChild(c *cli, args []string) error {
	raw := os.Getenv(envConformURL)
	if raw == "" {
		return usagef("__conform is run by mq conform")
	}
	np := os.Getenv(envConformNoProv)
	timeout, err := time.ParseDuration(os.Getenv(envConformTimeout))
	if err != nil {
		return usagef("%s: %v", envConformTimeout, err)
	}
	h := conformance.Harness{
		Open:    func(ctx context.Context) (mq.Broker, error) { return mq.Open(ctx, raw) },
		Timeout: timeout,
	}
	if np != "" {
		h.OpenNoProvision = func(ctx context.Context) (mq.Broker, error) { return mq.Open(ctx, np) }
	}
	// testing.Main parses the -test.* flags from os.Args.
	os.Args = append([]string{os.Args[0]}, args...)
	testing.Main(matchString, []testing.InternalTest{{
		Name: "TestConformance",
		F:    func(t *testing.T) { conformance.Run(t, h) },
	}}, nil, nil)
	return nil
}

// matchString is the matcher testing.Main wants for -test.run.
func matchString(pat, str string) (bool, error) {
	return regexp.MatchString(pat, str)
}

// scrubWriter scrubs secrets from what it writes.
type scrubWriter struct{ w io.Writer }

func (s scrubWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(s.w, scrub(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
