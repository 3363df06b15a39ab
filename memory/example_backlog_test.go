package memory_test

import (
	"context"
	"fmt"

	"github.com/seedmq/mq"
	_ "github.com/seedmq/mq/memory"
)

// A group's backlog: what it has not acknowledged yet. The same call
// works on every driver; each documents what its broker counts.
func ExampleBroker_Backlog() {
	ctx := context.Background()
	b, err := mq.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer b.Close(ctx)
	_ = mq.Provision(ctx, b, "orders", "billing")
	_ = b.Publish(ctx, "orders", mq.NewMessage([]byte("a")), mq.NewMessage([]byte("b")))

	bl, err := mq.BacklogOf(ctx, b, "orders", "billing")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s/%s: %d message(s) behind\n", bl.Topic, bl.Group, bl.Messages)
	// Output: orders/billing: 2 message(s) behind
}
