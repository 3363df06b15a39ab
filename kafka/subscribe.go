package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// errRevoked is the handler result of a delivery whose partition was
// revoked before its handler could run: it is left for the partition's
// new owner.
var errRevoked = errors.New("kafka: partition revoked")

// Subscribe joins the consumer group (mq.Group, else the URL's group) on
// topic and hands the group's messages from the partitions assigned to
// this member to h, up to mq.Concurrency handlers at once across
// partitions. It blocks until ctx ends (returning ctx.Err()), Close is
// called (returning mq.ErrClosed), or the group cannot be joined for a
// reason retrying cannot fix.
//
// Messages with the same Key are handled one at a time in offset order;
// messages without a Key are handled in any order. A failed message is
// retried in this process after the subscription's Backoff, holding back
// later messages of its key and its partition's commit point. Offsets are
// committed every Config.CommitInterval up to the first message not yet
// acknowledged, when a partition is revoked, and when Subscribe returns.
//
// A topic that does not exist is created unless provisioning is off; a
// group that has no committed offsets starts at the position given by
// mq.StartAt (default: the URL's start parameter, else mq.Latest).
func (b *Broker) Subscribe(ctx context.Context, topic string, h mq.Handler, opts ...mq.SubscribeOption) error {
	if h == nil {
		return fmt.Errorf("kafka: %w: Subscribe needs a handler", mq.ErrInvalidOption)
	}
	if err := validateTopic(topic); err != nil {
		return err
	}
	cfg, err := driver.NewSubscribeConfig(b.cfg.Group, b.cfg.StartAt, opts)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	if cfg.Group == "" {
		return fmt.Errorf("kafka: %w: Subscribe needs a group: pass mq.Group(name) or set ?group= in the URL", mq.ErrInvalidOption)
	}
	if !b.enterSubscribe() {
		return fmt.Errorf("kafka: subscribe: %w", mq.ErrClosed)
	}
	defer b.subs.Done()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.ensureTopic(ctx, topic, false); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return err
	}
	s := &subscription{
		b:       b,
		topic:   topic,
		groupID: b.groupID(cfg.Group, topic),
		cfg:     cfg,
		h:       h,
		log:     b.log.With("topic", topic, "group", cfg.Group),
	}
	return s.run(ctx)
}

// subscription is one running Subscribe call.
type subscription struct {
	b       *Broker
	topic   string
	groupID string // the Kafka consumer group ID
	cfg     driver.SubscribeConfig
	h       mq.Handler
	log     *slog.Logger
	disp    *driver.Dispatcher
	fetch   context.Context // canceled when the subscription stops fetching

	member atomic.Pointer[string] // the member ID the coordinator last gave us
}

// joinedFormat is the message kafka-go's ConsumerGroup logs when a
// JoinGroup response assigns it a member ID (args: group, member,
// generation).
const joinedFormat = "joined group %s as member %s in generation %d"

// groupLogger logs kafka-go's consumer group messages at debug level and
// notes the member ID from them. kafka-go does not expose the member ID
// until a generation is complete, and does not leave the group when it is
// closed just after a failed sync; leave uses the ID to do so.
func (s *subscription) groupLogger() kafka.LoggerFunc {
	log := kafkaLogger(s.log, slog.LevelDebug-4, "kafka: group")
	return func(format string, args ...any) {
		if format == joinedFormat && len(args) == 3 {
			if id, ok := args[1].(string); ok {
				s.member.Store(&id)
			}
		}
		log(format, args...)
	}
}

// run joins the group and runs generations until ctx ends, the broker
// closes or joining fails for good, then drains and leaves.
func (s *subscription) run(ctx context.Context) error {
	fetch, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	s.fetch = fetch
	go func() {
		select {
		case <-s.b.closing:
			stopFetch()
		case <-fetch.Done():
		}
	}()

	s.disp = driver.NewDispatcher(ctx, s.h, driver.DispatcherConfig{
		Concurrency: s.cfg.Concurrency,
		MaxPending:  max(4*s.cfg.Concurrency, 256),
		Logger:      s.b.log,
	})
	startOffset := kafka.LastOffset
	if s.cfg.StartAt == mq.Earliest {
		startOffset = kafka.FirstOffset
	}
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                     s.groupID,
		Brokers:                s.b.cfg.Brokers,
		Dialer:                 s.b.dialer,
		Topics:                 []string{s.topic},
		HeartbeatInterval:      s.b.cfg.HeartbeatInterval,
		SessionTimeout:         s.b.cfg.SessionTimeout,
		RebalanceTimeout:       s.b.cfg.RebalanceTimeout,
		JoinGroupBackoff:       250 * time.Millisecond,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		StartOffset:            startOffset,
		Logger:                 s.groupLogger(),
		ErrorLogger:            kafkaLogger(s.log, slog.LevelDebug, "kafka: group"),
	})
	if err != nil {
		_ = s.disp.Shutdown(ctx)
		return fmt.Errorf("kafka: %w: consumer group: %v", mq.ErrInvalidOption, err)
	}

	var runErr error
	var lastWarn time.Time
	for runErr == nil {
		gen, err := cg.Next(fetch)
		if err != nil {
			if fetch.Err() != nil {
				break
			}
			if fatalGroupError(err) {
				runErr = fmt.Errorf("kafka: join group %q: %w", s.cfg.Group, err)
				break
			}
			// kafka-go retries every JoinGroupBackoff; warn at most every
			// 10s so that an outage does not flood the log.
			// A rebalance in progress is routine.
			level := slog.LevelDebug
			if !errors.Is(err, kafka.RebalanceInProgress) && time.Since(lastWarn) >= 10*time.Second {
				level, lastWarn = slog.LevelWarn, time.Now()
			}
			s.log.Log(ctx, level, "kafka: cannot join the consumer group yet; retrying", "error", err)
			continue
		}
		s.startGeneration(gen)
	}

	// Stop: fetching has stopped (or is stopping); let running handlers
	// finish and release the rest, then end the generation, which makes
	// each partition commit what was handled, and leave the group.
	stopCtx := ctx
	if ctx.Err() == nil && s.b.isClosed() {
		stopCtx = s.b.stopCtx
	}
	stopFetch()
	shutdownErr := s.disp.Shutdown(stopCtx)
	s.leave(cg)

	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case runErr != nil:
		return runErr
	case shutdownErr != nil && !s.b.isClosed():
		return shutdownErr
	}
	return fmt.Errorf("kafka: subscribe: %w", mq.ErrClosed)
}

// leaveTimeout bounds how long Subscribe waits to leave its group once
// its handlers are done. Ending the generation (which commits) comes
// first and is itself bounded by commitTimeout; what can take longer is
// kafka-go finishing a join in progress or reaching an unavailable
// coordinator.
const leaveTimeout = 20 * time.Second

// leave closes the consumer group: the current generation ends, its
// partitions commit what was handled, and the member leaves the group. If
// that takes longer than leaveTimeout (the cluster is unavailable), it
// goes on in the background and leave returns.
func (s *subscription) leave(cg *kafka.ConsumerGroup) {
	done := make(chan struct{})
	go func() {
		_ = cg.Close()
		close(done)
	}()
	t := time.NewTimer(leaveTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("kafka: leaving the consumer group takes long (is the cluster unavailable?); it goes on in the background")
		return
	}
	// kafka-go skips LeaveGroup when closed right after a sync failed
	// with RebalanceInProgress; the coordinator would then wait a whole
	// session timeout for this member before the group can rebalance.
	// Leaving again is harmless (the coordinator answers UnknownMemberId).
	if id := s.member.Load(); id != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if coord, err := s.b.coordinator(ctx, s.groupID); err == nil {
			_, _ = s.b.client.LeaveGroup(ctx, &kafka.LeaveGroupRequest{
				Addr:    coord,
				GroupID: s.groupID,
				Members: []kafka.LeaveGroupRequestMember{{ID: *id}},
			})
		}
	}
}

// fatalGroupError reports errors joining a group that retrying will not
// fix.
func fatalGroupError(err error) bool {
	for _, e := range []error{kafka.GroupAuthorizationFailed, kafka.TopicAuthorizationFailed,
		kafka.InvalidGroupId, kafka.InconsistentGroupProtocol, kafka.InvalidSessionTimeout,
		kafka.SASLAuthenticationFailed, kafka.ClusterAuthorizationFailed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// generation is this member's share of one consumer group generation.
type generation struct {
	s     *subscription
	gen   *kafka.Generation
	coord net.Addr // the group coordinator; only the committer uses it
	parts []*partition
	wg    sync.WaitGroup // partition goroutines
}

// partition is one partition assigned in one generation.
type partition struct {
	g     *generation
	id    int
	start int64
	t     *tracker
	begin func() error // the Begin of every delivery of the partition
}

func newPartition(g *generation, id int, start int64, fails map[int64]int) *partition {
	p := &partition{g: g, id: id, start: start, t: newTracker(start, fails)}
	p.begin = p.beginHandler
	return p
}

// startGeneration runs the committer of gen, which resolves start offsets
// and starts one fetcher per assigned partition.
func (s *subscription) startGeneration(gen *kafka.Generation) {
	g := &generation{s: s, gen: gen}
	s.log.Debug("kafka: joined consumer group generation", "generation", gen.ID, "member", gen.MemberID, "assigned", len(gen.Assignments[s.topic]))
	gen.Start(g.run)
}

// run resolves the start offset of partitions the group has no offset for,
// starts the partition fetchers, then commits acknowledged offsets every
// CommitInterval until the generation ends, and once more after every
// fetcher has finished.
func (g *generation) run(genCtx context.Context) {
	s := g.s
	ctx, cancel := context.WithCancel(s.fetch)
	defer cancel()
	defer context.AfterFunc(genCtx, cancel)()

	assigned := g.gen.Assignments[s.topic]
	ids := make([]int, len(assigned))
	var unknown []int
	for i, pa := range assigned {
		ids[i] = pa.ID
		if pa.Offset < 0 {
			unknown = append(unknown, pa.ID)
		}
	}
	fails := g.committedAttempts(ctx, ids)
	var resolved map[int]int64
	if len(unknown) > 0 {
		var err error
		resolved, err = s.b.listOffsets(ctx, s.topic, unknown, s.cfg.StartAt)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("kafka: cannot resolve the start offsets of a new group; the fetchers will resolve them", "error", err)
		}
	}
	for _, pa := range assigned {
		start := pa.Offset
		if o, ok := resolved[pa.ID]; ok {
			start = o
		}
		p := newPartition(g, pa.ID, start, fails[pa.ID])
		if _, ok := resolved[pa.ID]; ok {
			// Commit the resolved start at once, so that the group's
			// position holds even if the partition moves to another
			// member before anything is handled.
			p.t.committed = -1
		}
		g.parts = append(g.parts, p)
	}
	g.commit()
	g.wg.Add(len(g.parts))
	for _, p := range g.parts {
		g.gen.Start(p.run)
	}

	tick := time.NewTicker(s.b.cfg.CommitInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			g.commit()
		case <-genCtx.Done():
			g.wg.Wait()
			g.commit()
			return
		}
	}
}

// committedAttempts reads the failed-attempt counts committed with the
// group's offsets (see tracker). Without them attempts restart at 1.
func (g *generation) committedAttempts(ctx context.Context, ids []int) map[int]map[int64]int {
	s := g.s
	coord, err := g.coordinator(ctx)
	if err != nil {
		return nil
	}
	res, err := s.b.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		Addr:    coord,
		GroupID: s.groupID,
		Topics:  map[string][]int{s.topic: ids},
	})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("kafka: cannot read committed attempt counts; redelivered messages restart at attempt 1", "error", err)
		}
		g.coord = nil
		return nil
	}
	out := map[int]map[int64]int{}
	for _, p := range res.Topics[s.topic] {
		if m := decodeAttempts(p.Metadata); m != nil {
			out[p.Partition] = m
		}
	}
	return out
}

// coordinator returns the group coordinator's address, looking it up once.
func (g *generation) coordinator(ctx context.Context) (net.Addr, error) {
	if g.coord == nil {
		addr, err := g.s.b.coordinator(ctx, g.s.groupID)
		if err != nil {
			return nil, err
		}
		g.coord = addr
	}
	return g.coord, nil
}

// commitTimeout bounds one offset commit, which also runs after the
// subscription's ctx ended.
const commitTimeout = 10 * time.Second

// commit sends the commit point (and attempt counts) of every partition
// whose state changed, as a member of the generation.
func (g *generation) commit() {
	var states map[int]commitState
	for _, p := range g.parts {
		if c, ok := p.t.toCommit(); ok {
			if states == nil {
				states = map[int]commitState{}
			}
			states[p.id] = c
		}
	}
	if states == nil {
		return
	}
	s := g.s
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	commits := make([]kafka.OffsetCommit, 0, len(states))
	for id, c := range states {
		commits = append(commits, kafka.OffsetCommit{Partition: id, Offset: c.offset, Metadata: c.metadata})
	}
	err := g.send(ctx, commits)
	if err != nil {
		s.log.Warn("kafka: offset commit failed; messages handled since the last commit may be redelivered", "generation", g.gen.ID, "error", err)
		return
	}
	for _, p := range g.parts {
		if c, ok := states[p.id]; ok {
			p.t.setCommitted(c)
		}
	}
}

// send commits offsets and reports the first partition error.
func (g *generation) send(ctx context.Context, commits []kafka.OffsetCommit) error {
	s := g.s
	coord, err := g.coordinator(ctx)
	if err != nil {
		return err
	}
	res, err := s.b.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		Addr:         coord,
		GroupID:      s.groupID,
		GenerationID: int(g.gen.ID),
		MemberID:     g.gen.MemberID,
		Topics:       map[string][]kafka.OffsetCommit{s.topic: commits},
	})
	if err == nil {
		for _, p := range res.Topics[s.topic] {
			if p.Error != nil {
				err = p.Error
				break
			}
		}
	}
	if err != nil {
		g.coord = nil // look it up again next time, in case it moved
	}
	return err
}

// run fetches the partition's messages and submits them to the
// dispatcher until the generation ends or the subscription stops; then it
// waits for the generation to end, stops handlers of this partition from
// starting, and waits for running ones so that the final commit includes
// them.
func (p *partition) run(genCtx context.Context) {
	defer p.g.wg.Done()
	s := p.g.s
	ctx, cancel := context.WithCancel(s.fetch)
	defer cancel()
	defer context.AfterFunc(genCtx, cancel)()

	p.fetch(ctx)
	<-genCtx.Done()
	// Leave a quarter of the rebalance timeout to commit and rejoin.
	if !p.t.revoke(s.b.cfg.RebalanceTimeout * 3 / 4) {
		s.log.Warn("kafka: handlers still running after the rebalance timeout; their messages may be handled again by the partition's new owner", "partition", p.id)
	}
}

// fetch reads the partition from its start offset and submits each
// message to the dispatcher.
func (p *partition) fetch(ctx context.Context) {
	s := p.g.s
	b := s.b
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:         b.cfg.Brokers,
		Topic:           s.topic,
		Partition:       p.id,
		Dialer:          b.dialer,
		MinBytes:        1,
		MaxBytes:        max(4<<20, 2*b.maxRecord),
		MaxWait:         500 * time.Millisecond,
		ReadLagInterval: -1,
		ReadBackoffMin:  100 * time.Millisecond,
		ReadBackoffMax:  time.Second,
		IsolationLevel:  kafka.ReadCommitted,
		ErrorLogger:     kafkaLogger(s.log, slog.LevelDebug, "kafka: reader"),
	})
	defer r.Close()
	if err := r.SetOffset(p.start); err != nil {
		s.log.Error("kafka: cannot set the start offset", "partition", p.id, "offset", p.start, "error", err)
		return
	}
	for {
		km, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("kafka: fetch failed; retrying", "partition", p.id, "error", err)
			t := time.NewTimer(time.Second)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		d := p.newDelivery(km)
		if err := s.disp.Submit(ctx, &d.Delivery); err != nil {
			return
		}
	}
}

// delivery is one fetched message on its way through the dispatcher. It
// holds the message handed to the handler, so that both take one
// allocation. Its Begin is its partition's, shared by all its deliveries:
// a per-delivery func value would cost an allocation per message.
type delivery struct {
	driver.Delivery
	msg    mq.Message
	p      *partition
	seq    int64
	offset int64
}

func (p *partition) newDelivery(km kafka.Message) *delivery {
	s := p.g.s
	seq, failed := p.t.add(km.Offset)
	d := &delivery{p: p, seq: seq, offset: km.Offset}
	m := &d.msg
	*m = mq.Message{
		Key:         string(km.Key),
		Body:        km.Value,
		Topic:       s.topic,
		Group:       s.cfg.Group,
		Attempt:     1 + failed,
		PublishTime: km.Time,
	}
	for _, h := range km.Headers {
		if h.Key == headerID {
			m.ID = string(h.Value)
			continue
		}
		if strings.HasPrefix(h.Key, mq.ReservedHeaderPrefix) {
			continue
		}
		if m.Header == nil {
			m.Header = make(map[string]string, len(km.Headers))
		}
		m.Header[h.Key] = string(h.Value)
	}
	if m.Header == nil {
		m.Header = map[string]string{}
	}
	if m.Body == nil {
		m.Body = []byte{}
	}
	driver.SetNative(m, km)

	d.Msg = m
	d.Lane = m.Key
	d.Settle = d.settle
	d.Begin = p.begin
	return d
}

// beginHandler is the Begin of the partition's deliveries: the handler
// runs, and is counted as running, unless the partition was revoked while
// the delivery waited.
func (p *partition) beginHandler() error {
	if !p.t.begin() {
		return errRevoked
	}
	return nil
}

// handlerRan reports whether a delivery settled with err had its handler
// run (and counted by beginHandler). Only the dispatcher's release at
// shutdown (driver.ErrNotHandled) and a refusing Begin (errRevoked)
// settle without a run, and both pass those values as they are; handlers
// cannot return them.
func handlerRan(err error) bool {
	return err != errRevoked && err != driver.ErrNotHandled
}

// settle records a handler's outcome: ack moves the commit point, a
// failure asks the dispatcher to retry in place after the backoff, a
// permanent failure is logged and acknowledged.
func (d *delivery) settle(_ context.Context, err error) (time.Duration, bool) {
	p := d.p
	s := p.g.s
	ran := handlerRan(err)
	switch {
	case err == nil:
		p.t.ackEnd(d.seq, ran)
	case errors.Is(err, errRevoked), errors.Is(err, driver.ErrNotHandled):
		// Not handled here: the group redelivers it from the commit point.
		if ran {
			p.t.end()
		}
	case mq.IsPermanent(err):
		s.log.Error("kafka: handler failed permanently; Kafka has no dead-letter queue, so the message is dropped (use the dead-letter middleware to keep such messages)",
			"partition", p.id, "offset", d.offset, "id", d.Msg.ID, "attempt", d.Msg.Attempt, "error", err)
		p.t.ackEnd(d.seq, ran)
	default:
		p.t.fail(d.offset, d.Msg.Attempt)
		if ran {
			p.t.end() // after fail, so that a final commit carries the count
		}
		if p.t.isRevoked() {
			break // the partition's new owner redelivers it
		}
		return s.cfg.RedeliveryDelay(d.Msg.Attempt, err), true
	}
	return 0, false
}
