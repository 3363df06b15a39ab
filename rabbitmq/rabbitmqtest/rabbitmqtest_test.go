package rabbitmqtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq/rabbitmq/rabbitmqtest"
)

func dial(t *testing.T, url string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}
	return conn, ch
}

func publishConfirmed(t *testing.T, ctx context.Context, ch *amqp.Channel, queue string, msg amqp.Publishing) {
	t.Helper()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, msg)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil || !ok {
		t.Fatalf("publisher confirm: ack=%v err=%v", ok, err)
	}
}

// get polls basic.get until a message arrives or ctx ends.
func get(t *testing.T, ctx context.Context, ch *amqp.Channel, queue string) amqp.Delivery {
	t.Helper()
	for {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if ok {
			if err := d.Ack(false); err != nil {
				t.Fatalf("ack: %v", err)
			}
			return d
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no message on %s: %v", queue, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestSmokeRabbitMQ(t *testing.T) {
	url := rabbitmqtest.URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, ch := dial(t, url)

	q, err := ch.QueueDeclare("", false, true, true, false, nil) // server-named, exclusive, auto-delete
	if err != nil {
		t.Fatalf("declare: %v", err)
	}
	body := []byte("hello \x00 rabbit")
	publishConfirmed(t, ctx, ch, q.Name, amqp.Publishing{
		Body:    body,
		Headers: amqp.Table{"h": "v"},
	})
	d := get(t, ctx, ch, q.Name)
	if string(d.Body) != string(body) || d.Headers["h"] != "v" {
		t.Fatalf("got body %q headers %v", d.Body, d.Headers)
	}
}

func TestSmokeRabbitMQRestart(t *testing.T) {
	url := rabbitmqtest.URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, ch := dial(t, url)
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))

	queue := fmt.Sprintf("mq-smoke-restart-%d", time.Now().UnixNano())
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatalf("declare durable queue: %v", err)
	}
	publishConfirmed(t, ctx, ch, queue, amqp.Publishing{
		DeliveryMode: amqp.Persistent,
		Body:         []byte("survives restart"),
	})

	rabbitmqtest.Restart(t) // may first wait for other packages' tests to finish with the broker
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("the connection open during the restart was not closed")
	}
	_, ch2 := dial(t, url)
	t.Cleanup(func() {
		_, _ = ch2.QueueDelete(queue, false, false, false)
	})
	d := get(t, ctx, ch2, queue)
	if string(d.Body) != "survives restart" {
		t.Fatalf("got %q", d.Body)
	}
}
