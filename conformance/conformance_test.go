package conformance_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/conformance"
	_ "github.com/seedmq/mq/memory"
)

// TestConformance runs the suite against the memory driver. Every
// connection of one run shares one in-process server, named uniquely.
func TestConformance(t *testing.T) {
	name := fmt.Sprintf("conf-%08x", rand.Uint32())
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, "mem://"+name)
		},
		OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, "mem://"+name+"?provision=false")
		},
		Timeout: 10 * time.Second,
	})
}
