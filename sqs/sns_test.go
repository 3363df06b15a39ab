package sqs_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/sqs"
	"github.com/seedmq/mq/sqs/snstest"
)

// recorder keeps the input of every call a client makes.
type recorder struct {
	mu    sync.Mutex
	calls []any
}

func (r *recorder) add(st *middleware.Stack) error {
	return st.Initialize.Add(middleware.InitializeMiddlewareFunc("mq-record", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		r.mu.Lock()
		r.calls = append(r.calls, in.Parameters)
		r.mu.Unlock()
		return next.HandleInitialize(ctx, in)
	}), middleware.After)
}

// all returns the recorded inputs of type T, with their positions among
// all calls.
func all[T any](r *recorder) (got []T, at []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, c := range r.calls {
		if v, ok := c.(T); ok {
			got = append(got, v)
			at = append(at, i)
		}
	}
	return got, at
}

// snsClients returns SNS and SQS clients for moto whose calls rec records.
func snsClients(t *testing.T, rec *recorder) (*awssns.Client, *awssqs.Client) {
	t.Helper()
	cfg := snstest.Config(t)
	if rec != nil {
		cfg.APIOptions = append(cfg.APIOptions, rec.add)
	}
	return awssns.NewFromConfig(cfg), awssqs.NewFromConfig(cfg)
}

// newSNSBroker returns an SNSBroker over moto with opts, recording its
// calls in rec (if not nil), closed when the test ends.
func newSNSBroker(t *testing.T, rec *recorder, opts sqs.SNSOptions) *sqs.SNSBroker {
	t.Helper()
	opts.SNSClient, opts.Client = snsClients(t, rec)
	b, err := sqs.NewSNS(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

func snsTopic(t *testing.T) string {
	return fmt.Sprintf("snst-%08x", rand.Uint32())
}

// TestSNSProvisionSends checks the calls that create a group: the queue
// policy statement that lets the topic send to the queue is set before
// the subscription, which asks for raw message delivery. moto delivers
// without the policy, so this is what shows it is right (the statement
// itself is checked in TestAllowTopic*).
func TestSNSProvisionSends(t *testing.T) {
	for _, tc := range []struct {
		name, suffix string
	}{{"standard", ""}, {"fifo", ".fifo"}} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			b := newSNSBroker(t, rec, sqs.SNSOptions{})
			topic := snsTopic(t) + tc.suffix
			if err := b.Provision(context.Background(), topic, "billing"); err != nil {
				t.Fatalf("Provision: %v", err)
			}
			topics, _ := all[*awssns.CreateTopicInput](rec)
			if len(topics) != 1 || aws.ToString(topics[0].Name) != topic {
				t.Fatalf("CreateTopic: got %v, want one for %s", topics, topic)
			}
			if fifo := topics[0].Attributes["FifoTopic"] == "true"; fifo != (tc.suffix != "") {
				t.Errorf("CreateTopic FifoTopic: got %v, want %v", fifo, tc.suffix != "")
			}
			queues, _ := all[*awssqs.CreateQueueInput](rec)
			wantQueue := strings.TrimSuffix(topic, ".fifo") + "-billing" + tc.suffix
			if len(queues) != 1 || aws.ToString(queues[0].QueueName) != wantQueue {
				t.Fatalf("CreateQueue: got %v, want one for %s", queues, wantQueue)
			}
			if fifo := queues[0].Attributes["FifoQueue"] == "true"; fifo != (tc.suffix != "") {
				t.Errorf("CreateQueue FifoQueue: got %v, want %v", fifo, tc.suffix != "")
			}
			sets, setAt := all[*awssqs.SetQueueAttributesInput](rec)
			subs, subAt := all[*awssns.SubscribeInput](rec)
			if len(sets) != 1 || len(subs) != 1 {
				t.Fatalf("got %d SetQueueAttributes and %d Subscribe calls, want 1 and 1", len(sets), len(subs))
			}
			policy := sets[0].Attributes["Policy"]
			if !strings.Contains(policy, `"sns.amazonaws.com"`) || !strings.Contains(policy, `"sqs:SendMessage"`) || !strings.Contains(policy, `:`+topic+`"`) {
				t.Errorf("queue policy: got %s, want sqs:SendMessage for sns.amazonaws.com from the topic", policy)
			}
			if setAt[0] > subAt[0] {
				t.Error("the queue policy was set after the subscription: SNS could deliver to a queue that refuses it")
			}
			s := subs[0]
			if aws.ToString(s.Protocol) != "sqs" || !strings.HasSuffix(aws.ToString(s.Endpoint), ":"+wantQueue) || s.Attributes["RawMessageDelivery"] != "true" {
				t.Errorf("Subscribe: got protocol %q endpoint %q attributes %v, want sqs, the queue's ARN, RawMessageDelivery true",
					aws.ToString(s.Protocol), aws.ToString(s.Endpoint), s.Attributes)
			}
			// Provisioning again with a new Broker changes nothing.
			rec2 := &recorder{}
			b2 := newSNSBroker(t, rec2, sqs.SNSOptions{})
			if err := b2.Provision(context.Background(), topic, "billing"); err != nil {
				t.Fatalf("Provision again: %v", err)
			}
			if sets, _ := all[*awssqs.SetQueueAttributesInput](rec2); len(sets) != 0 {
				t.Errorf("Provision again: got %d SetQueueAttributes calls, want 0 (the policy allows the topic already)", len(sets))
			}
		})
	}
}

// TestSNSPublishSends checks PublishBatch calls: at most ten entries and
// ten attributes each (more headers are packed), at most 256 KiB in all,
// no empty message, FIFO IDs from Key and ID, and limits refused before
// any call. moto enforces none of these limits on PublishBatch.
func TestSNSPublishSends(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	b := newSNSBroker(t, rec, sqs.SNSOptions{})
	topic := snsTopic(t) + ".fifo"
	if err := b.Provision(ctx, topic, "g"); err != nil {
		t.Fatal(err)
	}
	header := map[string]string{}
	for i := range 15 {
		header[fmt.Sprintf("h%02d", i)] = "v"
	}
	var msgs []*mq.Message
	for i := range 25 {
		msgs = append(msgs, &mq.Message{ID: fmt.Sprintf("id-%d", i), Key: fmt.Sprintf("k%d", i%3), Body: []byte("x"), Header: header})
	}
	if err := b.Publish(ctx, topic, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	calls, _ := all[*awssns.PublishBatchInput](rec)
	n := 0
	for _, c := range calls {
		if len(c.PublishBatchRequestEntries) > 10 {
			t.Errorf("PublishBatch with %d entries, want at most 10", len(c.PublishBatchRequestEntries))
		}
		for _, e := range c.PublishBatchRequestEntries {
			m := msgs[n]
			n++
			if len(e.MessageAttributes) > 10 {
				t.Errorf("message %s: %d attributes, want at most 10", m.ID, len(e.MessageAttributes))
			}
			if aws.ToString(e.MessageGroupId) != m.Key || aws.ToString(e.MessageDeduplicationId) != m.ID {
				t.Errorf("message %s: got group %q dedup %q, want %q and %q", m.ID, aws.ToString(e.MessageGroupId), aws.ToString(e.MessageDeduplicationId), m.Key, m.ID)
			}
		}
	}
	if n != len(msgs) {
		t.Errorf("PublishBatch carried %d messages, want %d", n, len(msgs))
	}

	// SNS limits a whole PublishBatch to 256 KiB and refuses an empty
	// message; moto checks neither.
	start := len(calls)
	var large []*mq.Message
	for i := range 10 {
		large = append(large, &mq.Message{ID: fmt.Sprintf("large-%d", i), Body: make([]byte, 100<<10)})
	}
	large = append(large, &mq.Message{ID: "empty", Key: "k", Body: []byte{}})
	if err := b.Publish(ctx, topic, large...); err != nil {
		t.Fatalf("Publish of 100 KiB messages: %v", err)
	}
	calls, _ = all[*awssns.PublishBatchInput](rec)
	for _, c := range calls[start:] {
		size := 0
		for _, e := range c.PublishBatchRequestEntries {
			if aws.ToString(e.Message) == "" {
				t.Errorf("message %s: empty SNS Message, which SNS refuses", aws.ToString(e.MessageDeduplicationId))
			}
			size += len(aws.ToString(e.Message))
			for name, a := range e.MessageAttributes {
				size += len(name) + len(aws.ToString(a.DataType)) + len(aws.ToString(a.StringValue)) + len(a.BinaryValue)
			}
		}
		if size > sqs.DefaultSNSMaxBytes {
			t.Errorf("PublishBatch of %d bytes, SNS allows %d", size, sqs.DefaultSNSMaxBytes)
		}
	}

	before := len(calls)
	big := &mq.Message{Body: make([]byte, b.Capabilities().MaxMessageBytes+1)}
	if err := b.Publish(ctx, topic, &mq.Message{Body: []byte("ok")}, big); !errors.Is(err, mq.ErrMessageTooLarge) {
		t.Errorf("Publish over MaxMessageBytes: got %v, want ErrMessageTooLarge", err)
	}
	if err := b.Publish(ctx, topic, &mq.Message{Body: []byte("later"), Delay: time.Second}); !errors.Is(err, mq.ErrNotSupported) {
		t.Errorf("Publish with Delay: got %v, want ErrNotSupported (SNS has no per-message delay)", err)
	}
	if calls, _ := all[*awssns.PublishBatchInput](rec); len(calls) != before {
		t.Errorf("refused Publish calls sent %d PublishBatch calls, want none", len(calls)-before)
	}
	if got, want := b.Capabilities().MaxMessageBytes, sqs.DefaultSNSMaxBytes-8<<10; got != want {
		t.Errorf("MaxMessageBytes: got %d, want %d (SNS's 256 KiB less the reserve for mq's attributes)", got, want)
	}
}

// TestSNSNoProvision checks that with provisioning off each missing piece
// is mq.ErrNotFound naming it, and that a subscription without raw
// message delivery is refused (and fixed by provisioning).
func TestSNSNoProvision(t *testing.T) {
	ctx := context.Background()
	snsc, sqsc := snsClients(t, nil)
	off := newSNSBroker(t, nil, sqs.SNSOptions{Options: sqs.Options{NoProvision: true, Group: "g"}})
	topic := snsTopic(t)
	noop := func(context.Context, *mq.Message) error { return nil }
	trySubscribe := func(topic string) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return off.Subscribe(ctx, topic, noop)
	}

	if err := off.Publish(ctx, topic, &mq.Message{Body: []byte("x")}); !errors.Is(err, mq.ErrNotFound) || !strings.Contains(err.Error(), "SNS topic") {
		t.Errorf("Publish to a missing topic: got %v, want ErrNotFound naming the SNS topic", err)
	}
	if err := trySubscribe(topic); !errors.Is(err, mq.ErrNotFound) || !strings.Contains(err.Error(), "SNS topic") {
		t.Errorf("Subscribe to a missing topic: got %v, want ErrNotFound naming the SNS topic", err)
	}
	out, err := snsc.CreateTopic(ctx, &awssns.CreateTopicInput{Name: aws.String(topic)})
	if err != nil {
		t.Fatal(err)
	}
	if err := trySubscribe(topic); !errors.Is(err, mq.ErrNotFound) || !strings.Contains(err.Error(), "queue") {
		t.Errorf("Subscribe without the group's queue: got %v, want ErrNotFound naming the queue", err)
	}
	q, err := sqsc.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(topic + "-g")})
	if err != nil {
		t.Fatal(err)
	}
	if err := trySubscribe(topic); !errors.Is(err, mq.ErrNotFound) || !strings.Contains(err.Error(), "not subscribed") {
		t.Errorf("Subscribe with the queue not subscribed: got %v, want ErrNotFound saying so", err)
	}
	attrs, err := sqsc.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []types.QueueAttributeName{"QueueArn"}})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := snsc.Subscribe(ctx, &awssns.SubscribeInput{TopicArn: out.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(attrs.Attributes["QueueArn"]), ReturnSubscriptionArn: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := trySubscribe(topic); !errors.Is(err, mq.ErrInvalidOption) || !strings.Contains(err.Error(), "RawMessageDelivery") {
		t.Errorf("Subscribe through a subscription without raw delivery: got %v, want ErrInvalidOption naming RawMessageDelivery", err)
	}
	// Provisioning turns raw delivery on; then the group works with
	// provisioning off.
	on := newSNSBroker(t, nil, sqs.SNSOptions{})
	if err := on.Provision(ctx, topic, "g"); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	sa, err := snsc.GetSubscriptionAttributes(ctx, &awssns.GetSubscriptionAttributesInput{SubscriptionArn: sub.SubscriptionArn})
	if err != nil {
		t.Fatal(err)
	}
	if sa.Attributes["RawMessageDelivery"] != "true" {
		t.Errorf("after Provision: RawMessageDelivery %q, want true", sa.Attributes["RawMessageDelivery"])
	}
	got := make(chan *mq.Message, 1)
	off2 := newSNSBroker(t, nil, sqs.SNSOptions{Options: sqs.Options{NoProvision: true, Group: "g", WaitTime: time.Second}})
	stop := subscribe(t, off2, topic, func(_ context.Context, m *mq.Message) error { got <- m; return nil })
	defer stop()
	if err := off2.Publish(ctx, topic, &mq.Message{ID: "m1", Body: []byte("hello"), Header: map[string]string{"a": "b"}}); err != nil {
		t.Fatalf("Publish with provisioning off to a provisioned topic: %v", err)
	}
	select {
	case m := <-got:
		if m.ID != "m1" || string(m.Body) != "hello" || m.Header["a"] != "b" || m.Group != "g" || m.Topic != topic {
			t.Errorf("got %+v, want ID m1, body hello, header a=b, group g, topic %s", m, topic)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no message within 30s")
	}
}

func TestSNSOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want error
	}{
		{"sns+sqs://host?region=us-east-1", mq.ErrInvalidURL},
		{"sns+sqs://?region=us-east-1&queue_name=x-{topic}", mq.ErrInvalidOption},
		{"sns+sqs://?region=us-east-1&topic_prefix=a.b", mq.ErrInvalidOption},
		{"sns+sqs://?region=us-east-1&bogus=1", mq.ErrInvalidURL},
		{"sns+sqs://?region=us-east-1&endpoint=ftp://x", mq.ErrInvalidURL},
	} {
		_, err := mq.Open(context.Background(), tc.url)
		if !errors.Is(err, tc.want) {
			t.Errorf("Open(%s): got %v, want %v", tc.url, err, tc.want)
		}
	}
}

func TestSNSAs(t *testing.T) {
	b := newSNSBroker(t, nil, sqs.SNSOptions{})
	var sc *awssns.Client
	var qc *awssqs.Client
	if !mq.As(b, &sc) || sc == nil || !mq.As(b, &qc) || qc == nil {
		t.Error("As: want both the SNS and the SQS client")
	}
	if c := b.Capabilities(); !c.FanOut || c.Driver != "sns+sqs" || c.DelayedDelivery {
		t.Errorf("Capabilities: got %+v, want FanOut, driver sns+sqs, no DelayedDelivery", c)
	}
}
