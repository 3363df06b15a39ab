package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/seedmq/mq"
)

var lagCmd = &command{
	name:    "lag",
	args:    "URL TOPIC GROUP",
	summary: "show how far a group is behind a topic, once or live",
	run:     runLag,
}

const lagAbout = `
lag prints the backlog of GROUP on TOPIC as the broker counts it:
  kafka     end offset minus committed offset, per partition, and the sum
  rabbitmq  messages ready in the group's queue; with the URL parameter
            management=http://HOST:15672 (the management plugin's API)
            also unacknowledged ones and those waiting for a nack delay
  sqs       ApproximateNumberOfMessages + NotVisible + Delayed (estimates)
  memory    depth: messages not yet acknowledged (mem:// is per process,
            so only a group of this process, which has none, is seen)
It changes nothing on the broker. With --watch it prints a line every
interval with the backlog and how fast it drains (negative: grows), and an
estimate of when it will be empty. With --max N it exits 5 when the
backlog is above N (after the last reading), for scripts and probes.

Examples:
  mq lag kafka://127.0.0.1:9092 orders billing
  mq lag env:MQ_URL orders billing --watch 2s
  mq lag env:MQ_URL orders billing --json --max 10000`

func runLag(c *cli, args []string) error {
	fs := c.newFlags(lagAbout)
	asJSON := fs.Bool("json", false, "print JSON (one object per reading)")
	watch := fs.Duration("watch", 0, "read again every `interval` until Ctrl-C (0: once)")
	count := fs.Int("n", 0, "with --watch, stop after this many readings (0: until Ctrl-C)")
	maxLag := fs.Int64("max", -1, "exit 5 when the backlog is above this many messages (-1: never)")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on connecting and on each reading")
	pos, err := c.parse(fs, args, 3, 3)
	if err != nil {
		return err
	}
	if *watch < 0 || *count < 0 {
		return usagef("--watch and -n want 0 or more")
	}
	b, _, err := c.open(pos[0], *timeout)
	if err != nil {
		return err
	}
	defer c.close(b, *timeout)
	topic, group := pos[1], pos[2]

	var prev mq.Backlog
	var prevT time.Time
	var last mq.Backlog
	for i := 0; ; i++ {
		if i > 0 {
			if *watch == 0 || (*count > 0 && i >= *count) {
				break
			}
			if err := sleep(c.ctx, *watch); err != nil {
				break // Ctrl-C ends a watch normally
			}
		}
		ctx, cancel := context.WithTimeout(c.ctx, *timeout)
		bl, err := mq.BacklogOf(ctx, b, topic, group)
		cancel()
		now := time.Now()
		if err != nil {
			if c.ctx.Err() != nil && *watch > 0 {
				break
			}
			return err
		}
		rate, known := 0.0, i > 0
		if known {
			rate = float64(prev.Messages-bl.Messages) / now.Sub(prevT).Seconds()
		}
		if *asJSON {
			err = writeJSON(c.stdout, lagJSON(now, bl, rate, known))
		} else if *watch == 0 {
			err = printLag(c, bl)
		} else {
			if i == 0 && bl.Note != "" {
				fmt.Fprintf(c.stderr, "note: %s\n", bl.Note)
			}
			err = printLagLine(c, now, bl, rate, known)
		}
		if err != nil {
			return err
		}
		prev, prevT, last = bl, now, bl
	}
	if *maxLag >= 0 && last.Messages > *maxLag {
		return &exitError{exitAbove, fmt.Sprintf("backlog %d is above --max %d", last.Messages, *maxLag)}
	}
	return nil
}

func lagJSON(now time.Time, bl mq.Backlog, rate float64, known bool) map[string]any {
	out := map[string]any{
		"time": now.UTC().Format(time.RFC3339Nano), "topic": bl.Topic, "group": bl.Group,
		"messages": bl.Messages, "in_flight": bl.InFlight, "delayed": bl.Delayed, "approximate": bl.Approximate,
	}
	if bl.Partitions != nil {
		ps := make([]map[string]int64, len(bl.Partitions))
		for i, p := range bl.Partitions {
			ps[i] = map[string]int64{"partition": int64(p.Partition), "end": p.End, "committed": p.Committed, "lag": p.Lag}
		}
		out["partitions"] = ps
	}
	if known {
		out["drain_per_second"] = rate
	}
	if bl.Note != "" {
		out["note"] = bl.Note
	}
	return out
}

func printLag(c *cli, bl mq.Backlog) error {
	var sb strings.Builder
	approx := ""
	if bl.Approximate {
		approx = "~"
	}
	fmt.Fprintf(&sb, "topic %s group %s: %s%d message(s) behind", bl.Topic, bl.Group, approx, bl.Messages)
	if bl.InFlight >= 0 {
		fmt.Fprintf(&sb, ", %s%d in flight", approx, bl.InFlight)
	}
	if bl.Delayed > 0 {
		fmt.Fprintf(&sb, ", %s%d delayed", approx, bl.Delayed)
	}
	sb.WriteString("\n")
	if bl.Note != "" {
		fmt.Fprintf(&sb, "note: %s\n", bl.Note)
	}
	if bl.Partitions != nil {
		fmt.Fprintf(&sb, "%-10s %12s %12s %12s\n", "PARTITION", "END", "COMMITTED", "LAG")
		for _, p := range bl.Partitions {
			committed := fmt.Sprint(p.Committed)
			if p.Committed < 0 {
				committed = "-"
			}
			fmt.Fprintf(&sb, "%-10d %12d %12s %12d\n", p.Partition, p.End, committed, p.Lag)
		}
	}
	_, err := fmt.Fprint(c.stdout, sb.String())
	return err
}

func printLagLine(c *cli, now time.Time, bl mq.Backlog, rate float64, known bool) error {
	line := fmt.Sprintf("%s %s/%s %d", now.Format("15:04:05"), bl.Topic, bl.Group, bl.Messages)
	if bl.InFlight >= 0 {
		line += fmt.Sprintf(" (%d in flight)", bl.InFlight)
	}
	if known {
		line += fmt.Sprintf(" drain %.1f/s", rate)
		switch {
		case bl.Messages == 0:
			line += " empty"
		case rate > 0:
			line += fmt.Sprintf(" empty in ~%s", time.Duration(float64(bl.Messages)/rate*float64(time.Second)).Round(time.Second))
		default:
			line += " not draining"
		}
	}
	_, err := fmt.Fprintln(c.stdout, line)
	return err
}
