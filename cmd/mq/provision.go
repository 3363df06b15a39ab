package main

import (
	"context"
	"fmt"
	"time"

	"github.com/seedmq/mq"
)

var provisionCmd = &command{
	name:    "provision",
	args:    "URL TOPIC [GROUP...]",
	summary: "create a topic and groups ahead of time",
	run:     runProvision,
}

const provisionAbout = `
provision creates TOPIC and each GROUP bound to it, where they do not
exist, so that messages published from now on wait for those groups even
before any subscriber runs. It is idempotent. What it creates is the
driver's mapping: a Kafka topic and consumer groups at the end offsets, a
RabbitMQ exchange and one durable queue per group, an SQS queue (one group
at most).

Example:
  mq provision kafka://127.0.0.1:9092 orders billing shipping`

func runProvision(c *cli, args []string) error {
	fs := c.newFlags(provisionAbout)
	timeout := fs.Duration("timeout", 30*time.Second, "bound on connecting and provisioning")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := c.parse(fs, args, 2, -1)
	if err != nil {
		return err
	}
	b, shown, err := c.open(pos[0], *timeout)
	if err != nil {
		return err
	}
	defer c.close(b, *timeout)
	topic, groups := pos[1], pos[2:]
	ctx, cancel := context.WithTimeout(c.ctx, *timeout)
	defer cancel()
	if err := mq.Provision(ctx, b, topic, groups...); err != nil {
		return err
	}
	if *asJSON {
		if groups == nil {
			groups = []string{}
		}
		return writeJSON(c.stdout, map[string]any{"url": shown, "topic": topic, "groups": groups})
	}
	fmt.Fprintf(c.stdout, "provisioned topic %s", topic)
	if len(groups) > 0 {
		fmt.Fprintf(c.stdout, " with group(s) %v", groups)
	}
	fmt.Fprintln(c.stdout)
	return nil
}
