package rabbitmq_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
)

// waitFor bounds every wait for a delivery in these tests.
const waitFor = 30 * time.Second

// uniqueTopic returns a topic name no other test uses.
func uniqueTopic(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	return "rmqt-" + name + "-" + hex.EncodeToString(b[:])
}

// testQueueExpires makes the test broker delete the queues of finished
// tests (every test uses new ones), so repeated runs do not pile up
// quorum queues on the shared broker.
const testQueueExpires = "queue_expires=10m"

// withQuery returns the broker URL with the query parameters, plus
// testQueueExpires.
func withQuery(t testing.TB, base, query string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse broker URL: %v", err)
	}
	u.RawQuery = testQueueExpires
	if query != "" {
		u.RawQuery += "&" + query
	}
	return u.String()
}

// open opens a broker on the test RabbitMQ and closes it at cleanup.
func open(t testing.TB, query string) mq.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	b, err := mq.Open(ctx, withQuery(t, rabbitmqtest.URL(t), query))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// subscribe runs Subscribe in a goroutine until the test ends, and checks
// that it then returns context.Canceled.
func subscribe(t testing.TB, b mq.Broker, topic string, h mq.Handler, opts ...mq.SubscribeOption) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Subscribe(ctx, topic, h, opts...) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Subscribe returned %v, want context.Canceled", err)
			}
		case <-time.After(waitFor):
			t.Errorf("Subscribe did not return within %v of cancel", waitFor)
		}
	})
}

// collector records delivered messages and lets a test wait for a count.
type collector struct {
	mu   sync.Mutex
	msgs []*mq.Message
	more chan struct{}
}

func newCollector() *collector { return &collector{more: make(chan struct{}, 1)} }

func (c *collector) add(m *mq.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

func (c *collector) handler(ctx context.Context, m *mq.Message) error {
	c.add(m)
	return nil
}

// wait returns the first n messages, failing t if they do not arrive.
func (c *collector) wait(t testing.TB, n int) []*mq.Message {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if len(c.msgs) >= n {
			out := append([]*mq.Message(nil), c.msgs[:n]...)
			c.mu.Unlock()
			return out
		}
		got := len(c.msgs)
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-deadline.C:
			t.Fatalf("got %d messages within %v, want %d", got, waitFor, n)
		}
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func TestRoundTrip(t *testing.T) {
	for _, qt := range []string{"quorum", "classic"} {
		t.Run(qt, func(t *testing.T) {
			b := open(t, "queue_type="+qt)
			topic := uniqueTopic(t)
			ctx := context.Background()
			if err := mq.Provision(ctx, b, topic, "g"); err != nil {
				t.Fatalf("Provision: %v", err)
			}
			body := []byte{0, 1, 2, 0xff, 0xfe, 'x'}
			in := &mq.Message{Key: "k1", Body: body, Header: map[string]string{"h": "ünïcode", "x-request-id": "r1"}}
			if err := b.Publish(ctx, topic, in, mq.NewMessage(nil)); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			c := newCollector()
			subscribe(t, b, topic, c.handler, mq.Group("g"))
			got := c.wait(t, 2)
			m := got[0]
			if m.ID != in.ID || m.Key != "k1" || string(m.Body) != string(body) {
				t.Errorf("got ID %q Key %q Body %x, want %q %q %x", m.ID, m.Key, m.Body, in.ID, "k1", body)
			}
			if len(m.Header) != 2 || m.Header["h"] != "ünïcode" || m.Header["x-request-id"] != "r1" {
				t.Errorf("got headers %v, want h and x-request-id only", m.Header)
			}
			if m.Topic != topic || m.Group != "g" || m.Attempt != 1 {
				t.Errorf("got Topic %q Group %q Attempt %d, want %q g 1", m.Topic, m.Group, m.Attempt, topic)
			}
			var d amqp.Delivery
			if !m.As(&d) || d.MessageId != in.ID {
				t.Errorf("As(*amqp091.Delivery) = false or wrong message id %q", d.MessageId)
			}
			if len(got[1].Body) != 0 {
				t.Errorf("got body %x for the empty message, want empty", got[1].Body)
			}
		})
	}
}

func TestAttempts(t *testing.T) {
	for _, qt := range []string{"quorum", "classic"} {
		t.Run(qt, func(t *testing.T) {
			b := open(t, "queue_type="+qt)
			topic := uniqueTopic(t)
			ctx := context.Background()
			if err := mq.Provision(ctx, b, topic, "g"); err != nil {
				t.Fatalf("Provision: %v", err)
			}
			if err := b.Publish(ctx, topic, mq.NewMessage([]byte("a"))); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			c := newCollector()
			var first time.Time
			subscribe(t, b, topic, func(ctx context.Context, m *mq.Message) error {
				c.add(m)
				if m.Attempt == 1 {
					first = time.Now()
				}
				if m.Attempt < 4 {
					return fmt.Errorf("fail attempt %d", m.Attempt)
				}
				return nil
			}, mq.Group("g"), mq.Backoff(func(int) time.Duration { return 200 * time.Millisecond }))
			got := c.wait(t, 4)
			for i, m := range got {
				if m.Attempt != i+1 {
					t.Errorf("delivery %d has Attempt %d, want %d", i, m.Attempt, i+1)
				}
			}
			if d := time.Since(first); d < 600*time.Millisecond {
				t.Errorf("3 redeliveries with 200ms delay took %v, want at least 600ms", d)
			}
		})
	}
}

func TestUnroutable(t *testing.T) {
	b := open(t, "")
	topic := uniqueTopic(t)
	ctx := context.Background()
	if err := mq.Provision(ctx, b, topic); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	err := b.Publish(ctx, topic, mq.NewMessage([]byte("nobody listens")))
	if !errors.Is(err, mq.ErrNotFound) {
		t.Fatalf("Publish to a topic without groups returned %v, want ErrNotFound", err)
	}
	t.Run("allowed", func(t *testing.T) {
		b := open(t, "allow_unroutable=true")
		if err := b.Publish(ctx, topic, mq.NewMessage([]byte("dropped"))); err != nil {
			t.Fatalf("Publish with allow_unroutable returned %v, want nil", err)
		}
	})
}

func TestBrokerAs(t *testing.T) {
	b := open(t, "")
	var conn *amqp.Connection
	if !mq.As(b, &conn) || conn == nil || conn.IsClosed() {
		t.Fatalf("As(**amqp091.Connection) = false or a closed connection, want the open publishing connection")
	}
	var ch *amqp.Channel
	if !mq.As(b, &ch) || ch == nil {
		t.Fatalf("As(**amqp091.Channel) = false, want a new channel")
	}
	if err := ch.Close(); err != nil {
		t.Errorf("closing the channel from As: %v", err)
	}
	var wrong *amqp.Delivery
	if mq.As(b, &wrong) || mq.As(b, nil) {
		t.Errorf("As(*amqp091.Delivery) or As(nil) = true, want false")
	}
	if s := fmt.Sprint(b); strings.Contains(s, "guest:guest") || !strings.HasPrefix(s, "rabbitmq(") {
		t.Errorf("String() = %q, want rabbitmq(<url without password>)", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if mq.As(b, &conn) {
		t.Errorf("As after Close = true, want false")
	}
}

// TestPartlyUnroutable publishes batches to a direct exchange whose only
// queue is bound with the empty key: messages with a Key are unroutable.
// Each batch must report exactly those as failed (*mq.PublishError with
// ErrNotFound) while concurrent batches share the confirm channels.
func TestPartlyUnroutable(t *testing.T) {
	b := open(t, "exchange_type=direct")
	topic := uniqueTopic(t)
	ctx := context.Background()
	if err := mq.Provision(ctx, b, topic, "g"); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	const publishers, batches, size = 4, 10, 20
	var wg sync.WaitGroup
	errs := make(chan error, publishers*batches)
	for range publishers {
		wg.Go(func() {
			for range batches {
				msgs := make([]*mq.Message, size)
				for i := range msgs {
					msgs[i] = mq.NewMessage([]byte("x"))
					if i%3 == 0 {
						msgs[i].Key = "unbound"
					}
				}
				err := b.Publish(ctx, topic, msgs...)
				var pe *mq.PublishError
				if !errors.As(err, &pe) {
					errs <- fmt.Errorf("got %v, want a *mq.PublishError", err)
					continue
				}
				var failed []int
				for _, f := range pe.Failures {
					failed = append(failed, f.Index)
					if !errors.Is(f.Err, mq.ErrNotFound) || msgs[f.Index].ID != f.ID {
						errs <- fmt.Errorf("failure %d: got %v (id %s), want ErrNotFound for id %s", f.Index, f.Err, f.ID, msgs[f.Index].ID)
					}
				}
				if want := []int{0, 3, 6, 9, 12, 15, 18}; fmt.Sprint(failed) != fmt.Sprint(want) {
					errs <- fmt.Errorf("got failures at %v, want %v", failed, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c := newCollector()
	subscribe(t, b, topic, c.handler, mq.Group("g"), mq.Concurrency(8))
	want := publishers * batches * (size - 7)
	c.wait(t, want)
	for _, m := range c.wait(t, want) {
		if m.Key != "" {
			t.Fatalf("got a message with Key %q, want only unkeyed ones routed", m.Key)
		}
	}
}
