package kafka_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
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
	const publishers = 8
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

	// Consumers: two members of one group, each on its own connection.
	var (
		mu        sync.Mutex
		delivered = map[string]int{}        // ID → deliveries
		resumed   = map[int]time.Duration{} // partition → first delivery of a message published after the kill, since the kill
		killedAt  atomic.Int64              // unix ns; 0 before the kill
	)
	handler := func(_ context.Context, m *mq.Message) error {
		var km kafkago.Message
		if !m.As(&km) {
			return fmt.Errorf("As(*kafka.Message): false")
		}
		pubNs, _ := strconv.ParseInt(m.Header["pub-ns"], 10, 64)
		mu.Lock()
		defer mu.Unlock()
		delivered[m.ID]++
		if k := killedAt.Load(); k != 0 && pubNs > k {
			if _, ok := resumed[km.Partition]; !ok {
				resumed[km.Partition] = time.Since(time.Unix(0, k))
			}
		}
		return nil
	}
	for range 2 {
		c := openURL(t, u)
		subscribe(t, c, topic, handler, mq.Group(group), mq.Concurrency(4))
	}

	// Publishers: each publishes its own sequence, one message per call,
	// retrying a message whose Publish failed (as a service would).
	var (
		acked      sync.Map // ID → struct{}
		nAcked     atomic.Int64
		nFailed    atomic.Int64
		maxBlocked atomic.Int64 // ns
		lastOK     atomic.Int64 // unix ns of the last successful Publish
		maxGap     atomic.Int64 // ns: longest time without a successful Publish after the kill
		stop       = make(chan struct{})
		wg         sync.WaitGroup
		errsMu     sync.Mutex
		errs       = map[string]int{}
	)
	lastOK.Store(time.Now().UnixNano())
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; seq < 1_000_000; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("p%d-%06d", p, seq)
				for try := 0; try < 20; try++ {
					m := &mq.Message{ID: id, Key: fmt.Sprintf("k%d", seq%16), Body: []byte(id),
						Header: map[string]string{"pub-ns": strconv.FormatInt(time.Now().UnixNano(), 10)}}
					ctx, cancel := context.WithTimeout(context.Background(), 2*publishBound)
					start := time.Now()
					err := pub.Publish(ctx, topic, m)
					took := time.Since(start)
					cancel()
					for {
						old := maxBlocked.Load()
						if int64(took) <= old || maxBlocked.CompareAndSwap(old, int64(took)) {
							break
						}
					}
					if err == nil {
						now := time.Now().UnixNano()
						if k := killedAt.Load(); k != 0 {
							gap := now - max(lastOK.Swap(now), k)
							for {
								old := maxGap.Load()
								if gap <= old || maxGap.CompareAndSwap(old, gap) {
									break
								}
							}
						} else {
							lastOK.Store(now)
						}
						acked.Store(id, struct{}{})
						nAcked.Add(1)
						break
					}
					nFailed.Add(1)
					errsMu.Lock()
					errs[shortErr(err)]++
					errsMu.Unlock()
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		}()
	}

	// Phase 1: steady state.
	time.Sleep(3 * time.Second)
	before := nAcked.Load()
	if before == 0 {
		close(stop)
		wg.Wait()
		t.Fatalf("no Publish succeeded in 3s before the kill")
	}

	// Phase 2: kill the leader of partition 0.
	leader, coordinator := leaderOf(t, addrs, topic, 0, group)
	node := fmt.Sprintf("kafka-cluster:%d", leader)
	t.Cleanup(func() {
		// Whatever happened, leave the cluster whole for the next test.
		if _, err := brokertest.BrokersErr(3*time.Minute, "up", "kafka-cluster"); err != nil {
			t.Errorf("bringing %s back: %v", node, err)
		}
	})
	t.Logf("killing %s: leader of partition 0 (group coordinator: node %d); %d messages acknowledged so far", node, coordinator, before)
	killStart := time.Now()
	killedAt.Store(killStart.UnixNano())
	brokertest.Brokers(t, 30*time.Second, "kill", node)

	// Publishing goes on on the two remaining nodes (min.insync.replicas 2).
	time.Sleep(20 * time.Second)
	afterKill := nAcked.Load()

	// Phase 3: the node comes back while publishing goes on.
	backStart := time.Now()
	brokertest.Brokers(t, 3*time.Minute, "up", "kafka-cluster")
	back := time.Since(backStart)
	time.Sleep(5 * time.Second)
	close(stop)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(2*publishBound + 10*time.Second):
		t.Fatalf("publishers did not stop within %v", 2*publishBound+10*time.Second)
	}

	// Every acknowledged message must arrive.
	want := int(nAcked.Load())
	var missing []string
	deadline := time.Now().Add(90 * time.Second)
	for {
		missing = missing[:0]
		mu.Lock()
		acked.Range(func(k, _ any) bool {
			if delivered[k.(string)] == 0 {
				missing = append(missing, k.(string))
			}
			return true
		})
		mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	dups, unacked := 0, 0
	for id, n := range delivered {
		dups += n - 1
		if _, ok := acked.Load(id); !ok {
			unacked++
		}
	}
	resumedCopy := maps.Clone(resumed)
	mu.Unlock()
	slices.Sort(missing)

	t.Logf("node loss, Kafka %s killed: %d published and acknowledged (%d before the kill, %d in the 20s after it), "+
		"%d lost, %d duplicate deliveries, %d delivered whose Publish had failed; %d failed Publish calls %v",
		node, want, before, afterKill-before, len(missing), dups, unacked, nFailed.Load(), errs)
	t.Logf("recovery: longest Publish %v (bound %v), longest time without a successful Publish after the kill %v, "+
		"consumers received post-kill messages per partition after %v; node back and ready in %v",
		time.Duration(maxBlocked.Load()).Round(time.Millisecond), publishBound,
		time.Duration(maxGap.Load()).Round(time.Millisecond), resumedCopy, back.Round(time.Millisecond))

	if len(missing) > 0 {
		t.Errorf("%d acknowledged messages never delivered, e.g. %v", len(missing), missing[:min(10, len(missing))])
	}
	if d := time.Duration(maxBlocked.Load()); d > publishBound {
		t.Errorf("a Publish blocked %v, want at most %v", d, publishBound)
	}
	for p := range 3 {
		d, ok := resumedCopy[p]
		switch {
		case !ok:
			t.Errorf("partition %d: no message published after the kill was delivered", p)
		case d > resumeBound:
			t.Errorf("partition %d: consumers resumed %v after the kill, want within %v", p, d, resumeBound)
		}
	}
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

// shortErr returns err's text without IDs and numbers that make each one
// unique, to count failures by kind.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i < 200 {
		s = s[i+2:]
	}
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}
