package sqs

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// claimTimeout is the visibility timeout a message gets when it is
// received (or Options.VisibilityTimeout if shorter). The heartbeat
// extends it to the full VisibilityTimeout once the message has been held
// for a third of it, so most messages, handled within that time, cost no
// extension call; and a message the process never sees (an answer to a
// long poll canceled when the subscription stopped, or a crash right
// after receiving) is visible again within seconds.
const claimTimeout = 6 * time.Second

// claim returns the visibility timeout to receive messages with.
func (s *subscription) claim() time.Duration {
	return min(claimTimeout, s.b.opts.VisibilityTimeout)
}

// heartbeat extends the visibility timeout of held messages about to
// become visible, until stop is closed.
func (s *subscription) heartbeat(stop <-chan struct{}) {
	tick := max(s.claim()/3, 200*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			// Extend what would become visible within two ticks: one
			// tick could pass before the next chance.
			s.extend(time.Now().Add(2 * tick))
		}
	}
}

// extend sets the visibility timeout of every held message that becomes
// visible before horizon to the full Options.VisibilityTimeout.
func (s *subscription) extend(horizon time.Time) {
	b := s.b
	s.hbMu.Lock()
	defer s.hbMu.Unlock()
	start := time.Now()
	s.mu.Lock()
	var hs []*held
	for _, h := range s.held {
		if h.visibleAt.Before(horizon) {
			hs = append(hs, h)
			h.visibleAt = start.Add(b.opts.VisibilityTimeout)
		}
	}
	s.mu.Unlock()
	secs := int32(b.opts.VisibilityTimeout / time.Second)
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, 0, maxBatch)
	for len(hs) > 0 {
		n := min(len(hs), maxBatch)
		entries = entries[:0]
		for i, h := range hs[:n] {
			entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{
				Id: batchID(i), ReceiptHandle: h.sm.ReceiptHandle, VisibilityTimeout: secs,
			})
		}
		ctx, cancel := context.WithTimeout(s.calls, callTimeout)
		_, err := b.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(s.q.url), Entries: entries})
		cancel()
		if err != nil {
			b.log.Warn("sqs: could not extend the visibility of held messages; they may be redelivered while their handlers run",
				"queue", s.q.name, "count", n, "error", wrapErr(ctx, "ChangeMessageVisibilityBatch", err))
		}
		hs = hs[n:]
	}
}
