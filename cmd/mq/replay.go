package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/seedmq/mq"
)

var replayCmd = &command{
	name:    "replay",
	args:    "URL TOPIC [FILE]",
	summary: "publish recorded messages (mq tail --json) or a topic's history to a topic",
	run:     runReplay,
}

const replayAbout = `
replay publishes to TOPIC, in order, the messages of the JSON lines in FILE
(standard input when FILE is absent or -), as mq tail --json writes them:
key, header and body (or body_base64) are kept; the ID is new unless
--keep-id. Fields that describe a delivery (topic, group, attempt,
publish_time) are ignored.

With --from-topic SRC it instead reads SRC from its oldest retained message
through a temporary group (removed afterwards) and republishes each message
to TOPIC, until --idle passes without one. That needs a broker with replay
(Kafka, memory); SRC itself is left untouched.

Each published ID is printed on standard output (JSON lines with --json).

Examples:
  mq tail env:MQ_URL orders --from earliest --idle 5s --json > orders.jsonl
  mq replay env:MQ_URL orders-copy orders.jsonl --rate 200
  mq replay kafka://127.0.0.1:9092 orders-v2 --from-topic orders`

func runReplay(c *cli, args []string) error {
	fs := c.newFlags(replayAbout)
	src := fs.String("from-topic", "", "republish this `topic`'s history instead of reading a file")
	keepID := fs.Bool("keep-id", false, "publish with the recorded ID (brokers that deduplicate by ID may drop it)")
	rate := fs.Float64("rate", 0, "at most this many `messages` per second (0: no limit)")
	idle := fs.Duration("idle", 5*time.Second, "with --from-topic: end after this long without a message")
	asJSON := fs.Bool("json", false, `print {"id","topic"} JSON lines instead of bare IDs`)
	timeout := fs.Duration("timeout", 30*time.Second, "bound on connecting and on each Publish call")
	prog := fs.Bool("progress", false, "report progress on standard error every second even when it is not a terminal")
	quiet := fs.Bool("q", false, "no summary on standard error")
	pos, err := c.parse(fs, args, 2, 3)
	if err != nil {
		return err
	}
	if *src != "" && len(pos) == 3 {
		return usagef("give FILE or --from-topic, not both")
	}
	if *rate < 0 {
		return usagef("--rate %v: want 0 or more", *rate)
	}
	topic := pos[1]
	if *src == topic {
		return usagef("--from-topic %s is TOPIC itself: the replay would read its own messages forever", topic)
	}
	var in io.Reader
	if *src == "" {
		file := ""
		if len(pos) == 3 {
			file = pos[2]
		}
		r, closeIn, err := c.input(file)
		if err != nil {
			return err
		}
		defer closeIn()
		in = r
	}
	b, _, err := c.open(pos[0], *timeout)
	if err != nil {
		return err
	}
	defer c.close(b, *timeout)

	p := c.startProgress("replayed", 0, *prog, time.Second)
	defer p.finish(*quiet)
	start := time.Now()
	var sent int64
	publish := func(ctx context.Context, m *mq.Message) error {
		if !*keepID {
			m.ID = ""
		}
		if *rate > 0 {
			if err := sleep(ctx, time.Until(start.Add(time.Duration(float64(sent) / *rate * float64(time.Second))))); err != nil {
				return err
			}
		}
		pctx, cancel := context.WithTimeout(ctx, *timeout)
		err := b.Publish(pctx, topic, m)
		cancel()
		if err != nil {
			return err
		}
		sent++
		p.add(1)
		if *asJSON {
			return writeJSON(c.stdout, map[string]string{"id": m.ID, "topic": topic})
		}
		_, err = fmt.Fprintln(c.stdout, m.ID)
		return err
	}

	if *src == "" {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 256<<20)
		for line := 1; sc.Scan(); line++ {
			if len(sc.Bytes()) == 0 {
				continue
			}
			var j jsonMessage
			if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
				return &exitError{exitUsage, fmt.Sprintf("line %d: not a message as mq tail --json writes it: %v", line, err)}
			}
			m, err := j.message()
			if err != nil {
				return &exitError{exitUsage, fmt.Sprintf("line %d: %v", line, err)}
			}
			if err := publish(c.ctx, m); err != nil {
				return err
			}
		}
		return sc.Err()
	}
	return replayTopic(c, b, *src, *idle, *quiet, publish)
}

// replayTopic reads src from its start through a temporary group and
// hands each message to publish, until idle passes without one.
func replayTopic(c *cli, b mq.Broker, src string, idle time.Duration, quiet bool, publish func(context.Context, *mq.Message) error) error {
	caps := b.Capabilities()
	if !caps.Replay || !caps.FanOut {
		return &exitError{exitUnsupported, fmt.Sprintf("the %s driver cannot replay a topic from its start through a group of its own", caps.Driver)}
	}
	g := "mq-replay-" + randomHex(6)
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 30*time.Second)
		defer cancel()
		if err := mq.DeleteGroup(ctx, b, src, g); err != nil && !errors.Is(err, mq.ErrNotSupported) {
			fmt.Fprintf(c.stderr, "mq replay: could not remove temporary group %s: %s\n", g, scrub(err.Error()))
		}
	}()
	c.status(quiet, "reading %s from its start through temporary group %s", src, g)
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	var mu sync.Mutex
	last := time.Now()
	busy := false
	go func() {
		t := time.NewTicker(min(idle/4+time.Millisecond, 250*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				mu.Lock()
				done := !busy && time.Since(last) >= idle
				mu.Unlock()
				if done {
					cancel()
					return
				}
			}
		}
	}()
	var perr error
	err := b.Subscribe(ctx, src, func(hctx context.Context, m *mq.Message) error {
		mu.Lock()
		busy = true
		mu.Unlock()
		defer func() {
			mu.Lock()
			busy, last = false, time.Now()
			mu.Unlock()
		}()
		out := &mq.Message{ID: m.ID, Key: m.Key, Body: m.Body, Header: m.Header}
		if err := publish(hctx, out); err != nil {
			perr = err
			cancel()
			return err
		}
		return nil
	}, mq.Group(g), mq.Concurrency(1), mq.StartAt(mq.Earliest))
	if perr != nil {
		return perr
	}
	if errors.Is(err, context.Canceled) && c.ctx.Err() == nil {
		return nil
	}
	return err
}
