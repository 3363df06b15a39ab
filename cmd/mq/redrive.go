package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/middleware"
)

var redriveCmd = &command{
	name:    "redrive",
	args:    "URL DLQ",
	summary: "move dead letters back to the topic they came from",
	run:     runRedrive,
}

const redriveAbout = `
redrive runs middleware.Redrive: it reads the dead-letter topic DLQ and
republishes each dead letter (all, or those the filters select) to the
topic it was dead-lettered from (its dlq-topic header) or to --to, with its
original headers and a new ID (the original in redrive-original-id, unless
--keep-id). A dead letter is acknowledged only after its republish was
accepted. Those the filters reject stay in DLQ: they are republished to its
back, as middleware.Redrive does. The run ends after --idle without a dead
letter it has not seen, or after --limit moves.

Filters combine with AND: --source-topic, --match-header key=value
(repeatable), --match-error (regular expression on the dlq-error header),
--match-body (substring).

--dry-run moves nothing to any topic and prints what would move. Reading a
dead letter still means acknowledging it, so a dry run leaves every dead
letter in DLQ the way a rejected one is left: republished to its back with
its original ID in redrive-original-id. Nothing is lost; order and IDs in
DLQ change.

Each moved (or, in a dry run, movable) message is printed on standard
output: original ID, new ID and target topic, or a JSON line with --json.

Examples:
  mq redrive kafka://127.0.0.1:9092 orders.dlq --group ops --dry-run
  mq redrive env:MQ_URL orders.dlq --group ops --match-error 'timeout' --limit 100`

func runRedrive(c *cli, args []string) error {
	fs := c.newFlags(redriveAbout)
	group := fs.String("group", "", "the `group` that reads DLQ (default: the URL's group parameter)")
	to := fs.String("to", "", "move to this `topic` instead of each message's dlq-topic header")
	source := fs.String("source-topic", "", "only dead letters from this `topic` (dlq-topic header)")
	match := headerFlag{}
	fs.Var(match, "match-header", "only dead letters with this header `key=value`; repeat for more")
	matchErr := fs.String("match-error", "", "only dead letters whose dlq-error header matches this `regexp`")
	matchBody := fs.String("match-body", "", "only dead letters whose body contains this `text`")
	limit := fs.Int("limit", 0, "stop after moving this many (0: no limit)")
	idle := fs.Duration("idle", 5*time.Second, "end after this long without a dead letter not seen before")
	keepID := fs.Bool("keep-id", false, "republish with the original ID (see middleware.RedriveOptions.KeepID: SQS FIFO drops a recently seen ID)")
	dry := fs.Bool("dry-run", false, "move nothing; print what would move (see above)")
	asJSON := fs.Bool("json", false, "print JSON lines")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on connecting and closing")
	prog := fs.Bool("progress", false, "report progress on standard error every second even when it is not a terminal")
	quiet := fs.Bool("q", false, "no summary on standard error")
	pos, err := c.parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	var errRE *regexp.Regexp
	if *matchErr != "" {
		if errRE, err = regexp.Compile(*matchErr); err != nil {
			return usagef("--match-error: %v", err)
		}
	}
	if *limit < 0 {
		return usagef("--limit %d: want 0 or more", *limit)
	}
	b, _, err := c.open(pos[0], *timeout)
	if err != nil {
		return err
	}
	defer c.close(b, *timeout)
	dlq := pos[1]

	selected := func(m *mq.Message) bool {
		if *source != "" && m.Header[middleware.HeaderTopic] != *source {
			return false
		}
		for k, v := range match {
			if got, ok := m.Header[k]; !ok || got != v {
				return false
			}
		}
		if errRE != nil && !errRE.MatchString(m.Header[middleware.HeaderError]) {
			return false
		}
		if *matchBody != "" && !bytes.Contains(m.Body, []byte(*matchBody)) {
			return false
		}
		return true
	}
	target := func(m *mq.Message) string {
		if *to != "" {
			return *to
		}
		return m.Header[middleware.HeaderTopic]
	}

	what := "moved"
	if *dry {
		what = "would move"
	}
	p := c.startProgress(what, 0, *prog, time.Second)
	var mu sync.Mutex
	var werr error
	report := func(orig, newID, topic string) {
		mu.Lock()
		defer mu.Unlock()
		if werr != nil {
			return
		}
		if *asJSON {
			out := map[string]any{"original_id": orig, "to": topic, "dry_run": *dry}
			if newID != "" {
				out["id"] = newID
			}
			werr = writeJSON(c.stdout, out)
		} else if newID != "" {
			_, werr = fmt.Fprintf(c.stdout, "%s -> %s %s\n", orig, topic, newID)
		} else {
			_, werr = fmt.Fprintf(c.stdout, "%s -> %s\n", orig, topic)
		}
		p.add(1)
	}

	o := middleware.RedriveOptions{Group: *group, Idle: *idle, Limit: *limit, KeepID: *keepID}
	if *to != "" {
		o.Topic = target
	}
	seen := map[string]bool{}
	if *dry {
		// Every dead letter is rejected, so Redrive sets it aside; the
		// filter records those that would have moved, once each.
		o.Filter = func(m *mq.Message) bool {
			if selected(m) && target(m) != "" {
				orig := m.Header[middleware.HeaderOriginalID]
				if orig == "" {
					orig = m.ID
				}
				mu.Lock()
				again := seen[orig]
				seen[orig] = true
				mu.Unlock()
				if !again {
					report(orig, "", target(m))
				}
			}
			return false
		}
	} else {
		o.Filter = selected
		o.Publisher = &reportingPublisher{Publisher: b, dlq: dlq, report: report}
	}
	n, err := middleware.Redrive(c.ctx, b, dlq, o)
	p.finish(true)
	if !*quiet {
		if *dry {
			mu.Lock()
			n = len(seen)
			mu.Unlock()
		}
		fmt.Fprintf(c.stderr, "%s %d dead letter(s) from %s\n", what, n, dlq)
	}
	if err != nil {
		return err
	}
	return werr
}

// reportingPublisher reports each message Redrive moved once its
// publish was accepted.
type reportingPublisher struct {
	mq.Publisher
	dlq    string
	report func(orig, id, topic string)
}

func (r *reportingPublisher) Publish(ctx context.Context, topic string, msgs ...*mq.Message) error {
	if err := r.Publisher.Publish(ctx, topic, msgs...); err != nil {
		return err
	}
	for _, m := range msgs {
		orig := m.Header[middleware.HeaderOriginalID]
		if orig == "" {
			orig = m.ID // KeepID
		}
		r.report(orig, m.ID, topic)
	}
	return nil
}
