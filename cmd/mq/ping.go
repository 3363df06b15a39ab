package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/seedmq/mq"
)

var pingCmd = &command{
	name:    "ping",
	args:    "URL",
	summary: "check that the broker answers, and show what it can do",
	run:     runPing,
}

const pingAbout = `
ping opens the URL (each driver checks what it can at once: Kafka and
SQS connect, RabbitMQ dials), calls the broker's health check and prints
the round trip and the driver's capabilities. With -c it pings every
interval and prints each round trip. A failed ping exits 1.

Example:
  mq ping kafka://127.0.0.1:9092
  mq ping env:MQ_URL --json`

func runPing(c *cli, args []string) error {
	fs := c.newFlags(pingAbout)
	asJSON := fs.Bool("json", false, "print one JSON object per ping")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on connecting and on each ping")
	n := fs.Int("c", 1, "ping this many times (0: until Ctrl-C)")
	interval := fs.Duration("i", time.Second, "wait this long between pings")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *n < 0 {
		return usagef("-c %d: want 0 or more", *n)
	}
	start := time.Now()
	b, shown, err := c.open(pos[0], *timeout)
	if err != nil {
		return err
	}
	defer c.close(b, *timeout)
	connect := time.Since(start)
	caps := b.Capabilities()
	if !*asJSON {
		fmt.Fprintf(c.stdout, "%s: %s driver, connected in %s\ncapabilities: %s\n", shown, caps.Driver, connect.Round(time.Microsecond), capsText(caps))
	}
	for i := 0; *n == 0 || i < *n; i++ {
		if i > 0 {
			if err := sleep(c.ctx, *interval); err != nil {
				return nil // Ctrl-C ends a repeated ping
			}
		}
		ctx, cancel := context.WithTimeout(c.ctx, *timeout)
		t := time.Now()
		err := mq.Ping(ctx, b)
		rtt := time.Since(t)
		cancel()
		if *asJSON {
			out := map[string]any{"url": shown, "driver": caps.Driver, "ok": err == nil, "rtt_ms": float64(rtt.Microseconds()) / 1000,
				"connect_ms": float64(connect.Microseconds()) / 1000, "capabilities": caps}
			if err != nil {
				out["error"] = err.Error()
			}
			if werr := writeJSON(c.stdout, out); werr != nil {
				return werr
			}
		} else if err == nil {
			fmt.Fprintf(c.stdout, "ok: ping %s\n", rtt.Round(time.Microsecond))
		}
		if err != nil {
			if c.ctx.Err() != nil && *n == 0 {
				return nil
			}
			return err
		}
	}
	return nil
}

// capsText lists the capabilities a broker has and its limits.
func capsText(c mq.Capabilities) string {
	var have, lack []string
	for _, n := range []mq.Capability{mq.CapFanOut, mq.CapOrderingByKey, mq.CapReplay, mq.CapNackDelay, mq.CapDelayedDelivery, mq.CapPersistent} {
		if c.Has(n) {
			have = append(have, string(n))
		} else {
			lack = append(lack, string(n))
		}
	}
	s := fmt.Sprintf("%s; lacks %s; max message %d bytes", strings.Join(have, " "), strings.Join(lack, " "), c.MaxMessageBytes)
	if c.MaxHeaders > 0 {
		s += fmt.Sprintf(", %d headers", c.MaxHeaders)
	}
	if c.MaxDelay > 0 {
		s += fmt.Sprintf(", delay up to %s", c.MaxDelay)
	}
	return s
}
