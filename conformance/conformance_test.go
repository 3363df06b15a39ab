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
	// RabbitMQ's key and header limits, so the limit cases run here too.
	url := "mem://" + name + "?max_key_bytes=255&max_header_key_bytes=255&max_header_bytes=32768"
	conformance.Run(t, conformance.Harness{
		URL: url,
		Open: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, url)
		},
		OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, "mem://"+name+"?provision=false")
		},
		// The memory broker has no producers but mq's: a foreign
		// message is modelled as one published without an ID, with the
		// key and headers as they are.
		PublishForeign: func(ctx context.Context, topic string, key, body []byte, headers map[string][]byte) error {
			b, err := mq.Open(ctx, "mem://"+name)
			if err != nil {
				return err
			}
			defer b.Close(ctx)
			m := &mq.Message{Key: string(key), Body: body, Header: map[string]string{}}
			for k, v := range headers {
				m.Header[k] = string(v)
			}
			return b.Publish(ctx, topic, m)
		},
		Timeout: 10 * time.Second,
	})
}
