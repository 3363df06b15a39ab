package sqs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
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
	if h == nil {
		return fmt.Errorf("sqs: %w: Subscribe needs a non-nil Handler", mq.ErrInvalidOption)
	}
	cfg, err := driver.NewSubscribeConfig(b.opts.Group, mq.Latest, opts)
	if err != nil {
		return fmt.Errorf("sqs: %w", err)
	}
	if cfg.StartAt == mq.Earliest {
		return fmt.Errorf("sqs: %w: StartAt(Earliest): SQS deletes handled messages, a new group cannot replay history", mq.ErrNotSupported)
	}
	if b.isClosed() {
		return fmt.Errorf("sqs: Subscribe: %w", mq.ErrClosed)
	}
	if _, err := b.queueName(topic); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var (
		q     *queue
		group string
		dlq   string
	)
	backoff := mq.ExponentialBackoff(100*time.Millisecond, 5*time.Second)
	for failures := 1; ; failures++ {
		q, group, dlq, err = b.prepare(ctx, topic, cfg.Group)
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
		case <-b.closing:
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
		stopCh:     make(chan struct{}),
		fatal:      make(chan error, 1),
		credits:    newCredits(cfg.Concurrency + maxBatch*receivers),
		delLimit:   maxBatch * max(2, receivers),
		held:       map[*mq.Message]*held{},
		lanes:      map[string][]*held{},
		delWaiting: map[*recvBatch]struct{}{},
	}
	if err := b.track(s); err != nil {
		return fmt.Errorf("sqs: Subscribe: %w", mq.ErrClosed)
	}
	defer b.untrack(s)
	return s.run(ctx)
}

// prepare looks up (or creates) topic's queue, checks the group and reads
// the queue's dead-letter target.
func (b *Broker) prepare(ctx context.Context, topic, group string) (q *queue, g, dlq string, err error) {
	create := !b.opts.DisableProvisioning
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

// subscription is one running Subscribe.
type subscription struct {
	b         *Broker
	q         *queue
	cfg       driver.SubscribeConfig
	h         mq.Handler
	group     string
	dlq       string // dead-letter queue URL, "" if none
	receivers int

	stopOnce sync.Once
	stopCh   chan struct{}   // closed by stop
	stopErr  error           // why stop was called
	stopCtx  context.Context // bounds the drain after stop
	fatal    chan error      // a receiver's non-retryable failure

	d       *driver.Dispatcher
	credits *credits // one per message held and not yet settled (see ack)

	// hbMu orders visibility changes: heartbeats hold it exclusively, so
	// that a nack's shorter visibility is never overwritten by an
	// extension sent at the same moment.
	hbMu sync.RWMutex

	mu       sync.Mutex
	held     map[*mq.Message]*held // received and not yet deleted or released
	lanes    map[string][]*held    // FIFO Key -> messages waiting behind the one handled
	stopping bool                  // no more retries or lane successors
	retries  sync.WaitGroup        // pending in-place retries

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

	del   driver.Delivery // its first submission to the dispatcher
	batch *recvBatch      // the receive it came in
	owes  bool            // acknowledged, its credit comes back when the delete is done; guarded by subscription.delMu
	acked bool            // acknowledged; guarded by subscription.delMu

	visibleAt time.Time // when SQS makes it visible unless extended; guarded by subscription.mu

	// An in-place retry (FIFO), guarded by subscription.mu.
	retry   *time.Timer
	retryAt time.Time
}

// stop makes run return err, draining within ctx.
func (s *subscription) stop(ctx context.Context, err error) {
	s.stopOnce.Do(func() {
		s.stopErr = err
		s.stopCtx = ctx
		close(s.stopCh)
	})
}

func (s *subscription) run(ctx context.Context) error {
	b := s.b
	maxPending := s.credits.total
	s.d = driver.NewDispatcher(ctx, s.h, driver.DispatcherConfig{Concurrency: s.cfg.Concurrency, MaxPending: maxPending, Logger: b.log})

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
	case <-s.stopCh:
		reason, drainCtx = s.stopErr, s.stopCtx
	case err := <-s.fatal:
		reason = err
	}
	// Stop receiving and start no handler from now on: shut the
	// dispatcher down before waiting for the receivers, whose canceled
	// long polls can take a while to return; what they still deliver is
	// refused by the dispatcher and made visible again.
	stopReceiving()
	s.stopRetries()
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

// receive runs one long-poll loop until ctx ends or a non-retryable
// failure.
func (s *subscription) receive(ctx context.Context) {
	b := s.b
	backoff := mq.ExponentialBackoff(100*time.Millisecond, 5*time.Second)
	failures := 0
	pause := time.NewTimer(receivePause)
	defer pause.Stop()
	for {
		n, ok := s.credits.take(ctx)
		if !ok {
			return
		}
		sent := time.Now()
		out, err := b.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(s.q.url),
			MaxNumberOfMessages:         int32(n),
			WaitTimeSeconds:             int32(b.opts.WaitTime / time.Second),
			VisibilityTimeout:           int32(s.claim() / time.Second),
			MessageAttributeNames:       allAttributes,
			MessageSystemAttributeNames: systemAttributes(s.q.fifo),
		})
		var got []types.Message
		visibleAt := sent.Add(s.claim())
		if out != nil {
			got = out.Messages
		}
		s.credits.give(n - len(got))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			err = wrapErr(ctx, "ReceiveMessage from "+s.q.name, err)
			if !mq.IsRetryable(err) {
				b.log.Error("sqs: receiving failed; the subscription stops", "queue", s.q.name, "error", err)
				select {
				case s.fatal <- err:
				default:
				}
				return
			}
			failures++
			b.log.Warn("sqs: receiving failed; retrying", "queue", s.q.name, "failures", failures, "error", err)
			if !sleep(ctx, backoff(failures)) {
				return
			}
			continue
		}
		failures = 0
		if len(got) == 0 {
			continue
		}
		rb := &recvBatch{open: len(got), acked: make([]*held, 0, len(got))}
		if len(got) < n {
			rb.done = make(chan struct{})
			rb.left.Store(int32(len(got)))
		}
		for i := range got {
			s.deliver(ctx, &got[i], visibleAt, rb)
		}
		if rb.done != nil {
			pause.Reset(receivePause)
			select {
			case <-rb.done:
			case <-pause.C:
			case <-ctx.Done():
				return
			}
		}
	}
}

// receivePause bounds how long a receiver waits, after a ReceiveMessage
// that returned fewer messages than it asked for, for those messages to
// be done with (deleted or released) before it asks again. The queue had
// no more ready messages, so asking again at once would mostly fetch one
// or two per call, and each call costs about as much client CPU as the
// messages it brings; waiting for the deletes is the rhythm of a plain
// receive-handle-delete loop. The bound keeps slow handlers from holding
// back messages that other free handlers could take.
const receivePause = 25 * time.Millisecond

// recvBatch is the messages one ReceiveMessage returned.
type recvBatch struct {
	// On a partial receive only (done is nil otherwise): the messages not
	// yet done with (deleted or released), see receivePause.
	left atomic.Int32
	done chan struct{} // closed when left reaches 0

	// Guarded by subscription.delMu: the messages neither acknowledged
	// nor released yet, those acknowledged whose delete waits for them,
	// and the timer that bounds that wait (see ack).
	open  int
	acked []*held
	wait  *time.Timer
}

// allAttributes asks ReceiveMessage for every message attribute.
var allAttributes = []string{"All"}

// The system attributes decode reads: the attempt, the publish time and,
// on FIFO queues only (a standard queue has none), the message group.
var (
	standardSystemAttributes = []types.MessageSystemAttributeName{
		types.MessageSystemAttributeNameApproximateReceiveCount,
		types.MessageSystemAttributeNameSentTimestamp,
	}
	fifoSystemAttributes = append(standardSystemAttributes[:len(standardSystemAttributes):len(standardSystemAttributes)],
		types.MessageSystemAttributeNameMessageGroupId)
)

func systemAttributes(fifo bool) []types.MessageSystemAttributeName {
	if fifo {
		return fifoSystemAttributes
	}
	return standardSystemAttributes
}

// deliver takes charge of one received message: on a FIFO queue it waits
// behind an earlier message of its Key still being handled; otherwise it
// goes to the dispatcher at once.
func (s *subscription) deliver(ctx context.Context, sm *types.Message, visibleAt time.Time, rb *recvBatch) {
	h := &held{sm: *sm, visibleAt: visibleAt, batch: rb}
	m := &h.m
	h.msg = m
	m.Topic, m.Group = s.q.topic, s.group
	if err := decode(sm, m); err != nil {
		s.b.log.Warn("sqs: message has malformed mq attributes; delivering what could be decoded", "queue", s.q.name, "sqs_message_id", aws.ToString(sm.MessageId), "error", err)
	}
	driver.SetNative(m, *sm)
	if s.q.fifo {
		h.lane = m.Key
	}
	s.mu.Lock()
	s.held[m] = h
	if h.lane != "" {
		if q, busy := s.lanes[h.lane]; busy {
			s.lanes[h.lane] = append(q, h)
			s.mu.Unlock()
			return
		}
		s.lanes[h.lane] = nil
	}
	s.mu.Unlock()
	s.submit(ctx, h)
}

// submit hands h to the dispatcher; if that fails (the subscription is
// stopping) it makes the message visible again.
func (s *subscription) submit(ctx context.Context, h *held) {
	del := &h.del
	if del.Msg != nil {
		// An in-place retry: the dispatcher may not be done with the
		// first submission yet.
		del = &driver.Delivery{}
	}
	del.Msg = h.msg
	del.Settle = func(_ context.Context, err error) (time.Duration, bool) {
		s.settle(h, err)
		return 0, false
	}
	if err := s.d.Submit(ctx, del); err != nil {
		s.release(h, 0)
		s.done(h)
	}
}

// settle records a handler's outcome with SQS.
//
// A failed FIFO message with a Key is retried in place: it stays held
// (its visibility extended) and goes back to the dispatcher after its
// delay, while the later messages of its Key wait behind it (SQS itself
// holds back the rest of its message group while it is in flight). Making
// it visible again instead would force the later messages received with
// it back to the queue too, counting receives against messages whose
// handler never ran.
func (s *subscription) settle(h *held, err error) {
	switch {
	case err == nil:
		s.ack(h)
		s.next(h)
		return
	case errors.Is(err, driver.ErrNotHandled):
		s.release(h, 0)
	case mq.IsPermanent(err):
		if s.reject(h, err) {
			s.next(h)
			return
		}
	case h.lane != "":
		s.retryLater(h, s.cfg.RedeliveryDelay(h.msg.Attempt, err))
		return
	default:
		s.release(h, s.cfg.RedeliveryDelay(h.msg.Attempt, err))
	}
	s.done(h)
}

// retryLater submits h again after delay, with Attempt increased. If the
// subscription stops first, stopRetries releases it.
func (s *subscription) retryLater(h *held, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h.retryAt = time.Now().Add(delay)
	if s.stopping {
		return // left held: stopRetries or releaseAll releases it
	}
	s.retries.Add(1)
	h.retry = time.AfterFunc(delay, func() {
		defer s.retries.Done()
		h.msg.Attempt++
		s.submit(context.Background(), h)
	})
}

// stopRetries cancels pending in-place retries, making those messages
// visible again when their delay ends, and waits for retries that already
// started to reach the dispatcher. Later messages of their Keys stay held
// until releaseAll; SQS keeps them behind the failed one.
func (s *subscription) stopRetries() {
	s.mu.Lock()
	s.stopping = true
	var stopped []*held
	for _, h := range s.held {
		if h.retry != nil && h.retry.Stop() {
			s.retries.Done()
			stopped = append(stopped, h)
		}
	}
	s.mu.Unlock()
	for _, h := range stopped {
		s.release(h, time.Until(h.retryAt))
	}
	s.retries.Wait()
}

// done returns h's credit (h is settled) and calls next.
func (s *subscription) done(h *held) {
	s.credits.give(1)
	s.next(h)
}

// next submits, on a FIFO queue, the next message waiting behind h in its
// Key's lane, unless the subscription is stopping.
func (s *subscription) next(h *held) {
	if h.lane == "" {
		return
	}
	s.mu.Lock()
	var next *held
	if q := s.lanes[h.lane]; len(q) > 0 && !s.stopping {
		next = q[0]
		s.lanes[h.lane] = q[1:]
	} else if len(q) == 0 {
		delete(s.lanes, h.lane)
	}
	s.mu.Unlock()
	if next != nil {
		s.submit(context.Background(), next)
	}
}

// release makes h's message visible again after delay (rounded up to a
// whole second, at most 12 hours) and forgets it.
func (s *subscription) release(h *held, delay time.Duration) {
	if !s.forget(h) {
		return
	}
	s.unbatch(h)
	secs := int32(min(max(delay+time.Second-1, 0)/time.Second, maxVisibility/time.Second))
	ctx, cancel := context.WithTimeout(s.b.base, callTimeout)
	defer cancel()
	s.hbMu.RLock()
	defer s.hbMu.RUnlock()
	_, err := s.b.client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(s.q.url),
		ReceiptHandle:     h.sm.ReceiptHandle,
		VisibilityTimeout: secs,
	})
	if err != nil {
		s.b.log.Warn("sqs: could not make a message visible again; SQS redelivers it when its visibility timeout ends",
			"queue", s.q.name, "id", h.msg.ID, "error", wrapErr(ctx, "ChangeMessageVisibility", err))
	}
}

// forget removes h from the held set, reporting whether it was there.
func (s *subscription) forget(h *held) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.held[h.msg]
	delete(s.held, h.msg)
	if ok && h.batch.done != nil && h.batch.left.Add(-1) == 0 {
		close(h.batch.done)
	}
	return ok
}

// releaseAll makes every message still held visible again: those whose
// delete failed, and on FIFO queues those waiting behind a failed message
// of their Key, and that message after its delay.
func (s *subscription) releaseAll() {
	s.mu.Lock()
	hs := make([]*held, 0, len(s.held))
	for _, h := range s.held {
		hs = append(hs, h)
	}
	s.mu.Unlock()
	for _, h := range hs {
		s.release(h, time.Until(h.retryAt)) // a failed FIFO message keeps its delay
	}
}

// reject handles a mq.Permanent failure: the message goes to the queue's
// dead-letter queue if it has one, else it is logged and deleted. It
// reports whether it queued the message's delete; if not, the message
// was released to be redelivered.
func (s *subscription) reject(h *held, cause error) bool {
	log := s.b.log.With("queue", s.q.name, "id", h.msg.ID, "attempt", h.msg.Attempt, "error", cause)
	if s.dlq == "" {
		log.Error("sqs: handler returned a permanent error and the queue has no dead-letter queue; deleting the message")
		s.ack(h)
		return true
	}
	ctx, cancel := context.WithTimeout(s.b.base, callTimeout)
	defer cancel()
	in := &sqs.SendMessageInput{
		QueueUrl:          aws.String(s.dlq),
		MessageBody:       h.sm.Body,
		MessageAttributes: h.sm.MessageAttributes,
	}
	if isFIFOURL(s.dlq) {
		group := h.sm.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
		if group == "" {
			group = aws.ToString(h.sm.MessageId)
		}
		in.MessageGroupId = aws.String(group)
		in.MessageDeduplicationId = h.sm.MessageId
	}
	if _, err := s.b.client.SendMessage(ctx, in); err != nil {
		log.Error("sqs: handler returned a permanent error, but moving the message to the dead-letter queue failed; it will be redelivered",
			"dead_letter_queue", s.dlq, "send_error", wrapErr(ctx, "SendMessage", err))
		s.release(h, s.cfg.RedeliveryDelay(h.msg.Attempt, cause))
		return false
	}
	log.Error("sqs: handler returned a permanent error; moved the message to the dead-letter queue", "dead_letter_queue", s.dlq)
	s.ack(h)
	return true
}

func isFIFOURL(u string) bool {
	return len(u) > len(fifoSuffix) && u[len(u)-len(fifoSuffix):] == fifoSuffix
}

// ack queues h's delete. The message stays held (its visibility
// extended) until the delete is done, but its credit comes back at once,
// so receivers go on fetching, unless delLimit acknowledged messages
// already wait for their delete: then the credit comes back with the
// delete, which bounds what a slow or failing DeleteMessageBatch lets
// pile up.
//
// The delete waits for the rest of h's receive batch to be acknowledged
// or released, so that the batch takes one DeleteMessageBatch, as in a
// plain receive-handle-delete loop: each call costs about as much client
// CPU as the messages it carries. The wait is bounded by deleteWait and
// ends when the subscription stops.
func (s *subscription) ack(h *held) {
	s.delMu.Lock()
	s.delHeld++
	h.owes = s.delHeld > s.delLimit
	h.acked = true
	owes := h.owes
	b := h.batch
	b.open--
	switch {
	case s.delDirect:
		s.queueDeletes(h)
	default:
		b.acked = append(b.acked, h)
		if b.open == 0 {
			s.flushBatch(b)
		} else if b.wait == nil {
			s.delWaiting[b] = struct{}{}
			b.wait = time.AfterFunc(deleteWait, func() {
				s.delMu.Lock()
				defer s.delMu.Unlock()
				s.flushBatch(b)
			})
		}
	}
	s.delMu.Unlock()
	if !owes {
		s.credits.give(1)
	}
}

// unbatch records that h, released rather than acknowledged, no longer
// holds back the deletes of its receive batch.
func (s *subscription) unbatch(h *held) {
	s.delMu.Lock()
	defer s.delMu.Unlock()
	if h.acked {
		return
	}
	b := h.batch
	b.open--
	if b.open == 0 {
		s.flushBatch(b)
	}
}

// flushBatch queues the deletes of b's acknowledged messages waiting for
// the rest of b. s.delMu must be held.
func (s *subscription) flushBatch(b *recvBatch) {
	if b.wait != nil {
		b.wait.Stop() // if it fired already, its flushBatch finds b empty or flushes later acks early
		b.wait = nil
	}
	delete(s.delWaiting, b)
	if len(b.acked) == 0 {
		return
	}
	s.queueDeletes(b.acked...)
	clear(b.acked)
	b.acked = b.acked[:0]
}

// flushBatches queues every waiting delete, and from now on acknowledged
// messages do not wait for their receive batch. Subscribe calls it once
// no more handler runs.
func (s *subscription) flushBatches() {
	s.delMu.Lock()
	defer s.delMu.Unlock()
	s.delDirect = true
	for b := range s.delWaiting {
		s.flushBatch(b)
	}
}

// queueDeletes adds hs to the pending deletes, starting a delete loop if
// needLoop says so. s.delMu must be held.
func (s *subscription) queueDeletes(hs ...*held) {
	s.delPending = append(s.delPending, hs...)
	if s.delActive < max(2, s.receivers) && needLoop(len(s.delPending), s.delActive, s.delBusy) {
		s.delActive++
		s.delWG.Add(1)
		go s.deleteLoop()
	}
}

// deleteWait bounds how long an acknowledged message's delete waits for
// the rest of its receive batch. It is well under a third of
// claimTimeout, so the wait costs no visibility extension, and it only
// delays deletes (the messages stay held meanwhile), never a handler, a
// receive or Close.
const deleteWait = 100 * time.Millisecond

// deleteLoop deletes pending acknowledged messages in batches of up to
// ten until none is pending, returning the credits still owed.
func (s *subscription) deleteLoop() {
	defer s.delWG.Done()
	batch := make([]*held, 0, maxBatch)
	for {
		s.delMu.Lock()
		n := min(len(s.delPending), maxBatch)
		if n == 0 {
			s.delActive--
			s.delPending = nil
			s.delMu.Unlock()
			return
		}
		batch = append(batch[:0], s.delPending[:n]...)
		clear(s.delPending[:n])
		s.delPending = s.delPending[n:]
		s.delBusy++
		s.delMu.Unlock()
		s.deleteBatch(batch)
		owed := 0
		s.delMu.Lock()
		s.delBusy--
		s.delHeld -= len(batch)
		for _, h := range batch {
			if h.owes {
				owed++
			}
		}
		s.delMu.Unlock()
		s.credits.give(owed)
	}
}

// deleteBatch deletes batch, retrying transient failures while the
// visibility heartbeat keeps the messages hidden, up to about one
// visibility timeout.
func (s *subscription) deleteBatch(batch []*held) {
	b := s.b
	backoff := mq.ExponentialBackoff(100*time.Millisecond, 5*time.Second)
	deadline := time.Now().Add(b.opts.VisibilityTimeout)
	entries := make([]types.DeleteMessageBatchRequestEntry, 0, len(batch))
	for attempt := 1; len(batch) > 0; attempt++ {
		entries = entries[:0]
		for i, h := range batch {
			entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: batchID(i), ReceiptHandle: h.sm.ReceiptHandle})
		}
		ctx, cancel := context.WithTimeout(b.base, callTimeout)
		out, err := b.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(s.q.url), Entries: entries})
		cancel()
		var retry []*held
		if err != nil {
			err = wrapErr(ctx, "DeleteMessageBatch on "+s.q.name, err)
			if !mq.IsRetryable(err) || time.Now().After(deadline) || b.base.Err() != nil {
				b.log.Warn("sqs: could not delete handled messages; SQS will redeliver them", "queue", s.q.name, "count", len(batch), "error", err)
				for _, h := range batch {
					s.forget(h)
				}
				return
			}
			retry = batch
		} else {
			for _, ok := range out.Successful {
				if i := atoiID(ok.Id); i >= 0 && i < len(batch) {
					s.forget(batch[i])
				}
			}
			for _, f := range out.Failed {
				i := atoiID(f.Id)
				if i < 0 || i >= len(batch) {
					continue
				}
				if f.SenderFault || time.Now().After(deadline) {
					// Typically an expired receipt handle: the message's
					// visibility ran out and SQS may deliver it again.
					b.log.Warn("sqs: could not delete a handled message; SQS may redeliver it", "queue", s.q.name, "id", batch[i].msg.ID,
						"code", aws.ToString(f.Code), "message", aws.ToString(f.Message))
					s.forget(batch[i])
					continue
				}
				retry = append(retry, batch[i])
			}
		}
		batch = retry
		if len(batch) > 0 {
			t := time.NewTimer(backoff(attempt))
			select {
			case <-t.C:
			case <-b.base.Done():
				t.Stop()
			}
		}
	}
}

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
		ctx, cancel := context.WithTimeout(b.base, callTimeout)
		_, err := b.client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(s.q.url), Entries: entries})
		cancel()
		if err != nil {
			b.log.Warn("sqs: could not extend the visibility of held messages; they may be redelivered while their handlers run",
				"queue", s.q.name, "count", n, "error", wrapErr(ctx, "ChangeMessageVisibilityBatch", err))
		}
		hs = hs[n:]
	}
}

// credits bounds the messages a subscription holds and has not settled:
// a receiver asks for as many messages as it has credits, and a message's
// credit comes back when it is settled (for an acknowledged message, see
// ack).
type credits struct {
	total  int
	mu     sync.Mutex
	free   int
	signal chan struct{} // a credit came back
}

func newCredits(total int) *credits {
	return &credits{total: total, free: total, signal: make(chan struct{}, 1)}
}

// take waits until a full batch of credits is free (every subscription
// has at least that many: Concurrency plus ten per receiver), takes them,
// and returns how many. Waiting for a full batch rather than taking what
// is free makes fewer, fuller ReceiveMessage calls: messages still held
// free their credits soon. It returns false if ctx ends first.
func (c *credits) take(ctx context.Context) (int, bool) {
	for {
		c.mu.Lock()
		if c.free >= maxBatch {
			c.free -= maxBatch
			more := c.free >= maxBatch
			c.mu.Unlock()
			if more {
				c.wake() // another receiver may take the next batch
			}
			return maxBatch, true
		}
		c.mu.Unlock()
		select {
		case <-c.signal:
		case <-ctx.Done():
			return 0, false
		}
	}
}

// give returns n credits, waking a receiver if a full batch is free:
// take waits for no less, and waking it for every credit given back
// cost a goroutine switch per message.
func (c *credits) give(n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.free += n
	full := c.free >= maxBatch
	c.mu.Unlock()
	if full {
		c.wake()
	}
}

func (c *credits) wake() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// sleep waits for d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// batchIDs are the Ids of batch entries, by index. Requests share them
// (the SDK only reads them), so that an entry costs no allocation for its
// Id.
var batchIDs = [maxBatch]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// batchID returns the Id of a batch's entry i (i < maxBatch).
func batchID(i int) *string { return &batchIDs[i] }

func atoiID(id *string) int {
	v := aws.ToString(id)
	if len(v) != 1 || v[0] < '0' || v[0] > '9' {
		return -1
	}
	return int(v[0] - '0')
}
