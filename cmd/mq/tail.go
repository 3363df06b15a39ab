package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/seedmq/mq"
)

var tailCmd = &command{
	name:    "tail",
	args:    "URL TOPIC",
	summary: "print a topic's messages as they arrive",
	run:     runTail,
}

const tailAbout = `
By default tail reads through a temporary group of its own, named
mq-tail-<random>, that it creates before it starts (so every message
published after "tailing ..." appears on standard error is printed) and
removes when it stops: it never takes messages from a service's group.
On sns+sqs:// the temporary group is a queue subscribed to the topic,
unsubscribed and deleted on exit. Brokers without fan-out (sqs://: a queue
is one group) cannot give it a group of its own; there tail refuses unless
--group names the group to read through. With --group, tail acknowledges what it prints: the messages are
consumed from that group, as a subscriber of it would; messages it fetched
beyond -n are released to the group again (on SQS that counts as a
receive).

On RabbitMQ the temporary queue is also declared with queue_expires=5m
(unless the URL sets it), so that a tail killed before it could remove its
queue leaves nothing behind for long.

Messages are printed one per line: ID, key, attempt (after the first),
headers, then "| " and the body (Go-quoted when it is not printable text).
--json prints JSON lines with id, key, topic, group, attempt, publish_time,
header, and body (UTF-8) or body_base64; mq replay reads them back.

Examples:
  mq tail kafka://127.0.0.1:9092 orders
  mq tail env:MQ_URL orders --from earliest -n 100 --json > orders.jsonl
  mq tail 'sqs://?region=eu-west-1' jobs --group jobs   # consumes!`

func runTail(c *cli, args []string) error {
	fs := c.newFlags(tailAbout)
	group := fs.String("group", "", "read through this existing `group`, acknowledging (consuming) what is printed")
	var from startFlag
	fs.Var(&from, "from", "where the temporary group starts: `latest` (messages published from now on) or earliest (brokers with replay)")
	count := fs.Int("n", 0, "stop after this many messages (0: no limit)")
	idle := fs.Duration("idle", 0, "stop after this long without a message (0: never)")
	asJSON := fs.Bool("json", false, "print JSON lines")
	bodyOnly := fs.Bool("body", false, "print only each body, as it is, followed by a newline")
	keep := fs.Bool("keep-group", false, "do not remove the temporary group on exit")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on connecting, creating and removing the group")
	quiet := fs.Bool("q", false, "no status lines on standard error")
	pos, err := c.parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	topic := pos[1]
	if *count < 0 {
		return usagef("-n %d: want 0 or more", *count)
	}
	if *asJSON && *bodyOnly {
		return usagef("--json and --body exclude each other")
	}
	temp := *group == ""
	if !temp && from.set {
		return usagef("--from applies to the temporary group; an existing group (--group) reads from where it is")
	}

	raw, err := resolveURL(pos[0])
	if err != nil {
		return err
	}
	if temp {
		raw = withQueueExpires(raw)
	}
	b, shown, err := c.open(raw, *timeout)
	if err != nil {
		return err
	}
	defer c.close(b, *timeout)
	caps := b.Capabilities()

	g := *group
	if temp {
		if !caps.FanOut {
			return &exitError{exitUnsupported, fmt.Sprintf("the %s driver has no fan-out: a topic has one group, so tail cannot read %q through a group of its own without taking messages from that group's consumers. "+
				"To read through the topic's group, and consume what is printed, pass --group NAME", caps.Driver, topic)}
		}
		if _, ok := b.(mq.GroupDeleter); !ok && !*keep {
			return &exitError{exitUnsupported, fmt.Sprintf("the %s driver cannot remove groups, so tail would leave its temporary group behind; pass --keep-group to accept that, or --group NAME", caps.Driver)}
		}
		if from.pos == mq.Earliest && !caps.Replay {
			return &exitError{exitUnsupported, fmt.Sprintf("the %s driver cannot replay: a new group starts with messages published after it was created, so --from earliest cannot be honoured", caps.Driver)}
		}
		g = "mq-tail-" + randomHex(6)
		if from.pos == mq.Latest {
			// Create the group now, so that everything published after
			// the "tailing" line is kept for it.
			ctx, cancel := context.WithTimeout(c.ctx, *timeout)
			err := mq.Provision(ctx, b, topic, g)
			cancel()
			if err != nil && !errors.Is(err, mq.ErrNotSupported) {
				return err
			}
		}
		defer func() {
			if *keep {
				c.status(*quiet, "left temporary group %s on topic %s", g, topic)
				return
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), *timeout)
			defer cancel()
			if err := mq.DeleteGroup(ctx, b, topic, g); err != nil {
				fmt.Fprintf(c.stderr, "mq tail: could not remove temporary group %s: %s\n", g, scrub(err.Error()))
			}
		}()
		c.status(*quiet, "tailing %s on %s through temporary group %s (removed on exit); Ctrl-C stops", topic, shown, g)
	} else {
		c.status(*quiet, "tailing %s on %s through group %s, consuming what is printed; Ctrl-C stops", topic, shown, g)
	}

	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		n    int
		last = time.Now()
		werr error
	)
	h := func(_ context.Context, m *mq.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if *count > 0 && n >= *count || werr != nil {
			// Not printed: leave it in the group.
			return errors.New("mq tail: stopping")
		}
		switch {
		case *asJSON:
			werr = writeJSON(c.stdout, toJSON(m))
		case *bodyOnly:
			_, werr = c.stdout.Write(append(append([]byte(nil), m.Body...), '\n'))
		default:
			_, werr = fmt.Fprintln(c.stdout, textLine(m))
		}
		if werr != nil {
			cancel() // standard output is gone (a closed pipe)
			return werr
		}
		n++
		last = time.Now()
		if *count > 0 && n >= *count {
			cancel()
		}
		return nil
	}
	if *idle > 0 {
		go func() {
			t := time.NewTicker(min(*idle/4+time.Millisecond, 250*time.Millisecond))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					mu.Lock()
					quiet := time.Since(last) >= *idle
					mu.Unlock()
					if quiet {
						cancel()
						return
					}
				}
			}
		}()
	}
	err = b.Subscribe(ctx, topic, h, mq.Group(g), mq.Concurrency(1), mq.StartAt(from.pos))
	mu.Lock()
	got := n
	mu.Unlock()
	c.status(*quiet, "received %d message(s)", got)
	if errors.Is(err, context.Canceled) {
		return nil // -n reached, --idle passed, or Ctrl-C: all normal ends of a tail
	}
	return err
}

// status prints a line on standard error unless quiet.
func (c *cli) status(quiet bool, format string, a ...any) {
	if !quiet {
		fmt.Fprintf(c.stderr, format+"\n", a...)
	}
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withQueueExpires adds queue_expires=5m to an amqp:// or amqps:// URL
// that does not set it, so that the temporary queue of a tail that was
// killed goes away by itself.
func withQueueExpires(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (!strings.EqualFold(u.Scheme, "amqp") && !strings.EqualFold(u.Scheme, "amqps")) {
		return raw
	}
	q := u.Query()
	if q.Has("queue_expires") {
		return raw
	}
	if u.RawQuery != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += "queue_expires=5m"
	return u.String()
}
