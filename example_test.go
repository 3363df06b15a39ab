package mq_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/seedmq/mq"
	_ "github.com/seedmq/mq/memory" // registers mem://
)

// A producer publishes and moves on; a consumer in its own group handles
// each message and acknowledges it by returning nil.
func Example() {
	ctx := context.Background()
	b, err := mq.Open(ctx, "mem://")
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close(ctx)

	// Create the group first, so it keeps messages published before its
	// consumer starts.
	if err := mq.Provision(ctx, b, "signups", "email"); err != nil {
		log.Fatal(err)
	}
	for _, user := range []string{"ada", "grace"} {
		if err := b.Publish(ctx, "signups", &mq.Message{Key: user, Body: []byte(user)}); err != nil {
			log.Fatal(err)
		}
	}

	sub, stop := context.WithCancel(ctx)
	handled := 0
	err = b.Subscribe(sub, "signups", func(ctx context.Context, m *mq.Message) error {
		fmt.Printf("welcome email to %s (attempt %d)\n", m.Body, m.Attempt)
		if handled++; handled == 2 {
			stop()
		}
		return nil
	}, mq.Group("email"))
	fmt.Println("Subscribe returned:", err)
	// Output:
	// welcome email to ada (attempt 1)
	// welcome email to grace (attempt 1)
	// Subscribe returned: context canceled
}

// A handler error asks for redelivery; the attempt count grows.
func ExampleHandler_redelivery() {
	ctx := context.Background()
	b, _ := mq.Open(ctx, "mem://")
	defer b.Close(ctx)
	mq.Provision(ctx, b, "payments", "ledger")
	b.Publish(ctx, "payments", mq.NewMessage([]byte("charge 42")))

	sub, stop := context.WithCancel(ctx)
	b.Subscribe(sub, "payments", func(ctx context.Context, m *mq.Message) error {
		if m.Attempt < 3 {
			fmt.Println("attempt", m.Attempt, "failed")
			return errors.New("bank unavailable")
		}
		fmt.Println("attempt", m.Attempt, "succeeded")
		stop()
		return nil
	}, mq.Group("ledger"), mq.Backoff(mq.ExponentialBackoff(0, 0)))
	// Output:
	// attempt 1 failed
	// attempt 2 failed
	// attempt 3 succeeded
}

// Open names the registered schemes when given one it does not know.
func ExampleOpen_unknownScheme() {
	_, err := mq.Open(context.Background(), "nats://localhost:4222")
	fmt.Println(errors.Is(err, mq.ErrInvalidURL))
	// Output: true
}

// Require fails start-up when configuration swaps in a broker that lacks
// what the service relies on.
func ExampleRequire() {
	ctx := context.Background()
	b, _ := mq.Open(ctx, "mem://")
	defer b.Close(ctx)
	fmt.Println(mq.Require(b, mq.CapFanOut, mq.CapReplay))
	// Output: <nil>
}

// Publish validates every message before sending any.
func ExamplePublisher_validation() {
	ctx := context.Background()
	b, _ := mq.Open(ctx, "mem://?max_message_bytes=1024")
	defer b.Close(ctx)
	err := b.Publish(ctx, "uploads", &mq.Message{ID: "m1", Body: make([]byte, 2048)})
	fmt.Println(errors.Is(err, mq.ErrMessageTooLarge))
	fmt.Println(err)
	// Output:
	// true
	// memory: Publish: mq: message too large: message 0 (id "m1") is 2050 bytes (ID, Key, Body and Header), the limit is 1024
}

// A service runs each consumer with Start and, on shutdown, closes the
// broker: running handlers finish, and every subscription ends.
func ExampleStart() {
	ctx := context.Background()
	b, err := mq.Open(ctx, "mem://")
	if err != nil {
		log.Fatal(err)
	}
	if err := mq.Provision(ctx, b, "signups", "email"); err != nil {
		log.Fatal(err)
	}

	handled := make(chan string)
	email := mq.Start(ctx, b, "signups", func(ctx context.Context, m *mq.Message) error {
		handled <- string(m.Body)
		return nil
	}, mq.Group("email"))

	if err := b.Publish(ctx, "signups", &mq.Message{Body: []byte("ada")}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("welcome email to", <-handled)

	if err := b.Close(ctx); err != nil {
		log.Fatal(err)
	}
	<-email.Done()
	fmt.Println("email service:", email.Err())
	fmt.Println("Stop:", email.Stop())
	// Output:
	// welcome email to ada
	// email service: memory: Subscribe: mq: closed
	// Stop: <nil>
}
