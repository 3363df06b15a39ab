package rabbitmq_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/rabbitmq"
)

// Open a broker by URL, provision a group, publish and consume. (Not run
// by go test: it needs a RabbitMQ broker.)
func Example() {
	ctx := context.Background()
	b, err := mq.Open(ctx, "amqp://guest:guest@127.0.0.1:5672/?group=billing&prefetch=32")
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)

	// Create the exchange and the group's queue before publishing, so the
	// message waits for the billing service even if it is not running.
	if err := mq.Provision(ctx, b, "orders", "billing"); err != nil {
		log.Fatal(err)
	}
	if err := b.Publish(ctx, "orders", &mq.Message{Key: "customer-7", Body: []byte(`{"total":42}`)}); err != nil {
		log.Fatal(err)
	}

	sctx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	err = b.Subscribe(sctx, "orders", func(ctx context.Context, m *mq.Message) error {
		fmt.Printf("%s attempt %d: %s\n", m.Key, m.Attempt, m.Body)
		return nil
	}, mq.Concurrency(8))
	log.Println("subscription ended:", err)
}

// New takes amqp091-go's own connection settings, here a client
// certificate for amqps.
func ExampleNew() {
	ctx := context.Background()
	cert, err := tls.LoadX509KeyPair("client.pem", "client-key.pem")
	if err != nil {
		log.Fatal(err)
	}
	b, err := rabbitmq.New(ctx, rabbitmq.Options{
		URL: "amqps://rabbit.internal:5671/prod",
		Config: amqp.Config{
			SASL:            []amqp.Authentication{&amqp.ExternalAuth{}},
			TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
			Heartbeat:       5 * time.Second,
		},
		Group:              "billing",
		DeadLetterExchange: "billing.dead",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)

	// The native connection, for what mq does not cover.
	var conn *amqp.Connection
	if b.As(&conn) {
		fmt.Println("connected to", conn.RemoteAddr())
	}
}

// TLS from PEM files, named in the URL: the broker's CA and a client
// certificate.
func Example_tls() {
	ctx := context.Background()
	b, err := mq.Open(ctx, "amqps://billing:secret@rabbit.internal:5671/prod?group=billing"+
		"&tls_ca_file=/etc/mq/ca.pem&tls_cert_file=/etc/mq/client.pem&tls_key_file=/etc/mq/client-key.pem")
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)
}
