package rabbitmq_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/conformance"
	"github.com/seedmq/mq/internal/brokertest"
)

// The tests of this file run against the three-node cluster of
// `scripts/brokers up rabbitmq-cluster` (quorum queues with a replica on
// every node) and skip without it; see internal/brokertest.ClusterEnv.

// Bounds of the node-loss tests.
const (
	// clusterPublishBound is the longest a Publish may block while a node
	// is lost. The driver has no bound of its own (Publish waits for the
	// confirm, bounded by its ctx): this is what a service can count on
	// with a quorum queue, whose new leader is elected within seconds.
	clusterPublishBound = 30 * time.Second
	// clusterResumeBound is how long consumers may take to receive
	// messages published after the node was lost.
	clusterResumeBound = 60 * time.Second
)

// openCluster opens url (plus testQueueExpires and query) and closes the
// broker when the test ends.
func openCluster(t testing.TB, url, query string) mq.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	b, err := mq.Open(ctx, withQuery(t, url, query))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// TestClusterConformance runs the conformance suite on the cluster with
// quorum queues (a replica on each node), connected to node 1; its
// broker-restart case restarts node 1.
func TestClusterConformance(t *testing.T) {
	node := clusterNodeURLs(t, "MQ_TEST_AMQP_CLUSTER_URL")[0]
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, withQuery(t, node, ""))
		},
		OpenNoProvision: func(ctx context.Context) (mq.Broker, error) {
			return mq.Open(ctx, withQuery(t, node, "provision=false"))
		},
		Restart: func(t testing.TB) { brokertest.Brokers(t, 3*time.Minute, "restart", "rabbitmq-cluster:1") },
		Timeout: 30 * time.Second,
	})
}

// quorumLeader returns the number (1 to 3) of the cluster node that leads
// queue, asking node ask with rabbitmqctl.
func quorumLeader(t testing.TB, ask int, queue string) int {
	t.Helper()
	out := brokertest.Brokers(t, time.Minute, "ctl", fmt.Sprintf("rabbitmq-cluster:%d", ask),
		"list_queues", "name", "leader", "--no-table-headers")
	re := regexp.MustCompile(`^mqc([123])-`)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == queue {
			if m := re.FindStringSubmatch(f[1]); m != nil {
				n, _ := strconv.Atoi(m[1])
				return n
			}
		}
	}
	t.Fatalf("no leader for queue %s in:\n%s", queue, out)
	return 0
}

// TestClusterQuorumLeaderKill kills (SIGKILL) the node that leads a
// group's quorum queue while 8 publishers publish to the topic and two
// subscribers of the group consume it, all connected to another node; then
// brings the node back while publishing goes on. Every Publish that
// returned nil must be delivered (0 lost); Publish must never block longer
// than clusterPublishBound; consumers must resume by themselves.
func TestClusterQuorumLeaderKill(t *testing.T) {
	nodes := clusterNodeURLs(t, "MQ_TEST_AMQP_CLUSTER_URL")
	topic := uniqueTopic(t)
	const group = "g"

	// Declared through node 1, the queue's leader starts there
	// (queue_leader_locator client-local).
	first := openCluster(t, nodes[0], "")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := mq.Provision(ctx, first, topic, group); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	leader := quorumLeader(t, 2, topic+"."+group)
	client := leader%3 + 1 // another node
	pub := openCluster(t, nodes[client-1], "")

	tr := &brokertest.Traffic{
		Publishers:   8,
		Publish:      func(ctx context.Context, m *mq.Message) error { return pub.Publish(ctx, topic, m) },
		PublishBound: clusterPublishBound,
		ResumeBound:  clusterResumeBound,
	}
	for range 2 {
		c := openCluster(t, nodes[client-1], "")
		subscribe(t, c, topic, func(_ context.Context, m *mq.Message) error {
			tr.Delivered(m, 0)
			return nil
		}, mq.Group(group), mq.Concurrency(4))
	}
	tr.Start()

	time.Sleep(3 * time.Second)
	if tr.Acked() == 0 {
		tr.Stop(t)
		t.Fatalf("no Publish succeeded in 3s before the kill")
	}

	node := fmt.Sprintf("rabbitmq-cluster:%d", leader)
	t.Cleanup(func() {
		if _, err := brokertest.BrokersErr(3*time.Minute, "up", "rabbitmq-cluster"); err != nil {
			t.Errorf("bringing %s back: %v", node, err)
		}
	})
	tr.Phase("killed %s, the quorum queue's leader; clients connected to rabbitmq-cluster:%d", node, client)
	brokertest.Brokers(t, 30*time.Second, "kill", node)
	tr.Fault() // once the node is gone: later messages cannot have reached it
	time.Sleep(15 * time.Second)
	newLeader := quorumLeader(t, client, topic+"."+group)
	afterKill := tr.Acked()

	backStart := time.Now()
	brokertest.Brokers(t, 3*time.Minute, "up", "rabbitmq-cluster")
	tr.Phase("new leader rabbitmq-cluster:%d; %d Publish calls returned nil in the 15s after the kill; %s restarted and ready in %v",
		newLeader, afterKill, node, time.Since(backStart).Round(time.Millisecond))
	time.Sleep(5 * time.Second)
	tr.Stop(t)
	tr.Check(t, "RabbitMQ, quorum leader's node killed", []int{0}, 90*time.Second)
}
