package sqs_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/sqs"
)

// countingClient returns a client for the test server that counts
// DeleteMessageBatch calls and the ReceiveMessage calls that returned at
// least one message.
func countingClient(t *testing.T) (c *awssqs.Client, receives, deletes func() int) {
	t.Helper()
	var mu sync.Mutex
	var recv, del int
	c = clientWith(t, middleware.InitializeMiddlewareFunc("count", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		out, md, err := next.HandleInitialize(ctx, in)
		mu.Lock()
		defer mu.Unlock()
		switch r := out.Result.(type) {
		case *awssqs.ReceiveMessageOutput:
			if err == nil && len(r.Messages) > 0 {
				recv++
			}
		case *awssqs.DeleteMessageBatchOutput:
			del++
		}
		return out, md, err
	}))
	count := func(n *int) func() int {
		return func() int {
			mu.Lock()
			defer mu.Unlock()
			return *n
		}
	}
	return c, count(&recv), count(&del)
}

// fillQueue sends n messages whose bodies are their index to topic's
// queue with one SendMessageBatch per ten, creating the queue.
func fillQueue(t *testing.T, c *awssqs.Client, topic string, n int) {
	t.Helper()
	ctx := context.Background()
	out, err := c.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(topic)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteQueue(context.Background(), &awssqs.DeleteQueueInput{QueueUrl: out.QueueUrl}) })
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, n); j++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j - i)), MessageBody: aws.String(strconv.Itoa(j))})
		}
		res, err := c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: out.QueueUrl, Entries: entries})
		if err != nil || len(res.Failed) > 0 {
			t.Fatal(err, res)
		}
	}
}

// TestDeletePerReceiveBatch pins that the messages of one receive are
// deleted together once all of them are handled, rather than in several
// DeleteMessageBatch calls as their handlers finish at different times:
// each call costs about as much client CPU as the messages it carries.
// Before, deletes waited only 25 ms for more acknowledgements, and ten
// handlers finishing over 45 ms took two or more calls.
func TestDeletePerReceiveBatch(t *testing.T) {
	c, receives, deletes := countingClient(t)
	top := topic(t)
	const n = 10
	fillQueue(t, c, top, n)
	b := newBroker(t, c, sqs.Options{Receivers: 1, WaitTime: time.Second})
	done := make(chan string, n)
	subscribe(t, b, top, func(ctx context.Context, m *mq.Message) error {
		i, _ := strconv.Atoi(string(m.Body))
		time.Sleep(time.Duration(i) * 5 * time.Millisecond) // handlers finish 0 to 45 ms apart
		done <- string(m.Body)
		return nil
	}, mq.Concurrency(10))
	waitFor(t, done, n, 30*time.Second)
	// Close deletes what is still pending.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r, d := receives(), deletes(); d > r {
		t.Errorf("DeleteMessageBatch calls: got %d, want at most one per ReceiveMessage that returned messages (%d)", d, r)
	}
}

// TestDeleteNotHeldBackBySlowSibling: an acknowledged message's delete
// waits for the rest of its receive batch only briefly, so a slow
// handler does not keep the messages received with it undeleted (and
// redelivered after a crash) for as long as it runs.
func TestDeleteNotHeldBackBySlowSibling(t *testing.T) {
	c, _, _ := countingClient(t)
	top := topic(t)
	const n = 5
	fillQueue(t, c, top, n)
	url := queueURL(t, c, top)
	b := newBroker(t, c, sqs.Options{Receivers: 1, WaitTime: time.Second})
	release := make(chan struct{})
	started := make(chan string, n)
	subscribe(t, b, top, func(ctx context.Context, m *mq.Message) error {
		started <- string(m.Body)
		if string(m.Body) == "0" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	}, mq.Concurrency(n))
	waitFor(t, started, n, 30*time.Second)
	defer close(release)
	// The four fast messages are deleted while message 0's handler runs:
	// only it stays in flight.
	deadline := time.Now().Add(3 * time.Second)
	for {
		out, err := c.GetQueueAttributes(context.Background(), &awssqs.GetQueueAttributesInput{
			QueueUrl:       aws.String(url),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessagesNotVisible, types.QueueAttributeNameApproximateNumberOfMessages},
		})
		if err != nil {
			t.Fatal(err)
		}
		inFlight := out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)]
		if inFlight == "1" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages in flight 3s after the fast handlers returned: got %s, want 1 (the slow one)", inFlight)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
