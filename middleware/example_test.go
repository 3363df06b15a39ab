package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
	"github.com/seedmq/mq/middleware"
)

// A handler stack in the recommended order, on the memory driver: a
// message that keeps failing is retried in process, redelivered by the
// broker, and dead-lettered after its third delivery.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := memory.New(ctx, memory.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close(context.Background())

	// Provision the topic, its dead-letter topic and their groups first,
	// so nothing published before the subscribers start is missed.
	dlq := middleware.DeadLetterTopic("invoices")
	_ = b.Provision(ctx, "invoices", "billing")
	_ = b.Provision(ctx, dlq, "ops")

	quiet := slog.New(slog.DiscardHandler) // a real service keeps its logger
	stack := middleware.Chain(
		middleware.Tracing(middleware.TracingOptions{System: middleware.SystemOf(b)}),
		middleware.Metrics(middleware.MetricsOptions{System: middleware.SystemOf(b)}),
		middleware.Logging(middleware.LoggingOptions{Logger: quiet}),
		middleware.DeadLetter(middleware.DeadLetterOptions{Publisher: b, MaxAttempts: 3}),
		middleware.Retry(middleware.RetryOptions{MaxAttempts: 2, InitialInterval: time.Millisecond}),
		middleware.Recover(middleware.RecoverOptions{Logger: quiet}),
		middleware.Timeout(middleware.TimeoutOptions{Timeout: time.Second}),
	)
	runs := 0
	handle := func(ctx context.Context, m *mq.Message) error {
		runs++
		return errors.New("payment provider rejected the invoice")
	}
	go b.Subscribe(ctx, "invoices", stack(handle), mq.Group("billing"),
		mq.Backoff(func(int) time.Duration { return time.Millisecond }))

	dead := make(chan *mq.Message, 1)
	go b.Subscribe(ctx, dlq, func(ctx context.Context, m *mq.Message) error {
		dead <- m
		return nil
	}, mq.Group("ops"))

	_ = b.Publish(ctx, "invoices", &mq.Message{ID: "invoice-7", Body: []byte("{}")})
	m := <-dead
	fmt.Println("handler runs:", runs)
	fmt.Println("dead letter:", m.ID)
	for _, k := range []string{middleware.HeaderTopic, middleware.HeaderGroup, middleware.HeaderAttempts, middleware.HeaderReason, middleware.HeaderError} {
		fmt.Printf("  %s: %s\n", k, m.Header[k])
	}
	// Output:
	// handler runs: 6
	// dead letter: invoice-7
	//   dlq-topic: invoices
	//   dlq-group: billing
	//   dlq-attempts: 3
	//   dlq-reason: max-attempts
	//   dlq-error: payment provider rejected the invoice
}

// Chain's one rule: the first middleware is the outermost.
func ExampleChain() {
	named := func(name string) mq.Middleware {
		return func(next mq.Handler) mq.Handler {
			return func(ctx context.Context, m *mq.Message) error {
				fmt.Println("enter", name)
				defer fmt.Println("leave", name)
				return next(ctx, m)
			}
		}
	}
	h := middleware.Chain(named("a"), named("b"))(func(context.Context, *mq.Message) error {
		fmt.Println("handler")
		return nil
	})
	_ = h(context.Background(), mq.NewMessage(nil))
	// Output:
	// enter a
	// enter b
	// handler
	// leave b
	// leave a
}

// Redrive moves dead letters back once the cause is fixed.
func ExampleRedrive() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := memory.New(ctx, memory.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close(context.Background())
	dlq := middleware.DeadLetterTopic("invoices")
	_ = b.Provision(ctx, "invoices", "billing")
	_ = b.Provision(ctx, dlq, "ops")
	_ = b.Publish(ctx, dlq, &mq.Message{ID: "invoice-7", Header: map[string]string{
		middleware.HeaderTopic: "invoices", middleware.HeaderReason: middleware.ReasonPermanent, "customer": "42",
	}})

	n, err := middleware.Redrive(ctx, b, dlq, middleware.RedriveOptions{
		Group:  "ops",
		Filter: func(m *mq.Message) bool { return m.Header[middleware.HeaderReason] == middleware.ReasonPermanent },
		Idle:   100 * time.Millisecond,
	})
	fmt.Println("moved:", n, err)

	back := make(chan *mq.Message, 1)
	go b.Subscribe(ctx, "invoices", func(ctx context.Context, m *mq.Message) error {
		back <- m
		return nil
	}, mq.Group("billing"))
	m := <-back
	fmt.Println("customer:", m.Header["customer"], "original ID:", m.Header[middleware.HeaderOriginalID])
	// Output:
	// moved: 1 <nil>
	// customer: 42 original ID: invoice-7
}
