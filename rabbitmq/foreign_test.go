package rabbitmq_test

import (
	"context"
	"fmt"
	"testing"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
)

// foreignPublisher returns a conformance.Harness.PublishForeign that
// publishes with amqp091-go directly, as a producer that does not use mq
// would: to the topic's exchange, the key as routing key, UTF-8 header
// values as strings and others as byte arrays, no message-id.
func foreignPublisher(t testing.TB) func(ctx context.Context, topic string, key, body []byte, headers map[string][]byte) error {
	url := rabbitmqtest.URL(t)
	return func(ctx context.Context, topic string, key, body []byte, headers map[string][]byte) error {
		conn, err := amqp.Dial(url)
		if err != nil {
			return err
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		if err := ch.Confirm(false); err != nil {
			return err
		}
		h := amqp.Table{}
		for k, v := range headers {
			if utf8.Valid(v) {
				h[k] = string(v)
			} else {
				h[k] = v
			}
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, topic, string(key), false, false, amqp.Publishing{
			Headers: h, Body: body, DeliveryMode: amqp.Persistent,
		})
		if err != nil {
			return err
		}
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("rabbitmq test: publish to %q nacked", topic)
		}
		return nil
	}
}
