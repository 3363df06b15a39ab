package sqs_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/sqs"
)

// Open a broker from a URL, as a service reads it from its configuration.
// Credentials come from the AWS config chain, never from the URL.
func Example() {
	ctx := context.Background()
	b, err := mq.Open(ctx, "sqs://?region=eu-west-1&queue_prefix=prod-&group=billing&visibility_timeout=1m")
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)

	// Every message of queue prod-orders, handled by up to 20 goroutines.
	err = b.Subscribe(ctx, "orders", func(ctx context.Context, m *mq.Message) error {
		fmt.Printf("order %s (attempt %d): %s\n", m.ID, m.Attempt, m.Body)
		return nil
	}, mq.Concurrency(20))
	log.Print(err)
}

// Use a client configured in code, for example with a custom retryer or
// credentials provider. Without Options.Client, New builds one from the
// standard AWS config chain.
func ExampleNew() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		log.Fatal(err)
	}
	b, err := sqs.New(ctx, sqs.Options{
		Client:            awssqs.NewFromConfig(cfg),
		VisibilityTimeout: 2 * time.Minute,
		DeadLetterQueue:   "{topic}-dlq", // each queue the driver creates gets its own
		MaxReceiveCount:   10,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)
	if err := b.Publish(ctx, "invoices", mq.NewMessage([]byte(`{"id":42}`))); err != nil {
		log.Fatal(err)
	}
}
