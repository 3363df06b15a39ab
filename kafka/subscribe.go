package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/describegroups"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

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
// committed every Options.CommitInterval up to the first message not yet
// acknowledged, when a partition is revoked, and when Subscribe returns.
//
// A topic that does not exist is created unless provisioning is off; a
// group that has no committed offsets starts at the position given by
// mq.StartAt (default: Options.StartAt, the URL's start_at parameter).
//
// A nil handler, bad options or no group is an error wrapping
// mq.ErrInvalidOption, and a topic outside Kafka's naming rules one
// wrapping mq.ErrInvalidTopic. After Close, Subscribe returns
// mq.ErrClosed.
func (b *Broker) Subscribe(ctx context.Context, topic string, h mq.Handler, opts ...mq.SubscribeOption) error {
	cfg, exit, err := driver.StartSubscribe(&b.life, topic, h, b.cfg.Group, b.cfg.StartAt, opts)
	if err != nil {
		if errors.Is(err, mq.ErrClosed) {
			return fmt.Errorf("kafka: subscribe: %w", err)
		}
		return fmt.Errorf("kafka: %w", err)
	}
	defer exit()
	if err := validateTopic(topic); err != nil {
		return err
	}
	if err := cfg.RequireGroup(); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
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
	caller  context.Context // Subscribe's ctx, for stopBound

}

// run joins the group and runs generations until ctx ends, the broker
// closes or joining fails for good, then drains and leaves.
func (s *subscription) run(ctx context.Context) error {
	fetch, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	s.fetch = fetch
	s.caller = ctx
	go func() {
		select {
		case <-s.b.life.Closing():
			stopFetch()
		case <-fetch.Done():
		}
	}()

	s.disp = driver.NewDispatcher(ctx, s.h, driver.DispatcherConfig{
		Concurrency: s.cfg.Concurrency,
		MaxPending:  max(4*s.cfg.Concurrency, 256),
		Logger:      s.b.log,
	})
	m := newMember(s)
	defer m.close()

	// The group loop runs beside this goroutine, so that once fetching
	// stops the dispatcher drains (bounded by Close's ctx) while the
	// generation ends and commits.
	loopDone := make(chan error, 1)
	go func() { loopDone <- s.loop(m) }()
	var runErr error
	select {
	case runErr = <-loopDone:
		loopDone <- runErr
	case <-fetch.Done():
	}

	// Stop: fetching has stopped (or is stopping); let running handlers
	// finish and release the rest, while the generation ends and commits
	// what was handled; then leave the group.
	stopCtx := ctx
	if ctx.Err() == nil && s.b.life.Err() != nil {
		stopCtx = s.b.life.DrainContext() // ends when Close's ctx does
	}
	stopFetch()
	shutdownErr := s.disp.Shutdown(stopCtx)
	waitCtx, cancelWait := s.stopBound(s.b.cfg.RebalanceTimeout)
	select {
	case <-loopDone:
		leaveCtx, cancel := s.stopBound(leaveTimeout)
		m.leave(leaveCtx)
		cancel()
	case <-waitCtx.Done():
		// Close's ctx ended while the last commit waits on the network:
		// return without leaving; the coordinator drops the member after
		// the session timeout.
	}
	cancelWait()

	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case runErr != nil:
		return runErr
	case shutdownErr != nil && s.b.life.Err() == nil:
		return shutdownErr
	}
	return fmt.Errorf("kafka: subscribe: %w", mq.ErrClosed)
}

// stopBound returns a context for what a stopping subscription still
// sends (the last commits, the group leave): it ends after d, or half of
// driver.CloseGrace after Close's ctx or Subscribe's ctx ends, so that
// Close returns within its ctx plus driver.CloseGrace, and a canceled
// Subscribe within driver.CloseGrace, even when the network stalls.
func (s *subscription) stopBound(d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	later := func() { time.AfterFunc(driver.CloseGrace/2, cancel) }
	stopClose := context.AfterFunc(s.b.life.DrainContext(), later)
	stopCaller := func() bool { return false }
	if s.caller != nil {
		stopCaller = context.AfterFunc(s.caller, later)
	}
	return ctx, func() {
		stopClose()
		stopCaller()
		cancel()
	}
}

// loop joins the group and runs one generation after another until
// fetching stops (it returns nil) or joining fails for good.
func (s *subscription) loop(m *member) error {
	for {
		g, err := m.join(s.fetch)
		if err != nil {
			if s.fetch.Err() != nil {
				return nil
			}
			return err
		}
		s.runGeneration(m, g)
		if s.fetch.Err() != nil {
			return nil
		}
	}
}

// runGeneration consumes the partitions of generation mg until the member
// must rejoin or fetching stops, and returns once the generation has
// drained and committed and its heartbeats have stopped.
func (s *subscription) runGeneration(m *member, mg *memberGen) {
	if len(mg.partitions) == 0 {
		s.logIdle(m, mg)
	} else {
		s.log.Debug("kafka: joined consumer group generation", "generation", mg.id, "member", mg.memberID, "partitions", mg.partitions)
	}
	genCtx, endGen := context.WithCancel(s.fetch)
	defer endGen()
	done := make(chan struct{})
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		m.heartbeat(done, mg, endGen)
	}()
	// The member holds its assignment for the generation's lifetime; a
	// health probe sees it through mq.WatchState.
	s.cfg.SetAssigned(len(mg.partitions))
	s.cfg.SetConnected(true)
	g := &generation{s: s, id: mg.id, memberID: mg.memberID, assigned: mg.partitions}
	g.run(genCtx)
	close(done)
	<-hbDone
	s.cfg.SetConnected(false)
	s.cfg.SetAssigned(0)
}

// logIdle says, at info level, that this member got no partition, with
// the counts that explain why (more members than partitions, say).
func (s *subscription) logIdle(m *member, mg *memberGen) {
	ctx, cancel := context.WithTimeout(s.fetch, 5*time.Second)
	defer cancel()
	attrs := []any{"generation", mg.id, "member", mg.memberID}
	if n := m.partitionCounts(ctx, []string{s.topic})[s.topic]; n > 0 {
		attrs = append(attrs, "partitions", n)
	}
	// kafka.Client's DescribeGroups fails on members whose metadata is
	// not kafka-go's own encoding; count them at the protocol level.
	r, err := m.tr.RoundTrip(ctx, kafka.TCP(s.b.cfg.Brokers...), &describegroups.Request{Groups: []string{s.groupID}})
	if res, ok := r.(*describegroups.Response); err == nil && ok && len(res.Groups) == 1 && res.Groups[0].ErrorCode == 0 {
		attrs = append(attrs, "members", len(res.Groups[0].Members))
	}
	s.log.Info("kafka: this member was assigned no partition of the topic; it waits for a rebalance", attrs...)
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
