package kafka_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"time"

	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/kafka"
)

// Open a Kafka broker by URL, provision a topic and group, publish, and
// consume until the handler has seen the message. The example needs a
// broker, so it is compiled but not run.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	b, err := mq.Open(ctx, "kafka://127.0.0.1:9092?group=billing&partitions=6")
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(context.Background())

	// Messages published after Provision wait for the group.
	if err := mq.Provision(ctx, b, "orders", "billing"); err != nil {
		log.Fatal(err)
	}
	m := mq.NewMessage([]byte(`{"order":42}`))
	m.Key = "customer-7" // same key, same partition, handled in order
	if err := b.Publish(ctx, "orders", m); err != nil {
		log.Fatal(err)
	}

	subCtx, stop := context.WithCancel(ctx)
	err = b.Subscribe(subCtx, "orders", func(ctx context.Context, m *mq.Message) error {
		fmt.Printf("%s attempt %d: %s\n", m.Key, m.Attempt, m.Body)
		stop()
		return nil // ack
	}, mq.Concurrency(8))
	fmt.Println(err) // context.Canceled once stop was called
}

// Build a broker from kafka-go settings: TLS and SASL/SCRAM.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	mech, err := scram.Mechanism(scram.SHA512, "billing", "password from a secret store")
	if err != nil {
		log.Fatal(err)
	}
	b, err := kafka.New(ctx, kafka.Options{
		Brokers:           []string{"k1.example.com:9093", "k2.example.com:9093"},
		Group:             "billing",
		ReplicationFactor: 3,
		TLS:               &tls.Config{MinVersion: tls.VersionTLS12},
		SASL:              mech,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(context.Background())
	fmt.Println(b.Capabilities().OrderingByKey)
}
