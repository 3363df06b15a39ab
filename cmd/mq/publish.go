package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"time"

	"github.com/seedmq/mq"
)

var publishCmd = &command{
	name:    "publish",
	args:    "URL TOPIC [BODY]",
	summary: "publish messages to a topic and print their IDs",
	run:     runPublish,
}

const publishAbout = `
The body is BODY, or the contents of the file given by -f (- for standard
input), or standard input when neither is given. With --lines every line
of the input is a message of its own. Each ID is printed on standard
output once the broker has accepted the message (one per line, or JSON
lines with --json); a summary goes to standard error.

Examples:
  mq publish kafka://127.0.0.1:9092 orders '{"id":1}' -k order-1 -H source=cli
  mq publish env:MQ_URL orders -f order.json
  mq publish env:MQ_URL load-test hello -n 10000 --rate 500 --batch 50
  tail -f events.log | mq publish env:MQ_URL events --lines`

func runPublish(c *cli, args []string) error {
	fs := c.newFlags(publishAbout)
	file := fs.String("f", "", "read the body from `file` (- for standard input)")
	key := fs.String("k", "", "the message `key` (ordering key)")
	id := fs.String("id", "", "the message `ID` (default: a new UUIDv7); only with -n 1")
	headers := headerFlag{}
	fs.Var(headers, "H", "a header `key=value`; repeat for more")
	count := fs.Int("n", 1, "publish the message `count` times (each with a new ID)")
	rate := fs.Float64("rate", 0, "at most this many `messages` per second (0: as fast as the broker takes them)")
	batch := fs.Int("batch", 1, "messages per Publish call")
	delay := fs.Duration("delay", 0, "deliver no earlier than this `duration` after publishing (brokers with delayed delivery)")
	lines := fs.Bool("lines", false, "each line of the input is one message, published as it arrives (with --batch 1)")
	asJSON := fs.Bool("json", false, `print {"id","topic"} JSON lines instead of bare IDs`)
	timeout := fs.Duration("timeout", 30*time.Second, "bound on connecting and on each Publish call")
	prog := fs.Bool("progress", false, "report progress on standard error every second even when it is not a terminal")
	quiet := fs.Bool("q", false, "no summary on standard error")
	pos, err := c.parse(fs, args, 2, 3)
	if err != nil {
		return err
	}
	topic := pos[1]
	switch {
	case *count < 1:
		return usagef("-n %d: want 1 or more", *count)
	case *batch < 1:
		return usagef("--batch %d: want 1 or more", *batch)
	case *rate < 0:
		return usagef("--rate %v: want 0 or more", *rate)
	case *id != "" && (*count > 1 || *lines):
		return usagef("--id names one message: it cannot be used with -n or --lines")
	case len(pos) == 3 && *file != "":
		return usagef("give the body as an argument or with -f, not both")
	case *lines && len(pos) == 3:
		return usagef("--lines reads the input (-f or standard input), not BODY")
	case *lines && *count != 1:
		return usagef("-n repeats one body; it cannot be used with --lines")
	}

	// next returns the next body to publish, and false after the last.
	var next func() ([]byte, bool, error)
	total := int64(*count)
	switch {
	case len(pos) == 3:
		next = repeat([]byte(pos[2]), *count)
	default:
		in, closeIn, err := c.input(*file)
		if err != nil {
			return err
		}
		defer closeIn()
		if *lines {
			next, total = lineReader(in), 0
			break
		}
		body, err := io.ReadAll(in)
		if err != nil {
			return fmt.Errorf("reading the body: %w", err)
		}
		next = repeat(body, *count)
	}

	b, _, err := c.open(pos[0], *timeout)
	if err != nil {
		return err
	}
	defer c.close(b, *timeout)

	p := c.startProgress("published", total, *prog, time.Second)
	defer p.finish(*quiet)
	start := time.Now()
	var sent int64
	var msgs []*mq.Message
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		if *rate > 0 {
			// Send message number sent no earlier than sent/rate after
			// the start.
			due := start.Add(time.Duration(float64(sent) / *rate * float64(time.Second)))
			if err := sleep(c.ctx, time.Until(due)); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(c.ctx, *timeout)
		err := b.Publish(ctx, topic, msgs...)
		cancel()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if *asJSON {
				if err := writeJSON(c.stdout, map[string]string{"id": m.ID, "topic": topic}); err != nil {
					return err
				}
			} else if _, err := fmt.Fprintln(c.stdout, m.ID); err != nil {
				return err
			}
		}
		sent += int64(len(msgs))
		p.add(int64(len(msgs)))
		msgs = msgs[:0]
		return nil
	}
	for {
		body, ok, err := next()
		if err != nil {
			return fmt.Errorf("reading the input: %w", err)
		}
		if !ok {
			return flush()
		}
		msgs = append(msgs, &mq.Message{ID: *id, Key: *key, Body: body, Header: maps.Clone(headers), Delay: *delay})
		if len(msgs) == *batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// input opens file ("" or "-": standard input).
func (c *cli) input(file string) (io.Reader, func(), error) {
	if file == "" || file == "-" {
		return c.stdin, func() {}, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, &exitError{exitUsage, err.Error()}
	}
	return f, func() { f.Close() }, nil
}

// repeat returns body n times.
func repeat(body []byte, n int) func() ([]byte, bool, error) {
	return func() ([]byte, bool, error) {
		if n == 0 {
			return nil, false, nil
		}
		n--
		return body, true, nil
	}
}

// lineReader returns the lines of r, without their line endings, as they
// arrive.
func lineReader(r io.Reader) func() ([]byte, bool, error) {
	br := bufio.NewReader(r)
	return func() ([]byte, bool, error) {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && (err == nil || err == io.EOF) {
			return bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r")), true, nil
		}
		if err == io.EOF {
			return nil, false, nil
		}
		return nil, false, err
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
