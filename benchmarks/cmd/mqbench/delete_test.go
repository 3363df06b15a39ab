package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	amqp "github.com/rabbitmq/amqp091-go"
	kafkago "github.com/segmentio/kafka-go"
)

// TestRunsDeleteWhatTheyCreate runs every contender of the real brokers
// through a small throughput run, and checks that what the run created
// on the broker (its topic, and the queues and exchanges named after it)
// is there while it runs and gone once it is over. Brokers whose address
// is not set are skipped (run: eval "$(scripts/brokers env)"), unless
// MQ_TEST_REQUIRE_BROKERS=1 (scripts/test sets it): then they fail.
func TestRunsDeleteWhatTheyCreate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	for _, p := range []brokerPlan{kafkaPlan(), rabbitPlan(), sqsPlan(ctx)} {
		t.Run(p.Name, func(t *testing.T) {
			if p.NA != "" {
				if os.Getenv("MQ_TEST_REQUIRE_BROKERS") == "1" {
					t.Fatalf("MQ_TEST_REQUIRE_BROKERS=1 but %s: %s", p.Name, p.NA)
				}
				t.Skip(p.NA)
			}
			check := leftovers[p.Name]
			for _, ct := range p.Contenders {
				if ct.NA != "" {
					continue
				}
				t.Run(ct.Name, func(t *testing.T) {
					// Other processes create mqb- names on the same brokers:
					// look only at the names this run makes.
					var topics []string
					topicMade = func(topic string) { topics = append(topics, topic) }
					t.Cleanup(func() { topicMade = nil })
					start := ct.Start
					ct.Start = func(ctx context.Context, c cell, recv func(int64)) (run, error) {
						r, err := start(ctx, c, recv)
						if err == nil {
							// Leave nothing behind when the test fails either.
							t.Cleanup(func() {
								ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
								defer cancel()
								_ = r.Delete(ctx)
							})
							// Check the check: it sees what the run made.
							for _, topic := range topics {
								got, err := check.list(ctx, topic)
								if err != nil || len(got) < check.during {
									t.Errorf("during the run, %s under %s: got %v (%v), want at least %d", p.Name, topic, got, err, check.during)
								}
							}
						}
						return r, err
					}
					c := cell{Size: 16, Conc: 2, Batch: p.Batch}
					if res := throughputRun(ctx, p.Name, ct, c, 20*p.Batch, 2*p.Batch, 0, time.Minute); res.Error != "" {
						t.Fatalf("run: %s", res.Error)
					}
					if len(topics) == 0 {
						t.Fatal("the run made no topic")
					}
					for _, topic := range topics {
						if got, err := check.gone(ctx, topic); err != nil || len(got) > 0 {
							t.Errorf("after the run, %s still has %v under %s (%v)", p.Name, got, topic, err)
						}
					}
				})
			}
		})
	}
}

// leftoverCheck lists what a broker holds under the names derived from a
// topic.
type leftoverCheck struct {
	list func(ctx context.Context, topic string) ([]string, error)
	// during is how many names a run has there while it runs (RabbitMQ:
	// an exchange and a queue).
	during int
}

// gone lists what is left under topic, waiting up to 10s for the list to
// empty: Kafka removes a deleted topic from its metadata asynchronously.
func (c leftoverCheck) gone(ctx context.Context, topic string) ([]string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := c.list(ctx, topic)
		if (err == nil && len(got) == 0) || time.Now().After(deadline) {
			return got, err
		}
		select { // poll the broker until the names are gone
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var leftovers = map[string]leftoverCheck{
	"kafka":    {list: kafkaLeftovers, during: 1},
	"rabbitmq": {list: rabbitLeftovers, during: 2},
	"sqs":      {list: sqsLeftovers, during: 1},
}

// derived reports whether name is topic or a name made from it by a
// suffix (topic.group, topic_group, topic-dlq...).
func derived(name, topic string) bool {
	rest, ok := strings.CutPrefix(name, topic)
	return ok && (rest == "" || strings.ContainsAny(rest[:1], ".-_"))
}

// kafkaLeftovers lists the cluster's topics derived from topic.
func kafkaLeftovers(ctx context.Context, topic string) ([]string, error) {
	t := &kafkago.Transport{}
	defer t.CloseIdleConnections()
	client := &kafkago.Client{Addr: kafkago.TCP(strings.Split(os.Getenv("MQ_TEST_KAFKA_ADDR"), ",")...), Transport: t}
	resp, err := client.Metadata(ctx, &kafkago.MetadataRequest{}) // no topics: all of them
	if err != nil {
		return nil, err
	}
	var out []string
	for _, tp := range resp.Topics {
		if derived(tp.Name, topic) {
			out = append(out, tp.Name)
		}
	}
	return out, nil
}

// sqsLeftovers lists the queues derived from topic.
func sqsLeftovers(ctx context.Context, topic string) ([]string, error) {
	client, transport, err := sqsClient(ctx, os.Getenv("MQ_TEST_SQS_ENDPOINT"), cmp.Or(os.Getenv("MQ_TEST_SQS_REGION"), "us-east-1"))
	if err != nil {
		return nil, err
	}
	defer transport.CloseIdleConnections()
	resp, err := client.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(topic)})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, url := range resp.QueueUrls {
		if name := path.Base(url); derived(name, topic) {
			out = append(out, name)
		}
	}
	return out, nil
}

// rabbitLeftovers lists which of the exchange and queues the RabbitMQ
// contenders declare for topic exist: AMQP cannot list them, so it names
// them as amqp091-go users, the mq driver (topic.group) and Watermill
// (topic_group) do, and asks for each with a passive declaration.
func rabbitLeftovers(ctx context.Context, topic string) ([]string, error) {
	conn, err := amqp.DialConfig(os.Getenv("MQ_TEST_AMQP_URL"), amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	// exists runs a passive declaration on a channel of its own: a
	// missing name closes the channel with 404 NOT_FOUND.
	exists := func(declare func(ch *amqp.Channel) error) (bool, error) {
		ch, err := conn.Channel()
		if err != nil {
			return false, err
		}
		err = declare(ch)
		if ae := (*amqp.Error)(nil); errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return false, nil
		}
		_ = ch.Close()
		return err == nil, err
	}
	var out []string
	ok, err := exists(func(ch *amqp.Channel) error {
		return ch.ExchangeDeclarePassive(topic, amqp.ExchangeFanout, true, false, false, false, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("exchange %s: %w", topic, err)
	}
	if ok {
		out = append(out, "exchange "+topic)
	}
	for _, q := range []string{topic + "." + benchGroup, topic + "_" + benchGroup} {
		ok, err := exists(func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("queue %s: %w", q, err)
		}
		if ok {
			out = append(out, "queue "+q)
		}
	}
	return out, nil
}
