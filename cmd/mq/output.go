package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/seedmq/mq"
)

// jsonMessage is a message as tail --json prints it and replay reads it.
// Body holds the body when it is valid UTF-8; otherwise BodyBase64 holds
// it, standard base64.
type jsonMessage struct {
	ID          string            `json:"id"`
	Key         string            `json:"key,omitempty"`
	Topic       string            `json:"topic,omitempty"`
	Group       string            `json:"group,omitempty"`
	Attempt     int               `json:"attempt,omitempty"`
	PublishTime *time.Time        `json:"publish_time,omitempty"`
	Header      map[string]string `json:"header"`
	Body        *string           `json:"body,omitempty"`
	BodyBase64  *string           `json:"body_base64,omitempty"`
}

func toJSON(m *mq.Message) jsonMessage {
	j := jsonMessage{ID: m.ID, Key: m.Key, Topic: m.Topic, Group: m.Group, Attempt: m.Attempt, Header: m.Header}
	if j.Header == nil {
		j.Header = map[string]string{}
	}
	if !m.PublishTime.IsZero() {
		t := m.PublishTime.UTC()
		j.PublishTime = &t
	}
	if utf8.Valid(m.Body) {
		s := string(m.Body)
		j.Body = &s
	} else {
		s := base64.StdEncoding.EncodeToString(m.Body)
		j.BodyBase64 = &s
	}
	return j
}

func (j jsonMessage) message() (*mq.Message, error) {
	m := &mq.Message{ID: j.ID, Key: j.Key, Header: j.Header}
	if m.Header == nil {
		m.Header = map[string]string{}
	}
	switch {
	case j.Body != nil && j.BodyBase64 != nil:
		return nil, fmt.Errorf("both body and body_base64 are set")
	case j.Body != nil:
		m.Body = []byte(*j.Body)
	case j.BodyBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*j.BodyBase64)
		if err != nil {
			return nil, fmt.Errorf("body_base64: %v", err)
		}
		m.Body = b
	}
	return m, nil
}

// printable returns b as it is when it is valid UTF-8 without control
// characters other than tab, and Go-quoted otherwise, so that one message
// stays on one line.
func printable(b []byte) string {
	s := string(b)
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r != '\t' && unicode.IsControl(r) }) {
		return s
	}
	return strconv.Quote(s)
}

// textLine is a message on one line: ID, key, attempt, headers, body.
func textLine(m *mq.Message) string {
	var sb strings.Builder
	sb.WriteString(m.ID)
	if m.Key != "" {
		sb.WriteString(" key=" + strconv.Quote(m.Key))
	}
	if m.Attempt > 1 {
		sb.WriteString(" attempt=" + strconv.Itoa(m.Attempt))
	}
	keys := make([]string, 0, len(m.Header))
	for k := range m.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		sb.WriteString(" " + strconv.Quote(k) + "=" + strconv.Quote(m.Header[k]))
	}
	sb.WriteString(" | ")
	sb.WriteString(printable(m.Body))
	return sb.String()
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// progress reports a count and its rate on stderr while a long run goes:
// on a terminal it rewrites one line every interval; elsewhere it writes
// a line every interval only when asked (--progress).
type progress struct {
	c     *cli
	what  string // "published", "received", ...
	total int64  // 0: unknown
	start time.Time
	on    bool

	mu       sync.Mutex
	n        int64
	lastN    int64
	lastT    time.Time
	stop     chan struct{}
	done     chan struct{}
	drawn    bool
	interval time.Duration
}

func (c *cli) startProgress(what string, total int64, force bool, interval time.Duration) *progress {
	now := time.Now()
	p := &progress{c: c, what: what, total: total, start: now, lastT: now, on: c.tty || force,
		stop: make(chan struct{}), done: make(chan struct{}), interval: interval}
	if !p.on {
		close(p.done)
		return p
	}
	go p.loop()
	return p
}

func (p *progress) add(n int64) {
	p.mu.Lock()
	p.n += n
	p.mu.Unlock()
}

func (p *progress) count() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *progress) loop() {
	defer close(p.done)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.draw()
		}
	}
}

func (p *progress) draw() {
	p.mu.Lock()
	now := time.Now()
	rate := float64(p.n-p.lastN) / now.Sub(p.lastT).Seconds()
	p.lastN, p.lastT = p.n, now
	n := p.n
	p.mu.Unlock()
	line := fmt.Sprintf("%s %d", p.what, n)
	if p.total > 0 {
		line += fmt.Sprintf("/%d", p.total)
	}
	line += fmt.Sprintf(" (%.0f/s now, %s elapsed)", rate, time.Since(p.start).Round(time.Second))
	if p.c.tty {
		fmt.Fprintf(p.c.stderr, "\r\033[K%s", line)
		p.drawn = true
	} else {
		fmt.Fprintln(p.c.stderr, line)
	}
}

// finish stops the reports and, unless quiet, prints a summary line.
func (p *progress) finish(quiet bool) {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	if p.drawn {
		fmt.Fprint(p.c.stderr, "\r\033[K")
	}
	if quiet {
		return
	}
	n := p.count()
	el := time.Since(p.start)
	fmt.Fprintf(p.c.stderr, "%s %d in %s (%.0f/s)\n", p.what, n, el.Round(time.Millisecond), float64(n)/max(el.Seconds(), 1e-9))
}
