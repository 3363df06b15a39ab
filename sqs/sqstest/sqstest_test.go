package sqstest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq/sqs/sqstest"
)

// newClient builds a client the way a service would: config.LoadDefaultConfig
// plus static credentials and a BaseEndpoint override.
func newClient(t *testing.T, ctx context.Context) *sqs.Client {
	t.Helper()
	endpoint, region := sqstest.Endpoint(t)
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

func createQueue(t *testing.T, ctx context.Context, c *sqs.Client) string {
	t.Helper()
	name := fmt.Sprintf("mq-smoke-%d", time.Now().UnixNano())
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	url := aws.ToString(out.QueueUrl)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)})
	})
	return url
}

func receiveOne(t *testing.T, ctx context.Context, c *sqs.Client, url string) types.Message {
	t.Helper()
	for {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:              aws.String(url),
			MaxNumberOfMessages:   1,
			WaitTimeSeconds:       1,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(out.Messages) == 1 {
			m := out.Messages[0]
			if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("delete message: %v", err)
			}
			return m
		}
		if ctx.Err() != nil {
			t.Fatalf("no message on %s: %v", url, ctx.Err())
		}
	}
}

func TestSmokeSQS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newClient(t, ctx)
	url := createQueue(t, ctx, c)

	body := "hello sqs ✓"
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(url),
		MessageBody: aws.String(body),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"h": {DataType: aws.String("String"), StringValue: aws.String("v")},
		},
	}); err != nil {
		t.Fatalf("send: %v", err)
	}
	m := receiveOne(t, ctx, c, url)
	if aws.ToString(m.Body) != body {
		t.Fatalf("got body %q", aws.ToString(m.Body))
	}
	if a, ok := m.MessageAttributes["h"]; !ok || aws.ToString(a.StringValue) != "v" {
		t.Fatalf("attributes: %v", m.MessageAttributes)
	}
}

func TestSmokeSQSConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := sqs.NewFromConfig(sqstest.Config(t))
	if _, err := c.ListQueues(ctx, &sqs.ListQueuesInput{}); err != nil {
		t.Fatalf("list queues with sqstest.Config: %v", err)
	}
}

func TestSmokeSQSRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newClient(t, ctx)
	url := createQueue(t, ctx, c)
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(url),
		MessageBody: aws.String("survives restart"),
	}); err != nil {
		t.Fatalf("send: %v", err)
	}

	sqstest.Restart(t) // may first wait for other packages' tests to finish with the server
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The same client, used before the restart, reads the message after it.
	m := receiveOne(t, ctx, c, url)
	if aws.ToString(m.Body) != "survives restart" {
		t.Fatalf("got %q", aws.ToString(m.Body))
	}
}
