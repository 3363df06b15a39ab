package rabbitmq_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
)

func TestOpenBadURL(t *testing.T) {
	tests := []struct {
		name, url string
		want      error
		mention   string
	}{
		{"unknown parameter", "amqp://guest:hunter22@127.0.0.1:1/?bogus=1", mq.ErrInvalidURL, `"bogus"`},
		{"bad prefetch", "amqp://guest:hunter22@127.0.0.1:1/?prefetch=-1", mq.ErrInvalidURL, "prefetch"},
		{"bad queue type", "amqp://127.0.0.1:1/?queue_type=stream", mq.ErrInvalidURL, "queue_type"},
		{"bad exchange type", "amqp://127.0.0.1:1/?exchange_type=headers", mq.ErrInvalidURL, "exchange_type"},
		{"repeated parameter", "amqp://127.0.0.1:1/?group=a&group=b", mq.ErrInvalidURL, "group"},
		{"no host", "amqp:///vhost", mq.ErrInvalidURL, "no host"},
		{"TLS files on amqp", "amqp://127.0.0.1:1/?tls_ca_file=/nonexistent", mq.ErrInvalidURL, "amqps"},
		{"tls on amqp", "amqp://127.0.0.1:1/?tls=true", mq.ErrInvalidURL, "amqps"},
		{"tls off on amqps", "amqps://127.0.0.1:1/?tls=false", mq.ErrInvalidURL, "amqp://"},
		{"missing CA file", "amqps://127.0.0.1:1/?tls_ca_file=/nonexistent/ca.pem", mq.ErrInvalidURL, "tls_ca_file"},
		{"certfile without keyfile", "amqps://127.0.0.1:1/?tls_cert_file=/x.pem", mq.ErrInvalidURL, "tls_key_file"},
		{"old cacertfile", "amqps://guest:hunter22@127.0.0.1:1/?cacertfile=/x.pem", mq.ErrInvalidURL, `"cacertfile" is spelled "tls_ca_file"`},
		{"old certfile", "amqps://127.0.0.1:1/?certfile=/x.pem", mq.ErrInvalidURL, `"certfile" is spelled "tls_cert_file"`},
		{"old keyfile", "amqps://127.0.0.1:1/?keyfile=/x.pem", mq.ErrInvalidURL, `"keyfile" is spelled "tls_key_file"`},
		{"old server_name", "amqps://127.0.0.1:1/?server_name=x", mq.ErrInvalidURL, `"server_name" is spelled "tls_server_name"`},
		{"bad max_message_bytes", "amqp://127.0.0.1:1/?max_message_bytes=0", mq.ErrInvalidURL, "max_message_bytes"},
		{"bad provision", "amqp://127.0.0.1:1/?provision=maybe", mq.ErrInvalidURL, "provision"},
		{"bad group", "amqp://127.0.0.1:1/?group=a%20b", mq.ErrInvalidOption, "group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			b, err := mq.Open(ctx, tt.url)
			if err == nil {
				_ = b.Close(ctx)
				t.Fatalf("Open(%q) succeeded, want an error", tt.url)
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want an error wrapping %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("got %q, want it to mention %q", err, tt.mention)
			}
			if strings.Contains(err.Error(), "hunter22") {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestWrongPassword(t *testing.T) {
	u, err := url.Parse(rabbitmqtest.URL(t))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	u.User = url.UserPassword(u.User.Username(), "not-the-Pa55word")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	b, err := mq.Open(ctx, u.String())
	if err == nil {
		_ = b.Close(ctx)
		t.Fatal("Open with a wrong password succeeded, want an error")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("got %q, want it to say authentication failed", err)
	}
	if strings.Contains(err.Error(), "not-the-Pa55word") {
		t.Errorf("error %q contains the password", err)
	}
	if mq.IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = true, want false", err)
	}
}

// rawChannel opens a plain amqp091 channel for arranging topology.
func rawChannel(t *testing.T) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(rabbitmqtest.URL(t))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return ch
}

func TestTopologyMismatch(t *testing.T) {
	ctx := context.Background()
	t.Run("exchange type", func(t *testing.T) {
		topic := uniqueTopic(t)
		ch := rawChannel(t)
		if err := ch.ExchangeDeclare(topic, "topic", true, false, false, false, nil); err != nil {
			t.Fatalf("declare: %v", err)
		}
		t.Cleanup(func() { _ = ch.ExchangeDelete(topic, false, false) })
		b := open(t, "")
		err := b.Publish(ctx, topic, mq.NewMessage([]byte("x")))
		t.Logf("error: %v", err)
		if !errors.Is(err, mq.ErrInvalidOption) || !strings.Contains(err.Error(), "exists with other settings") {
			t.Errorf("Publish to a topic exchange with exchange_type fanout: got %v, want ErrInvalidOption saying it exists with other settings", err)
		}
		if err := mq.Provision(ctx, open(t, "exchange_type=topic"), topic, "g"); err != nil {
			t.Errorf("Provision with the matching exchange_type: got %v, want nil", err)
		}
	})
	t.Run("queue type", func(t *testing.T) {
		topic := uniqueTopic(t)
		if err := mq.Provision(ctx, open(t, "queue_type=classic"), topic, "g"); err != nil {
			t.Fatalf("Provision classic: %v", err)
		}
		err := mq.Provision(ctx, open(t, ""), topic, "g")
		if !errors.Is(err, mq.ErrInvalidOption) || !strings.Contains(err.Error(), "x-queue-type") {
			t.Errorf("Provision quorum over classic: got %v, want ErrInvalidOption naming x-queue-type", err)
		}
	})
}

func TestNoProvision(t *testing.T) {
	ctx := context.Background()
	topic := uniqueTopic(t)
	b := open(t, "provision=false")
	if err := b.Publish(ctx, topic, mq.NewMessage([]byte("x"))); !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("Publish to a missing exchange: got %v, want ErrNotFound", err)
	}
	if err := mq.Provision(ctx, open(t, ""), topic); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, waitFor)
	defer cancel()
	err := b.Subscribe(sctx, topic, func(context.Context, *mq.Message) error { return nil }, mq.Group("missing"))
	if !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("Subscribe to a missing queue: got %v, want ErrNotFound", err)
	}
	if caps := b.Capabilities(); caps.NackDelay {
		t.Errorf("Capabilities().NackDelay with provision=false = true, want false (no delay queues)")
	}
}

func TestMessageLimits(t *testing.T) {
	ctx := context.Background()
	b := open(t, "max_message_bytes=1000")
	topic := uniqueTopic(t)
	if err := mq.Provision(ctx, b, topic, "g"); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	tests := []struct {
		name string
		msg  *mq.Message
		want error
	}{
		{"over max_message_bytes", &mq.Message{Body: make([]byte, 1001)}, mq.ErrMessageTooLarge},
		{"header key over 255 bytes", &mq.Message{Header: map[string]string{strings.Repeat("k", 256): "v"}}, mq.ErrInvalidMessage},
		{"broker header name", &mq.Message{Header: map[string]string{"x-death": "v"}}, mq.ErrInvalidMessage},
		// Issue 20: a routing key is an AMQP short string; a longer Key
		// made Publish reconnect and resend until its ctx ended.
		{"key over 255 bytes", &mq.Message{Key: strings.Repeat("k", 256), Body: []byte("x")}, mq.ErrInvalidMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			start := time.Now()
			if err := b.Publish(ctx, topic, tt.msg); !errors.Is(err, tt.want) {
				t.Errorf("got %v after %v, want %v", err, time.Since(start), tt.want)
			}
		})
	}
	t.Run("key of 255 bytes", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		other := uniqueTopic(t)
		if err := mq.Provision(ctx, b, other, "g"); err != nil {
			t.Fatalf("Provision: %v", err)
		}
		if err := b.Publish(ctx, other, &mq.Message{Key: strings.Repeat("k", 255), Body: []byte("x")}); err != nil {
			t.Errorf("Publish with a 255-byte Key: got %v, want nil", err)
		}
	})
	t.Run("capabilities", func(t *testing.T) {
		c := b.Capabilities()
		if c.MaxKeyBytes != 255 || c.MaxHeaderKeyBytes != 255 || c.MaxHeaderBytes <= 0 || c.MaxHeaders <= 0 {
			t.Errorf("Capabilities: got MaxKeyBytes %d, MaxHeaderKeyBytes %d, MaxHeaderBytes %d, MaxHeaders %d; want 255, 255 and positive limits",
				c.MaxKeyBytes, c.MaxHeaderKeyBytes, c.MaxHeaderBytes, c.MaxHeaders)
		}
	})
	t.Run("header table over one frame", func(t *testing.T) {
		big := open(t, "max_message_bytes=1000000")
		h := map[string]string{}
		for i := range 100 {
			h[strings.Repeat("k", 10)+string(rune('a'+i%26))+strings.Repeat("x", i/26)] = strings.Repeat("v", 1000)
		}
		if err := big.Publish(ctx, topic, &mq.Message{Header: h}); !errors.Is(err, mq.ErrMessageTooLarge) {
			t.Errorf("got %v, want ErrMessageTooLarge", err)
		}
	})
	t.Run("long ID", func(t *testing.T) {
		c := newCollector()
		subscribe(t, b, topic, c.handler, mq.Group("g"))
		id := strings.Repeat("i", 300)
		if err := b.Publish(ctx, topic, &mq.Message{ID: id, Body: []byte("x")}); err != nil {
			t.Fatalf("Publish with a 300-byte ID: %v", err)
		}
		if got := c.wait(t, 1)[0].ID; got != id {
			t.Errorf("got ID of %d bytes, want the 300-byte ID", len(got))
		}
	})
}

// TestChannelErrorIsolated deletes a cached exchange, so that publishing to
// it closes the shared publish channel: that message fails with
// ErrNotFound, while concurrent publishes to another topic succeed.
func TestChannelErrorIsolated(t *testing.T) {
	ctx := context.Background()
	b := open(t, "publish_channels=1")
	gone, kept := uniqueTopic(t), uniqueTopic(t)
	for _, topic := range []string{gone, kept} {
		if err := mq.Provision(ctx, b, topic, "g"); err != nil {
			t.Fatalf("Provision: %v", err)
		}
		if err := b.Publish(ctx, topic, mq.NewMessage([]byte("warm"))); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	if err := rawChannel(t).ExchangeDelete(gone, false, false); err != nil {
		t.Fatalf("delete exchange: %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if err := b.Publish(ctx, kept, mq.NewMessage([]byte("ok"))); err != nil {
					errs <- err
				}
			}
		})
	}
	err := b.Publish(ctx, gone, mq.NewMessage([]byte("lost exchange")))
	wg.Wait()
	close(errs)
	if !errors.Is(err, mq.ErrNotFound) {
		t.Errorf("Publish to a deleted exchange: got %v, want ErrNotFound", err)
	}
	for err := range errs {
		t.Errorf("Publish to the other topic: got %v, want nil", err)
	}
}

// TestPermanentDeadLetters fails a message once, then permanently: it
// must reach the queue's dead-letter exchange, and a group there sees it
// as a first attempt (the attempt count of the source queue does not
// follow it).
func TestPermanentDeadLetters(t *testing.T) {
	ctx := context.Background()
	topic := uniqueTopic(t)
	dlx := topic + "-dlx"
	b := open(t, "dead_letter_exchange="+dlx)
	if err := mq.Provision(ctx, b, dlx, "dead"); err != nil {
		t.Fatalf("Provision of the dead-letter topic: %v", err)
	}
	if err := mq.Provision(ctx, b, topic, "g"); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	m := mq.NewMessage([]byte("poison"))
	if err := b.Publish(ctx, topic, m); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	src := newCollector()
	subscribe(t, b, topic, func(ctx context.Context, m *mq.Message) error {
		src.add(m)
		if m.Attempt == 1 {
			return errors.New("try again")
		}
		return mq.Permanent(errors.New("cannot handle"))
	}, mq.Group("g"), mq.Backoff(func(int) time.Duration { return 10 * time.Millisecond }))
	dead := newCollector()
	subscribe(t, b, dlx, dead.handler, mq.Group("dead"))
	got := dead.wait(t, 1)[0]
	if got.ID != m.ID || string(got.Body) != "poison" {
		t.Errorf("dead letter: got ID %q body %q, want %q poison", got.ID, got.Body, m.ID)
	}
	if got.Attempt != 1 {
		t.Errorf("dead letter: got Attempt %d, want 1 (a new queue)", got.Attempt)
	}
	if len(got.Header) != 0 {
		t.Errorf("dead letter: got headers %v, want none (broker and driver headers removed)", got.Header)
	}
	if n := src.count(); n != 2 {
		t.Errorf("source deliveries: got %d, want 2 (one failure, one permanent)", n)
	}
}

// TestClosedArgumentOrder checks that after Close, calls with bad
// arguments report the arguments (as on every driver), and calls with
// good ones report mq.ErrClosed.
func TestClosedArgumentOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	b, err := mq.Open(ctx, withQuery(t, rabbitmqtest.URL(t), "group=g"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	topic := uniqueTopic(t)
	h := func(context.Context, *mq.Message) error { return nil }
	checks := []struct {
		name string
		err  error
		want error
	}{
		{"Subscribe with a nil handler", b.Subscribe(ctx, topic, nil), mq.ErrInvalidOption},
		{"Subscribe with a bad topic", b.Subscribe(ctx, "a b", h), mq.ErrInvalidTopic},
		{"Subscribe", b.Subscribe(ctx, topic, h), mq.ErrClosed},
		{"Publish with no message", b.Publish(ctx, topic), mq.ErrInvalidMessage},
		{"Publish", b.Publish(ctx, topic, mq.NewMessage([]byte("x"))), mq.ErrClosed},
	}
	for _, c := range checks {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s after Close: got %v, want an error wrapping %v", c.name, c.err, c.want)
		}
	}
}
