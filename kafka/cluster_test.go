//go:build cluster

package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/conformance"
	"github.com/seedmq/mq/internal/brokertest"
)

// The tests of this file run against the three-node cluster of
// `scripts/brokers up kafka-cluster` (replication 3, min.insync.replicas
// 2) and skip without it; see internal/brokertest.ClusterEnv.

// clusterURL returns a kafka:// URL for the cluster's PLAINTEXT listeners
// with replicated topics and extra query parameters.
func clusterURL(t testing.TB, query string) string {
	u := "kafka://" + brokertest.ClusterEnv(t, "MQ_TEST_KAFKA_CLUSTER_ADDR") + "?replication_factor=3"
	if query != "" {
		u += "&" + query
	}
	return u
}

// openURL opens u and closes the broker when the test ends.
func openURL(t testing.TB, u string) mq.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := mq.Open(ctx, u)
	if err != nil {
		t.Fatalf("Open: got %v, want nil", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: got %v, want nil", err)
		}
	})
	return b
}

// TestClusterConformance runs the conformance suite on the cluster,
// with topics replicated on the three nodes; its broker-restart case
// restarts node 1 (a rolling restart's step) while the suite's clients
// know all three.
func TestClusterConformance(t *testing.T) {
	u := clusterURL(t, "")
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, u)
		},
		OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, u+"&provision=false")
		},
		Restart: func(t testing.TB) { brokertest.Brokers(t, 3*time.Minute, "restart", "kafka-cluster:1") },
		Timeout: 60 * time.Second,
	})
}

// Bounds of the node-loss test.
const (
	// publishBound is the longest a Publish may block while a node is
	// lost: the driver retries failed messages for 15s (see Publishing in
	// the package documentation), plus the request in flight when the
	// retries end (kafka-go's own retries and timeouts).
	publishBound = 30 * time.Second
	// resumeBound is how long consumers may take to receive, from every
	// partition, messages published after the node was lost.
	resumeBound = 60 * time.Second
)

// TestClusterLeaderKill kills (SIGKILL) the node that leads partition 0
// of a topic while 8 publishers publish to it and a consumer group of two
// members consumes it, then brings the node back while publishing goes
// on. Every Publish that returned nil must be delivered (0 lost); Publish
// must never block longer than publishBound; consumers must resume on
// every partition by themselves. Duplicates and the times to recover are
// logged.
func TestClusterLeaderKill(t *testing.T) {
	addrs := strings.Split(brokertest.ClusterEnv(t, "MQ_TEST_KAFKA_CLUSTER_ADDR"), ",")
	u := clusterURL(t, "partitions=3&session_timeout=6s")
	pub := openURL(t, u)
	topic := uniqueName(t, "kill")
	const group = "g"
	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer pcancel()
	if err := mq.Provision(pctx, pub, topic, group); err != nil {
		t.Fatalf("Provision: got %v, want nil", err)
	}

	tr := &brokertest.Traffic{
		Publishers:   8,
		Publish:      func(ctx context.Context, m *mq.Message) error { return pub.Publish(ctx, topic, m) },
		PublishBound: publishBound,
		ResumeBound:  resumeBound,
	}
	// Consumers: two members of one group, each on its own connection.
	for range 2 {
		c := openURL(t, u)
		subscribe(t, c, topic, func(_ context.Context, m *mq.Message) error {
			var km kafkago.Message
			if !m.As(&km) {
				return fmt.Errorf("As(*kafka.Message): false")
			}
			tr.Delivered(m, km.Partition)
			return nil
		}, mq.Group(group), mq.Concurrency(4))
	}
	tr.Start()

	// Phase 1: steady state.
	time.Sleep(3 * time.Second)
	if tr.Acked() == 0 {
		tr.Stop(t)
		t.Fatalf("no Publish succeeded in 3s before the kill")
	}

	// Phase 2: kill the leader of partition 0; publishing goes on on the
	// two other nodes (min.insync.replicas 2).
	leader, coordinator := leaderOf(t, addrs, topic, 0, group)
	node := fmt.Sprintf("kafka-cluster:%d", leader)
	t.Cleanup(func() {
		// Whatever happened, leave the cluster whole for the next test.
		if _, err := brokertest.BrokersErr(3*time.Minute, "up", "kafka-cluster"); err != nil {
			t.Errorf("bringing %s back: %v", node, err)
		}
	})
	tr.Phase("killed %s, the leader of partition 0 (the group's coordinator is node %d)", node, coordinator)
	brokertest.Brokers(t, 30*time.Second, "kill", node)
	tr.Fault() // once the node is gone: later messages cannot have reached it
	time.Sleep(20 * time.Second)
	afterKill := tr.Acked()

	// Phase 3: the node comes back while publishing goes on.
	backStart := time.Now()
	brokertest.Brokers(t, 3*time.Minute, "up", "kafka-cluster")
	tr.Phase("%d Publish calls returned nil in the 20s after the kill; %s restarted and ready in %v",
		afterKill, node, time.Since(backStart).Round(time.Millisecond))
	time.Sleep(5 * time.Second)
	tr.Stop(t)
	tr.Check(t, "Kafka, partition leader killed", []int{0, 1, 2}, 90*time.Second)
}

// leaderOf returns the node ID leading partition of topic and the node
// coordinating group's consumer group for topic ("<group>.<topic>").
func leaderOf(t testing.TB, addrs []string, topic string, partition int, group string) (leader, coordinator int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := &kafkago.Client{Addr: kafkago.TCP(addrs...), Timeout: 10 * time.Second}
	md, err := c.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	leader = -1
	for _, tp := range md.Topics {
		for _, p := range tp.Partitions {
			if tp.Name == topic && p.ID == partition {
				leader = p.Leader.ID
			}
		}
	}
	if leader < 1 || leader > 3 {
		t.Fatalf("partition %d of %s: leader %d, want a node from 1 to 3", partition, topic, leader)
	}
	coordinator = -1
	if fc, err := c.FindCoordinator(ctx, &kafkago.FindCoordinatorRequest{Key: group + "." + topic, KeyType: kafkago.CoordinatorKeyTypeConsumer}); err == nil && fc.Error == nil {
		coordinator = int(fc.Coordinator.NodeID)
	}
	return leader, coordinator
}
