package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/seedmq/mq"
)

// newFlags returns the flag set of c's command, whose --help prints the
// usage line, the summary, about (if any), the flags and the exit codes.
func (c *cli) newFlags(about string) *flag.FlagSet {
	fs := flag.NewFlagSet("mq "+c.cmd.name, flag.ContinueOnError)
	// Parse errors are reported by cli.exit, in one line; --help prints
	// the usage below, on standard output.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c.usage = func() {
		w := c.stdout
		fmt.Fprintf(w, "usage: mq %s [flags] %s\n\n%s\n", c.cmd.name, c.cmd.args, c.cmd.summary)
		if about != "" {
			fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(about))
		}
		fmt.Fprintf(w, "\nflags (also accepted after the arguments):\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		fmt.Fprintf(w, "\n%s\n", exitCodesHelp)
	}
	return fs
}

// parse parses args with flags and arguments in any order ("--" ends the
// flags) and checks the number of arguments is from lo to hi (hi < 0: no
// upper bound).
func (c *cli) parse(fs *flag.FlagSet, args []string, lo, hi int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				c.usage()
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if used := args[:len(args)-len(rest)]; len(used) > 0 && used[len(used)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < lo:
		return nil, usagef("want %s, got %d argument(s)", c.cmd.args, len(pos))
	case hi >= 0 && len(pos) > hi:
		return nil, usagef("want %s, got %d arguments (extra: %q)", c.cmd.args, len(pos), pos[hi:])
	}
	return pos, nil
}

// resolveURL returns the URL an argument names: the argument itself, or
// the value of the environment variable NAME for "env:NAME".
func resolveURL(arg string) (string, error) {
	raw, err := resolveArg(arg)
	if err == nil {
		noteSecrets(raw)
	}
	return raw, err
}

func resolveArg(arg string) (string, error) {
	if name, ok := strings.CutPrefix(arg, "env:"); ok {
		v := os.Getenv(name)
		if v == "" {
			return "", usagef("URL env:%s: the environment variable %s is not set or empty", name, name)
		}
		return v, nil
	}
	if arg == "" {
		return "", usagef("the URL is empty")
	}
	return arg, nil
}

// redact returns raw with its user info replaced by "***", for printing.
// A URL that does not parse is not printed at all.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || strings.Contains(raw, "#") {
		return "<URL not shown: it does not parse>"
	}
	if u.User != nil {
		u.User = url.User("***")
	}
	s := strings.Replace(u.String(), "%2A%2A%2A@", "***@", 1)
	// url.URL prints "mem://" and "sqs://?x=y", which have no host, as
	// "mem:" and "sqs:?x=y".
	if p := u.Scheme + ":"; u.Host == "" && strings.HasPrefix(strings.ToLower(raw), strings.ToLower(u.Scheme)+"://") && !strings.HasPrefix(s, p+"//") {
		s = p + "//" + strings.TrimPrefix(s, p)
	}
	return s
}

// open opens the broker a URL argument names, bounded by timeout.
func (c *cli) open(arg string, timeout time.Duration) (mq.Broker, string, error) {
	raw, err := resolveURL(arg)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	b, err := mq.Open(ctx, raw)
	if err != nil {
		return nil, redact(raw), err
	}
	return b, redact(raw), nil
}

// close closes b, giving in-flight work up to timeout to finish, even
// after Ctrl-C.
func (c *cli) close(b mq.Broker, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), timeout)
	defer cancel()
	return b.Close(ctx)
}

// headerFlag collects repeated -H key=value flags.
type headerFlag map[string]string

func (h headerFlag) String() string { return "" }

func (h headerFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	h[k] = v
	return nil
}

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// startFlag is --from: earliest or latest.
type startFlag struct {
	pos mq.StartPosition
	set bool
}

func (s *startFlag) String() string {
	if s.pos == mq.Earliest {
		return "earliest"
	}
	return "latest"
}

func (s *startFlag) Set(v string) error {
	switch v {
	case "earliest", "beginning", "start":
		s.pos = mq.Earliest
	case "latest", "end", "now":
		s.pos = mq.Latest
	default:
		return fmt.Errorf("want earliest or latest, got %q", v)
	}
	s.set = true
	return nil
}

// secrets holds the user info of every URL the command resolved, so that
// scrub can remove it from any message, including a driver's.
var (
	secretsMu sync.Mutex
	secrets   []string
)

// userInfo finds the user info of a URL even when it does not parse.
var userInfo = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://([^/?]*)@`)

func noteSecrets(raw string) {
	m := userInfo.FindStringSubmatch(raw)
	if m == nil {
		return
	}
	secretsMu.Lock()
	defer secretsMu.Unlock()
	info := m[1]
	secrets = append(secrets, info)
	user, pass, _ := strings.Cut(info, ":")
	for _, v := range []string{pass, user} {
		if len(v) >= 3 {
			secrets = append(secrets, v)
			if u, err := url.PathUnescape(v); err == nil && u != v && len(u) >= 3 {
				secrets = append(secrets, u)
			}
		}
	}
}

// scrub replaces every secret noted in s with "***".
func scrub(s string) string {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, "***")
	}
	return strings.ReplaceAll(s, "***:xxxxx@", "***@")
}
