package sqs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// callTimeout bounds each SQS call the driver makes on its own behalf
// (deletes, visibility changes), beyond the SDK's own retries.
const callTimeout = 30 * time.Second

// Subscribe receives the messages of topic's queue and passes them to h,
// blocking until ctx ends (it returns ctx.Err()), the broker is closed
// (mq.ErrClosed), or SQS fails in a way retrying cannot fix, such as the
// queue being deleted or access denied (it returns that error).
// Transient failures (network, throttling, a restarting server) are
// logged and retried with backoff, also while Subscribe starts.
//
// An SQS queue is one group. Subscribe records the subscription's group
// in the queue's "mq-group" tag, and a different group is
// mq.ErrNotSupported (SQS has no fan-out); subscriptions with the same
// group, in this process or others, share the messages (competing
// consumers). mq.StartAt(mq.Earliest) is mq.ErrNotSupported (no replay).
//
// Options.Receivers long-poll loops fetch up to ten messages each and
// feed up to Concurrency handlers; the driver extends the visibility
// timeout of every message it holds, so a long handler is not redelivered
// mid-work. A nil result deletes the message (deletes are batched); an
// error makes it visible again after the Backoff or mq.RetryAfter delay
// (ChangeMessageVisibility, rounded up to whole seconds, at most 12
// hours; on a FIFO queue a message with a Key is retried in place instead,
// see the package documentation), and Attempt is SQS's
// ApproximateReceiveCount. A mq.Permanent
// error moves the message to the queue's dead-letter queue if its redrive
// policy names one, else logs it at error level and deletes it.
//
// When Subscribe stops, it stops receiving, waits for running handlers
// (canceling their context if ctx ended or Close's ctx ends), deletes
// what they handled, and makes the messages it holds unhandled visible
// again at once.
func (b *Broker) Subscribe(ctx context.Context, topic string, h mq.Handler, opts ...mq.SubscribeOption) error {
	cfg, exit, err := driver.StartSubscribe(&b.l, topic, h, b.opts.Group, mq.Latest, opts)
	if errors.Is(err, mq.ErrClosed) {
		return fmt.Errorf("sqs: Subscribe: %w", err)
	}
	if err != nil {
		return fmt.Errorf("sqs: %w", err)
	}
	defer exit()
	if cfg.StartAt == mq.Earliest {
		return fmt.Errorf("sqs: %w: StartAt(Earliest): SQS deletes handled messages, a new group cannot replay history", mq.ErrNotSupported)
	}
	if _, err := b.queueName(topic); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.subscribe(ctx, topic, h, cfg, func(ctx context.Context) (*queue, string, string, error) {
		return b.prepare(ctx, topic, cfg.Group)
	})
}

// subscribe runs a subscription to the queue that prepare returns (with
// the group it serves and its dead-letter queue URL), retrying prepare
// through transient failures. sns+sqs subscribes through it too, with a
// prepare of its own (see sns_subscribe.go).
func (b *Broker) subscribe(ctx context.Context, topic string, h mq.Handler, cfg driver.SubscribeConfig,
	prepare func(context.Context) (q *queue, group, dlq string, err error)) error {
	var (
		q     *queue
		group string
		dlq   string
		err   error
	)
	backoff := mq.ExponentialBackoff(100*time.Millisecond, 5*time.Second)
	for failures := 1; ; failures++ {
		q, group, dlq, err = prepare(ctx)
		if err == nil {
			break
		}
		if !mq.IsRetryable(err) {
			return err
		}
		b.log.Warn("sqs: Subscribe cannot reach the queue yet; retrying", "topic", topic, "failures", failures, "error", err)
		select {
		case <-time.After(backoff(failures)):
		case <-ctx.Done():
			return ctx.Err()
		case <-b.l.Closing():
			return fmt.Errorf("sqs: Subscribe: %w", mq.ErrClosed)
		}
	}
	receivers := b.opts.Receivers
	if receivers == 0 {
		receivers = (cfg.Concurrency + maxBatch - 1) / maxBatch
	}
	s := &subscription{
		b:          b,
		q:          q,
		cfg:        cfg,
		h:          h,
		group:      group,
		dlq:        dlq,
		receivers:  receivers,
		fatal:      make(chan error, 1),
		credits:    newCredits(cfg.Concurrency + maxBatch*receivers),
		delLimit:   maxBatch * max(2, receivers),
		held:       map[*mq.Message]*held{},
		delWaiting: map[*recvBatch]struct{}{},
	}
	s.calls, s.stopCalls = context.WithCancel(b.base)
	defer s.stopCalls()
	return s.run(ctx)
}

// prepare looks up (or creates) topic's queue, checks the group and reads
// the queue's dead-letter target.
func (b *Broker) prepare(ctx context.Context, topic, group string) (q *queue, g, dlq string, err error) {
	create := !b.opts.NoProvision
	if q, err = b.queue(ctx, topic, create); err != nil {
		return nil, "", "", err
	}
	if g, err = b.claimGroup(ctx, q, group, create); err != nil {
		return nil, "", "", err
	}
	if dlq, err = b.deadLetterURL(ctx, q); err != nil {
		return nil, "", "", err
	}
	return q, g, dlq, nil
}

// subscription is one running Subscribe. Its work is split by concern:
//
//   - receive.go: the long-poll loops, which take credits, receive up to
//     ten messages, and hand each to the dispatcher (deliver);
//   - the driver.Dispatcher runs the handlers, up to Concurrency at once,
//     one at a time per FIFO Key (its lane) and retries failed FIFO
//     messages with a Key in place;
//   - settle.go: a handler's outcome becomes a delete (ack), a visibility
//     change (release), a move to the dead-letter queue (reject) or an
//     in-place retry;
//   - delete.go: acknowledged messages wait for the rest of their receive
//     batch, then go out in DeleteMessageBatch calls;
//   - visibility.go: the heartbeat extends the visibility timeout of
//     every held message, wherever it waits;
//   - credits.go: credits bound the messages held and not yet settled.
//
// A message is held from its receipt until its delete is done or it is
// released: while it waits for its turn in a lane or for an in-place
// retry, runs its handler, or waits for its delete. The heartbeat extends
// every held message, which is why a FIFO message can wait in the
// dispatcher's lane or retry timer without SQS redelivering it.
//
// # Locking
//
// Four locks, each guarding its own state; none is held while calling
// into the dispatcher, the handler, or (except hbMu) SQS:
//
//   - hbMu orders visibility changes. The heartbeat (extend) holds it
//     exclusively for its whole round of ChangeMessageVisibilityBatch
//     calls; release holds it shared around its ChangeMessageVisibility,
//     so that a release's shorter visibility is never overwritten by an
//     extension computed before it.
//   - mu guards held (the held set) and each held's visibleAt and
//     retryAt. forget closes a partial receive batch's done channel under
//     it.
//   - delMu guards the deletes: delPending, delActive, delBusy, delHeld,
//     delWaiting, delDirect, each held's owes and acked, and each
//     recvBatch's open, acked and wait.
//   - credits.mu guards the free credits.
//
// Lock order: hbMu before mu (extend takes mu inside hbMu). mu and delMu
// are never held together: release forgets (mu) before it unbatches
// (delMu), and a delete loop drops delMu before deleteBatch forgets the
// deleted messages (mu). credits.mu is a leaf: credits are given back
// after delMu is released. recvBatch.left is atomic.
type subscription struct {
	b         *Broker
	q         *queue
	cfg       driver.SubscribeConfig
	h         mq.Handler
	group     string
	dlq       string // dead-letter queue URL, "" if none
	receivers int
	fatal     chan error // a receiver's non-retryable failure

	d       *driver.Dispatcher
	credits *credits // one per message held and not yet settled (see ack)

	hbMu sync.RWMutex

	// calls bounds the SQS calls the subscription makes on its own
	// behalf while stopping (deletes, visibility changes): stopCalls
	// cancels it driver.CloseGrace after Subscribe's drain context has
	// ended, so that a stalled network cannot hold Subscribe; messages
	// whose delete is abandoned come back (at-least-once).
	calls     context.Context
	stopCalls context.CancelFunc

	mu   sync.Mutex
	held map[*mq.Message]*held // received and not yet deleted or released

	// Acknowledged messages waiting for DeleteMessageBatch. An
	// acknowledged message first waits in its receive batch (see ack),
	// then joins delPending. Delete loops start on demand, up to the
	// number of receivers (at least two), and end when nothing is pending:
	// while they are busy, deletes accumulate into the next batch.
	delMu      sync.Mutex
	delPending []*held
	delActive  int // running delete loops
	delBusy    int // of which in a DeleteMessageBatch call
	delWG      sync.WaitGroup
	delWaiting map[*recvBatch]struct{} // receive batches with acknowledged messages waiting in them
	delDirect  bool                    // stopping: acknowledged messages go to delPending at once
	// Acknowledged messages not yet deleted (pending or being deleted),
	// and how many of them may have their credit back before their delete
	// is done.
	delHeld  int
	delLimit int
}

// held is one received message the subscription is responsible for.
type held struct {
	sm   types.Message
	msg  *mq.Message // &m
	m    mq.Message
	lane string // the Key on FIFO queues, "" when unordered

	del   driver.Delivery // its delivery to the dispatcher
	batch *recvBatch      // the receive it came in
	owes  bool            // acknowledged, its credit comes back when the delete is done; guarded by subscription.delMu
	acked bool            // acknowledged; guarded by subscription.delMu

	visibleAt time.Time // when SQS makes it visible unless extended; guarded by subscription.mu
	retryAt   time.Time // when its pending in-place retry is due; guarded by subscription.mu
}

// run receives and handles messages until ctx ends, the broker closes or
// a receiver fails for good, then drains: it stops receiving, shuts the
// dispatcher down (within ctx, or Close's context), flushes the deletes
// and releases what is still held.
func (s *subscription) run(ctx context.Context) error {
	b := s.b
	s.d = driver.NewDispatcher(ctx, s.h, driver.DispatcherConfig{Concurrency: s.cfg.Concurrency, MaxPending: s.credits.total, Logger: b.log})

	recvCtx, stopReceiving := context.WithCancel(ctx)
	defer stopReceiving()
	var recvWG, hbWG sync.WaitGroup
	for range s.receivers {
		recvWG.Add(1)
		go func() {
			defer recvWG.Done()
			s.receive(recvCtx)
		}()
	}
	hbStop := make(chan struct{})
	hbWG.Add(1)
	go func() {
		defer hbWG.Done()
		s.heartbeat(hbStop)
	}()

	var reason error
	drainCtx := ctx
	select {
	case <-ctx.Done():
		reason = ctx.Err()
	case <-b.l.Closing():
		reason, drainCtx = mq.ErrClosed, b.l.DrainContext()
	case err := <-s.fatal:
		reason = err
	}
	// From when drainCtx ends (at once if Subscribe's ctx was canceled),
	// the deletes and visibility changes below get driver.CloseGrace.
	stopGrace := context.AfterFunc(drainCtx, func() { time.AfterFunc(driver.CloseGrace, s.stopCalls) })
	defer stopGrace()
	// Stop receiving and start no handler from now on: shut the
	// dispatcher down before waiting for the receivers, whose canceled
	// long polls can take a while to return; what they still deliver is
	// refused by the dispatcher and made visible again. Shutdown releases
	// the deliveries waiting in lanes or for an in-place retry.
	stopReceiving()
	s.d.Shutdown(drainCtx) // every delivery is settled when it returns
	recvWG.Wait()
	s.flushBatches()
	s.delWG.Wait() // deletes reached SQS (or failed)
	close(hbStop)
	hbWG.Wait()
	s.releaseAll() // messages whose delete failed: let them come back now
	if errors.Is(reason, mq.ErrClosed) {
		return fmt.Errorf("sqs: Subscribe: %w", mq.ErrClosed)
	}
	return reason
}
