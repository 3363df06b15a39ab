package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

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
	if cfg.Group == "" {
		return fmt.Errorf("kafka: %w: Subscribe needs a group: pass mq.Group(name) or set ?group= in the URL", mq.ErrInvalidOption)
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
		case <-s.b.life.Closing():
			stopFetch()
		case <-fetch.Done():
		}
	}()

	s.disp = driver.NewDispatcher(ctx, s.handle, driver.DispatcherConfig{
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
	if ctx.Err() == nil && s.b.life.Err() != nil {
		stopCtx = s.b.life.DrainContext() // ends when Close's ctx does
	}
	stopFetch()
	shutdownErr := s.disp.Shutdown(stopCtx)
	s.leave(cg)

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
