package sqs_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/sqs"
	"github.com/seedmq/mq/sqs/sqstest"
)

func clientOf(t *testing.T, b mq.Broker) *awssqs.Client {
	t.Helper()
	var c *awssqs.Client
	if !mq.As(b, &c) {
		t.Fatal("mq.As(broker, **sqs.Client): got false, want true")
	}
	return c
}

func queueURL(t *testing.T, c *awssqs.Client, name string) string {
	t.Helper()
	out, err := c.GetQueueUrl(context.Background(), &awssqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("GetQueueUrl(%s): %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

// receiveRaw long-polls queue url with the raw client until one message
// arrives or timeout passes.
func receiveRaw(t *testing.T, c *awssqs.Client, url string, timeout time.Duration) *types.Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, err := c.ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{
			QueueUrl: aws.String(url), WaitTimeSeconds: 1, MaxNumberOfMessages: 1,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatalf("ReceiveMessage: %v", err)
		}
		if len(out.Messages) > 0 {
			return &out.Messages[0]
		}
	}
	t.Fatalf("no message in %s within %v", url, timeout)
	return nil
}

func TestOpenErrors(t *testing.T) {
	base := brokerURL(t)
	tests := []struct {
		name string
		url  string
		want error
		text string
	}{
		{"host", "sqs://somewhere?region=us-east-1", mq.ErrInvalidURL, "no host"},
		{"credentials", "sqs://AKIAXXX:supersecret@?region=us-east-1", mq.ErrInvalidURL, "AWS config chain"},
		{"unknown parameter", base + "&visibilty=5s", mq.ErrInvalidURL, `unknown parameter "visibilty"`},
		{"bad wait_time", base + "&wait_time=30s", mq.ErrInvalidURL, `"wait_time"`},
		{"bad endpoint", "sqs://?region=us-east-1&endpoint=127.0.0.1:9324", mq.ErrInvalidURL, "http://"},
		{"bad queue_prefix", base + "&queue_prefix=a.b", mq.ErrInvalidOption, "QueuePrefix"},
		{"renamed prefix", base + "&prefix=prod-", mq.ErrInvalidURL, `"prefix" is spelled "queue_prefix"`},
		{"renamed account", base + "&account=123456789012", mq.ErrInvalidURL, `"account" is spelled "queue_owner"`},
		{"renamed wait", base + "&wait=1s", mq.ErrInvalidURL, `"wait" is spelled "wait_time"`},
		{"renamed visibility", base + "&visibility=5s", mq.ErrInvalidURL, `"visibility" is spelled "visibility_timeout"`},
		{"renamed deadLetterQueue", base + "&deadLetterQueue=dlq", mq.ErrInvalidURL, `"deadLetterQueue" is spelled "dead_letter_queue"`},
		{"renamed maxReceiveCount", base + "&maxReceiveCount=3", mq.ErrInvalidURL, `"maxReceiveCount" is spelled "max_receive_count"`},
		{"renamed serverMaxBytes", base + "&serverMaxBytes=262144", mq.ErrInvalidURL, `"serverMaxBytes" is spelled "server_max_bytes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b, err := mq.Open(ctx, tt.url)
			if err == nil {
				b.Close(ctx)
				t.Fatalf("mq.Open(%q): got nil error, want %v", tt.url, tt.want)
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("mq.Open(%q): got %v, want %v mentioning %q", tt.url, err, tt.want, tt.text)
			}
			if strings.Contains(err.Error(), "supersecret") {
				t.Errorf("mq.Open: the error %q contains the URL's secret", err)
			}
		})
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Port 1 on the loopback address: nothing listens there.
	_, err := mq.Open(ctx, "sqs://?region=us-east-1&endpoint=http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !mq.IsRetryable(err) {
		t.Errorf("mq.Open of an endpoint nobody listens on: got %v, want a retryable error naming the endpoint", err)
	}
}

func TestInvalidTopics(t *testing.T) {
	b := open(t, "")
	ctx := context.Background()
	for _, topic := range []string{"has.dot", "sl/ash", strings.Repeat("a", 81), strings.Repeat("a", 76) + ".fifo", "ünï"} {
		err := b.Publish(ctx, topic, mq.NewMessage([]byte("x")))
		if !errors.Is(err, mq.ErrInvalidTopic) {
			t.Errorf("Publish to %q: got %v, want ErrInvalidTopic", topic, err)
		}
		err = b.Subscribe(ctx, topic, func(context.Context, *mq.Message) error { return nil })
		if !errors.Is(err, mq.ErrInvalidTopic) {
			t.Errorf("Subscribe to %q: got %v, want ErrInvalidTopic", topic, err)
		}
	}
}

func TestGroups(t *testing.T) {
	ctx := context.Background()
	t.Run("provision two groups", func(t *testing.T) {
		b := open(t, "")
		err := mq.Provision(ctx, b, topic(t), "g1", "g2")
		if !errors.Is(err, mq.ErrNotSupported) || !strings.Contains(err.Error(), "fan-out") {
			t.Errorf("Provision with two groups: got %v, want ErrNotSupported explaining fan-out", err)
		}
	})
	t.Run("other connection other group", func(t *testing.T) {
		top := topic(t)
		if err := mq.Provision(ctx, open(t, ""), top, "billing"); err != nil {
			t.Fatal(err)
		}
		// A second process: it knows the group only from the queue's tag.
		err := open(t, "").Subscribe(ctx, top, func(context.Context, *mq.Message) error { return nil }, mq.Group("shipping"))
		if !errors.Is(err, mq.ErrNotSupported) || !strings.Contains(err.Error(), `"billing"`) {
			t.Errorf("Subscribe with group shipping to a queue of group billing: got %v, want ErrNotSupported naming billing", err)
		}
	})
	t.Run("no group joins", func(t *testing.T) {
		top := topic(t)
		b := open(t, "")
		if err := mq.Provision(ctx, b, top, "billing"); err != nil {
			t.Fatal(err)
		}
		got := make(chan *mq.Message, 1)
		subscribe(t, open(t, ""), top, func(_ context.Context, m *mq.Message) error { got <- m; return nil })
		if err := b.Publish(ctx, top, mq.NewMessage([]byte("x"))); err != nil {
			t.Fatal(err)
		}
		if m := waitFor(t, got, 1, 30*time.Second)[0]; m.Group != "billing" {
			t.Errorf("Group of a message received without mq.Group: got %q, want the queue's group billing", m.Group)
		}
	})
}

// TestHeartbeat pins the visibility heartbeat: a handler running three
// times the visibility timeout must not see its message redelivered.
func TestHeartbeat(t *testing.T) {
	ctx := context.Background()
	top := topic(t)
	b := open(t, "&visibility_timeout=1s")
	if err := mq.Provision(ctx, b, top, "g"); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	done := make(chan int, 2)
	h := func(ctx context.Context, m *mq.Message) error {
		calls.Add(1)
		select {
		case <-time.After(3500 * time.Millisecond):
		case <-ctx.Done():
		}
		done <- m.Attempt
		return nil
	}
	// Two competing subscriptions on separate connections: without the
	// heartbeat the other one would receive the message after 1s.
	subscribe(t, b, top, h, mq.Group("g"))
	subscribe(t, open(t, "&visibility_timeout=1s"), top, h, mq.Group("g"))
	if err := b.Publish(ctx, top, mq.NewMessage([]byte("slow"))); err != nil {
		t.Fatal(err)
	}
	if a := waitFor(t, done, 1, 30*time.Second)[0]; a != 1 {
		t.Errorf("Attempt: got %d, want 1", a)
	}
	// Watch for a redelivery for two more visibility timeouts.
	select {
	case a := <-done:
		t.Errorf("the message was redelivered (attempt %d) although its handler succeeded", a)
	case <-time.After(2500 * time.Millisecond):
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler calls: got %d, want 1", n)
	}
}

// TestPermanentToDeadLetterQueue: with a redrive policy, a permanent
// failure moves the message to the dead-letter queue at once, body and
// headers intact, and it is not redelivered.
func TestPermanentToDeadLetterQueue(t *testing.T) {
	ctx := context.Background()
	top := topic(t)
	b := open(t, "&dead_letter_queue={topic}-dlq&max_receive_count=5")
	if err := mq.Provision(ctx, b, top, "g"); err != nil {
		t.Fatal(err)
	}
	attempts := make(chan int, 5)
	subscribe(t, b, top, func(_ context.Context, m *mq.Message) error {
		attempts <- m.Attempt
		return mq.Permanent(errors.New("cannot parse"))
	}, mq.Group("g"))
	body := []byte{0, 1, 2, 0xff}
	m := &mq.Message{Body: body, Header: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	if err := b.Publish(ctx, top, m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, attempts, 1, 30*time.Second)

	c := clientOf(t, b)
	raw := receiveRaw(t, c, queueURL(t, c, top+"-dlq"), 30*time.Second)
	if id := aws.ToString(raw.MessageAttributes["mq-id"].StringValue); id != m.ID {
		t.Errorf("dead letter's mq-id: got %q, want %q", id, m.ID)
	}
	if v := raw.MessageAttributes["mq-body"].BinaryValue; !bytes.Equal(v, body) {
		t.Errorf("dead letter's mq-body: got %x, want %x", v, body)
	}
	select {
	case a := <-attempts:
		t.Errorf("a permanently failed message was redelivered (attempt %d)", a)
	case <-time.After(2 * time.Second):
	}
}

// TestRedrivePolicy: queues the driver creates get the native redrive
// policy, so a message that keeps failing moves to the dead-letter queue
// after maxReceiveCount receives.
func TestRedrivePolicy(t *testing.T) {
	ctx := context.Background()
	top := topic(t)
	b := open(t, "&dead_letter_queue={topic}-dlq&max_receive_count=2")
	attempts := make(chan int, 10)
	subscribe(t, b, top, func(_ context.Context, m *mq.Message) error {
		attempts <- m.Attempt
		return mq.RetryAfter(errors.New("try again"), 0)
	}, mq.Group("g"))
	if err := b.Publish(ctx, top, mq.NewMessage([]byte("poison"))); err != nil {
		t.Fatal(err)
	}
	got := waitFor(t, attempts, 2, 30*time.Second)
	if got[0] != 1 || got[1] != 2 {
		t.Errorf("attempts: got %v, want [1 2]", got)
	}
	c := clientOf(t, b)
	raw := receiveRaw(t, c, queueURL(t, c, top+"-dlq"), 30*time.Second)
	if body := aws.ToString(raw.Body); body != "poison" {
		t.Errorf("dead letter body: got %q, want %q", body, "poison")
	}
}

// TestInterop: messages from a producer that does not use mq, and mq's
// messages seen by such a consumer.
func TestInterop(t *testing.T) {
	ctx := context.Background()
	top := topic(t)
	b := open(t, "")
	if err := mq.Provision(ctx, b, top, "g"); err != nil {
		t.Fatal(err)
	}
	c := clientOf(t, b)
	url := queueURL(t, c, top)

	t.Run("mq to raw", func(t *testing.T) {
		m := &mq.Message{Key: "k1", Body: []byte(`{"a":1}`), Header: map[string]string{"source": "billing"}}
		if err := b.Publish(ctx, top, m); err != nil {
			t.Fatal(err)
		}
		raw := receiveRaw(t, c, url, 30*time.Second)
		c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: raw.ReceiptHandle})
		attr := func(name string) string { return aws.ToString(raw.MessageAttributes[name].StringValue) }
		if aws.ToString(raw.Body) != `{"a":1}` || attr("source") != "billing" || attr("mq-id") != m.ID || attr("mq-key") != "k1" {
			t.Errorf("raw view: got body %q attributes %v; want the body, source=billing, mq-id=%s, mq-key=k1", aws.ToString(raw.Body), raw.MessageAttributes, m.ID)
		}
	})
	t.Run("raw to mq", func(t *testing.T) {
		out, err := c.SendMessage(ctx, &awssqs.SendMessageInput{
			QueueUrl: aws.String(url), MessageBody: aws.String("plain"),
			MessageAttributes: map[string]types.MessageAttributeValue{
				"source": {DataType: aws.String("String"), StringValue: aws.String("legacy")},
				"n":      {DataType: aws.String("Number"), StringValue: aws.String("42")},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan *mq.Message, 1)
		stop := subscribe(t, b, top, func(_ context.Context, m *mq.Message) error { got <- m; return nil }, mq.Group("g"))
		m := waitFor(t, got, 1, 30*time.Second)[0]
		stop()
		if m.ID != aws.ToString(out.MessageId) || string(m.Body) != "plain" || m.Header["source"] != "legacy" || m.Header["n"] != "42" || len(m.Header) != 2 {
			t.Errorf("mq view: got ID %q body %q headers %v; want ID %q, body plain, headers source=legacy n=42", m.ID, m.Body, m.Header, aws.ToString(out.MessageId))
		}
		var native types.Message
		if !m.As(&native) || aws.ToString(native.MessageId) != aws.ToString(out.MessageId) {
			t.Errorf("Message.As(*types.Message): got %v, want the SQS message", native.MessageId)
		}
		if m.PublishTime.IsZero() || time.Since(m.PublishTime) > time.Minute {
			t.Errorf("PublishTime: got %v, want about now", m.PublishTime)
		}
	})
}

func TestFIFO(t *testing.T) {
	ctx := context.Background()
	b := open(t, "")
	top := topic(t) + ".fifo"
	if err := mq.Provision(ctx, b, top, "g"); err != nil {
		t.Fatal(err)
	}
	t.Run("delay not supported", func(t *testing.T) {
		err := b.Publish(ctx, top, &mq.Message{Body: []byte("x"), Delay: time.Second})
		if !errors.Is(err, mq.ErrNotSupported) {
			t.Errorf("Publish with Delay to a FIFO queue: got %v, want ErrNotSupported", err)
		}
	})
	t.Run("order with redelivery", func(t *testing.T) {
		// Key a's second message fails once; a's third must still follow it.
		var msgs []*mq.Message
		for i := range 3 {
			for _, k := range []string{"a", "b"} {
				msgs = append(msgs, &mq.Message{Key: k, Body: []byte{byte('0' + i)}})
			}
		}
		if err := b.Publish(ctx, top, msgs...); err != nil {
			t.Fatal(err)
		}
		seen := make(chan string, 20)
		var failed atomic.Bool
		subscribe(t, b, top, func(_ context.Context, m *mq.Message) error {
			if m.Key == "a" && string(m.Body) == "1" && failed.CompareAndSwap(false, true) {
				return mq.RetryAfter(errors.New("once"), 0)
			}
			seen <- m.Key + string(m.Body)
			return nil
		}, mq.Group("g"), mq.Concurrency(4))
		got := waitFor(t, seen, 6, 60*time.Second)
		order := map[string]string{}
		for _, s := range got {
			order[s[:1]] += s[1:]
		}
		if order["a"] != "012" || order["b"] != "012" {
			t.Errorf("handled order per key: got %v, want a and b each 012", order)
		}
	})
	t.Run("stop during in-place retry", func(t *testing.T) {
		// Key a's first message fails with a 3s delay, and the
		// subscription stops during it: the message comes back when the
		// delay ends, not at once, and a's second message still follows it.
		top := topic(t) + ".fifo"
		if err := mq.Provision(ctx, b, top, "g"); err != nil {
			t.Fatal(err)
		}
		msgs := []*mq.Message{{Key: "a", Body: []byte("0")}, {Key: "a", Body: []byte("1")}}
		if err := b.Publish(ctx, top, msgs...); err != nil {
			t.Fatal(err)
		}
		failed := make(chan time.Time, 1)
		stop := subscribe(t, b, top, func(_ context.Context, m *mq.Message) error {
			if string(m.Body) == "0" {
				select {
				case failed <- time.Now():
				default:
				}
				return mq.RetryAfter(errors.New("later"), 3*time.Second)
			}
			return errors.New("not yet")
		}, mq.Group("g"))
		at := waitFor(t, failed, 1, 30*time.Second)[0]
		if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe: %v", err)
		}
		type seenMsg struct {
			body string
			at   time.Time
		}
		seen := make(chan seenMsg, 10)
		subscribe(t, open(t, ""), top, func(_ context.Context, m *mq.Message) error {
			seen <- seenMsg{string(m.Body), time.Now()}
			return nil
		}, mq.Group("g"))
		got := waitFor(t, seen, 2, 60*time.Second)
		if got[0].body != "0" || got[1].body != "1" {
			t.Errorf("order after the stop: got %q then %q, want 0 then 1", got[0].body, got[1].body)
		}
		if d := got[0].at.Sub(at); d < 2*time.Second {
			t.Errorf("the failed message came back %v after its failure, want its 3s delay kept", d)
		}
	})
}

// TestNew covers the constructor for a caller's own client.
func TestNew(t *testing.T) {
	ctx := context.Background()
	c := awssqs.NewFromConfig(sqstest.Config(t))
	for _, o := range []sqs.Options{
		{Client: c, Region: "us-east-1"}, // Region configures a client New builds
		{Senders: -1},
		{MaxReceiveCount: -1},
		{ServerMaxBytes: -1},
		{Endpoint: "127.0.0.1:9324"},
	} {
		if _, err := sqs.New(ctx, o); !errors.Is(err, mq.ErrInvalidOption) {
			t.Errorf("New(%+v): got %v, want ErrInvalidOption", o, err)
		}
	}
	b, err := sqs.New(ctx, sqs.Options{Client: c, QueuePrefix: "sqst-new-"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if err := b.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	var got *awssqs.Client
	if !b.As(&got) || got != c {
		t.Errorf("As(**sqs.Client): got %p, want the client passed to New %p", got, c)
	}
	if caps := b.Capabilities(); caps.MaxMessageBytes != sqs.DefaultServerMaxBytes-8192 || caps.FanOut || !caps.NackDelay {
		t.Errorf("Capabilities: got %+v", caps)
	}
}

// TestMaxSizeBinary: a binary body of the full MaxMessageBytes fits and
// round-trips (it travels as a binary attribute).
func TestMaxSizeBinary(t *testing.T) {
	ctx := context.Background()
	top := topic(t)
	b := open(t, "")
	if err := mq.Provision(ctx, b, top, "g"); err != nil {
		t.Fatal(err)
	}
	m := &mq.Message{ID: "max", Header: map[string]string{"h": "v"}}
	m.Body = make([]byte, b.Capabilities().MaxMessageBytes-m.Size())
	for i := range m.Body {
		m.Body[i] = byte(i)
	}
	if err := b.Publish(ctx, top, m); err != nil {
		t.Fatalf("Publish of a message of exactly MaxMessageBytes: %v", err)
	}
	got := make(chan *mq.Message, 1)
	subscribe(t, b, top, func(_ context.Context, m *mq.Message) error { got <- m; return nil }, mq.Group("g"))
	if r := waitFor(t, got, 1, 30*time.Second)[0]; !bytes.Equal(r.Body, m.Body) {
		t.Errorf("body of %d bytes did not round-trip (got %d bytes)", len(m.Body), len(r.Body))
	}
}

// TestCloseCanceled: Close with a context that has ended returns that
// context's error itself, unwrapped, as every driver's Close does; later
// calls return nil, and the broker refuses work with mq.ErrClosed.
func TestCloseCanceled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := mq.Open(ctx, brokerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	canceled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if err := b.Close(canceled); err != context.Canceled {
		t.Errorf("Close(canceled ctx): got %v, want context.Canceled unwrapped", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	if err := b.Publish(ctx, topic(t), mq.NewMessage([]byte("x"))); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Publish after Close: got %v, want ErrClosed", err)
	}
}
