package outbox_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seedmq/mq"
	_ "github.com/seedmq/mq/kafka" // kafka://
	"github.com/seedmq/mq/outbox"
	_ "github.com/seedmq/mq/rabbitmq" // amqp://
	_ "github.com/seedmq/mq/sqs"      // sqs://
)

// The outbox relays to each real broker through mq.Open: every committed
// message arrives, and none of a rolled-back transaction does. SQLite
// holds the outbox (the database side is covered on PostgreSQL above).
func TestRealBrokers(t *testing.T) {
	suffix := fmt.Sprint(time.Now().UnixNano())
	for _, c := range []struct{ name, env, url string }{
		{"kafka", "MQ_TEST_KAFKA_ADDR", "kafka://%s"},
		{"rabbitmq", "MQ_TEST_AMQP_URL", "%s"},
		{"sqs", "MQ_TEST_SQS_ENDPOINT", "sqs://?region=elasticmq&endpoint=%s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := os.Getenv(c.env)
			if v == "" {
				msg := c.env + " is not set: run scripts/brokers up and eval \"$(scripts/brokers env)\""
				if os.Getenv("MQ_TEST_REQUIRE_BROKERS") == "1" {
					t.Fatal(msg)
				}
				t.Skip(msg)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			b, err := mq.Open(ctx, fmt.Sprintf(c.url, v))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(context.Background())
			topic, group := "outbox-"+suffix, "outbox-test"
			if err := mq.Provision(ctx, b, topic, group); err != nil && !strings.Contains(err.Error(), "not supported") {
				t.Fatalf("Provision: %v", err)
			}
			db, _, _ := openSQLite(t)
			if err := outbox.Migrate(ctx, db, outbox.SQLite); err != nil {
				t.Fatal(err)
			}
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := outbox.Publisher(tx, outbox.SQLite).Publish(ctx, topic, &mq.Message{ID: "rolled-back"}); err != nil {
				t.Fatal(err)
			}
			tx.Rollback()
			const n = 30
			for i := range n {
				write(t, db, outbox.SQLite, topic, &mq.Message{ID: fmt.Sprint("m", i), Key: fmt.Sprint("k", i%3), Body: []byte{byte(i)}})
			}
			go outbox.NewRelay(db, outbox.SQLite, outbox.RelayOptions{Publisher: b, PollInterval: 20 * time.Millisecond}).Run(ctx)
			var mu sync.Mutex
			got := map[string]bool{}
			opts := []mq.SubscribeOption{mq.Group(group)}
			if b.Capabilities().Replay {
				opts = append(opts, mq.StartAt(mq.Earliest))
			}
			subErr := make(chan error, 1)
			go func() {
				subErr <- b.Subscribe(ctx, topic, func(ctx context.Context, m *mq.Message) error {
					mu.Lock()
					got[m.ID] = true
					mu.Unlock()
					return nil
				}, opts...)
			}()
			waitFor(t, 75*time.Second, "every message at the broker's subscriber", func() bool {
				select {
				case err := <-subErr:
					t.Fatalf("Subscribe: %v", err)
				default:
				}
				mu.Lock()
				defer mu.Unlock()
				return len(got) >= n
			})
			mu.Lock()
			defer mu.Unlock()
			if got["rolled-back"] {
				t.Fatal("the rolled-back message was delivered")
			}
		})
	}
}
