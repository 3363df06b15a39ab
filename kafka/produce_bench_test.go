package kafka

import (
	"context"
	"net"
	"testing"

	"github.com/segmentio/kafka-go"
	produceAPI "github.com/segmentio/kafka-go/protocol/produce"

	"github.com/seedmq/mq"
)

// instantLeader answers every produce request at once with success, in
// the goroutine that sends it, without reading its records: what is left
// of a Publish is the driver's own work (validation, records, queues,
// hand-offs between goroutines, settling), without the network.
type instantLeader struct{ res produceAPI.Response }

func (l *instantLeader) RoundTrip(_ context.Context, _ net.Addr, req kafka.Request) (kafka.Response, error) {
	r := req.(*produceAPI.Request)
	if len(l.res.Topics) == 0 {
		l.res.Topics = []produceAPI.ResponseTopic{{Topic: r.Topics[0].Topic, Partitions: []produceAPI.ResponsePartition{{}}}}
	}
	l.res.Topics[0].Partitions[0].Partition = r.Topics[0].Partitions[0].Partition
	return &l.res, nil
}

// BenchmarkLonePublishPath measures the driver's side of a lone
// Publish, one 1 KiB message per call, each call after the previous one
// returned, against a leader that answers at once. Its instructions per
// call are repeatable under load:
//
//	go test -c -o kafka.test ./kafka
//	GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind ./kafka.test -test.run '^$' -test.bench LonePublishPath -test.benchtime 20000x
func BenchmarkLonePublishPath(b *testing.B) {
	br := fakeBroker(b, &instantLeader{}, 3, Options{})
	ctx := context.Background()
	body := make([]byte, 1024)
	m := &mq.Message{ID: mq.NewID(), Body: body, Header: map[string]string{}}
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Publish(ctx, "t", m); err != nil {
			b.Fatal(err)
		}
	}
}

// A lone Publish of a message with few headers allocates its call (with
// its record and headers) and the call's done channel; nothing per
// request, per sender start or for Close's claim on the call.
func TestLonePublishAllocations(t *testing.T) {
	br := fakeBroker(t, &instantLeader{}, 3, Options{})
	ctx := context.Background()
	m := &mq.Message{ID: mq.NewID(), Body: make([]byte, 1024), Header: map[string]string{"a": "1"}}
	n := testing.AllocsPerRun(200, func() {
		if err := br.Publish(ctx, "t", m); err != nil {
			t.Fatal(err)
		}
	})
	if n > 2 {
		t.Errorf("lone Publish: got %v allocations, want at most 2", n)
	}
}
