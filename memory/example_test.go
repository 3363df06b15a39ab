package memory_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
)

// New builds a broker from Options; mq.Open("mem://...") does the same
// from a URL.
func ExampleNew() {
	ctx := context.Background()
	b, err := memory.New(ctx, memory.Options{MaxHeaders: 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close(ctx)
	fmt.Println(b.Capabilities().MaxHeaders)

	_, err = memory.New(ctx, memory.Options{MaxMessageBytes: -1})
	fmt.Println(errors.Is(err, mq.ErrInvalidOption))
	// Output:
	// 10
	// true
}

// InjectPublishErrors makes Publish fail, to test how a service copes
// with a broker refusing messages.
func ExampleBroker_InjectPublishErrors() {
	ctx := context.Background()
	b, err := mq.Open(ctx, "mem://")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close(ctx)
	var mem *memory.Broker
	if mq.As(b, &mem) {
		mem.InjectPublishErrors(errors.New("disk full"))
	}
	fmt.Println(b.Publish(ctx, "orders", mq.NewMessage([]byte("first"))))
	fmt.Println(b.Publish(ctx, "orders", mq.NewMessage([]byte("second"))))
	// Output:
	// memory: injected publish failure: disk full
	// <nil>
}
