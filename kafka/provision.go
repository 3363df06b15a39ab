package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Provision creates topic (with Options.Partitions and ReplicationFactor)
// if it does not exist, and each group that has no committed offsets for
// it: the group's offsets are set to the current end of every partition,
// so the group receives every message published after Provision returns,
// even before any of its subscribers runs. Existing topics and groups are
// left as they are. Provision creates topics even when provisioning is off
// (Options.NoProvision), since the caller asked for it explicitly.
func (b *Broker) Provision(ctx context.Context, topic string, groups ...string) error {
	if err := validateTopic(topic); err != nil {
		return err
	}
	for _, g := range groups {
		if err := driver.ValidateName("group", g); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
	}
	if err := b.life.Err(); err != nil {
		return fmt.Errorf("kafka: provision: %w", err)
	}
	if err := b.ensureTopic(ctx, topic, true); err != nil {
		return err
	}
	for _, g := range groups {
		if err := b.provisionGroup(ctx, topic, b.groupID(g, topic)); err != nil {
			return err
		}
	}
	return nil
}

// ensureTopic makes sure topic exists, creating it if create is true (or
// provisioning is on), and that the shared transport's metadata knows it.
func (b *Broker) ensureTopic(ctx context.Context, topic string, create bool) error {
	if _, ok := b.topics.Load(topic); ok {
		return nil
	}
	exists, err := b.topicExists(ctx, topic)
	if err != nil {
		return err
	}
	created := false
	if !exists {
		if b.cfg.NoProvision && !create {
			return fmt.Errorf("kafka: %w: topic %q does not exist, and provisioning is off (provision=false); create it or call mq.Provision", mq.ErrNotFound, topic)
		}
		res, err := b.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic:             topic,
			NumPartitions:     b.cfg.Partitions,
			ReplicationFactor: b.cfg.ReplicationFactor,
		}}})
		if err != nil {
			return wrapErr(ctx, fmt.Sprintf("create topic %q", topic), err)
		}
		if err := res.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return wrapErr(ctx, fmt.Sprintf("create topic %q", topic), err)
		}
		created = true
	}
	if err := b.awaitTopic(ctx, topic, created); err != nil {
		return err
	}
	b.topics.Store(topic, struct{}{})
	return nil
}

// awaitTopic returns nil once the transport's metadata knows topic, which
// exists, and, if it was just created, every partition has a leader. On a
// cluster the brokers learn of a topic the controller has just created one
// by one, and until the one that answers knows it, it reports the topic
// unknown (mq.ErrNotFound): that is retried for about 10s.
func (b *Broker) awaitTopic(ctx context.Context, topic string, created bool) error {
	delay := 25 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := b.awaitTopicOnce(ctx, topic, created)
		if err == nil || attempt == 50 || ctx.Err() != nil || !errors.Is(err, mq.ErrNotFound) && !mq.IsRetryable(err) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		delay = min(2*delay, 250*time.Millisecond)
	}
}

func (b *Broker) awaitTopicOnce(ctx context.Context, topic string, created bool) error {
	// The transport answers metadata requests from a cache refreshed every
	// few seconds; a request allowing auto-creation of a topic missing from
	// the cache makes it refresh and wait until the topic appears. The
	// topic exists by now, so nothing is created.
	if _, err := b.transport.RoundTrip(ctx, b.client.Addr, &metadataAPI.Request{
		TopicNames:             []string{topic},
		AllowAutoTopicCreation: true,
	}); err != nil {
		return wrapErr(ctx, fmt.Sprintf("metadata of topic %q", topic), err)
	}
	if created {
		// Wait until every partition has a leader, so that the first
		// publishes and fetches do not fail on the election.
		parts, err := b.partitionsOf(ctx, topic)
		if err != nil {
			return err
		}
		if _, err := b.listOffsets(ctx, topic, parts, mq.Latest); err != nil {
			return err
		}
	}
	return nil
}

// topicExists asks a broker directly (bypassing the transport's metadata
// cache, and without auto-creating anything) whether topic exists.
func (b *Broker) topicExists(ctx context.Context, topic string) (bool, error) {
	var lastErr error
	for _, addr := range b.cfg.Brokers {
		conn, err := b.dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			lastErr = err
			continue
		}
		b.boundConn(ctx, conn)
		stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
		// With no topic names, ReadPartitions lists every topic and never
		// triggers auto-creation.
		parts, err := conn.ReadPartitions()
		stop()
		_ = conn.Close()
		if err != nil {
			lastErr = err
			continue
		}
		return slices.ContainsFunc(parts, func(p kafka.Partition) bool { return p.Topic == topic }), nil
	}
	return false, wrapErr(ctx, fmt.Sprintf("look up topic %q", topic), lastErr)
}

// partitionsOf returns the partition IDs of topic from the transport's
// metadata (fresh for topics passed through ensureTopic).
func (b *Broker) partitionsOf(ctx context.Context, topic string) ([]int, error) {
	md, err := b.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, wrapErr(ctx, fmt.Sprintf("metadata of topic %q", topic), err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, wrapErr(ctx, fmt.Sprintf("metadata of topic %q", topic), t.Error)
		}
		ids := make([]int, len(t.Partitions))
		for i, p := range t.Partitions {
			ids[i] = p.ID
		}
		slices.Sort(ids)
		return ids, nil
	}
	return nil, fmt.Errorf("kafka: %w: topic %q", mq.ErrNotFound, topic)
}

// listOffsets returns the first (earliest) or end (latest) offset of each
// partition, retrying while partition leaders are being elected (as just
// after the topic was created or the broker restarted).
func (b *Broker) listOffsets(ctx context.Context, topic string, partitions []int, at mq.StartPosition) (map[int]int64, error) {
	var out map[int]int64
	err := retryTransient(ctx, func() error {
		var err error
		out, err = b.listOffsetsOnce(ctx, topic, partitions, at)
		return err
	})
	return out, err
}

// retryTransient calls f until it succeeds, fails with an error that is not
// retryable, ctx ends, or 20 attempts (about 8s of backoff) are spent.
func retryTransient(ctx context.Context, f func() error) error {
	var err error
	delay := 25 * time.Millisecond
	for range 20 {
		if err = f(); err == nil || !mq.IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
	return err
}

func (b *Broker) listOffsetsOnce(ctx context.Context, topic string, partitions []int, at mq.StartPosition) (map[int]int64, error) {
	reqs := make([]kafka.OffsetRequest, len(partitions))
	for i, p := range partitions {
		if at == mq.Earliest {
			reqs[i] = kafka.FirstOffsetOf(p)
		} else {
			reqs[i] = kafka.LastOffsetOf(p)
		}
	}
	res, err := b.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics:         map[string][]kafka.OffsetRequest{topic: reqs},
		IsolationLevel: kafka.ReadCommitted,
	})
	if err != nil {
		return nil, wrapErr(ctx, fmt.Sprintf("list offsets of topic %q", topic), err)
	}
	out := make(map[int]int64, len(partitions))
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, wrapErr(ctx, fmt.Sprintf("list offsets of topic %q partition %d", topic, po.Partition), po.Error)
		}
		if at == mq.Earliest {
			out[po.Partition] = po.FirstOffset
		} else {
			out[po.Partition] = po.LastOffset
		}
	}
	for _, p := range partitions {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("kafka: list offsets of topic %q: no answer for partition %d", topic, p)
		}
	}
	return out, nil
}

// provisionGroup commits the end offsets of topic's partitions for group
// where it has none, creating the group if needed. It retries while the
// group's coordinator moves or loads (up to 10 times, bounded by ctx).
func (b *Broker) provisionGroup(ctx context.Context, topic, group string) error {
	var err error
	for attempt := range 10 {
		if err = b.provisionGroupOnce(ctx, topic, group); err == nil || !coordinatorBusy(err) {
			return err
		}
		t := time.NewTimer(time.Duration(attempt+1) * 100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("kafka: create group %q: %w (%v)", group, ctx.Err(), err)
		}
	}
	return err
}

// coordinatorBusy reports the errors that mean "ask the coordinator again
// shortly".
func coordinatorBusy(err error) bool {
	return errors.Is(err, kafka.NotCoordinatorForGroup) || errors.Is(err, kafka.GroupCoordinatorNotAvailable) ||
		errors.Is(err, kafka.GroupLoadInProgress)
}

// coordinator returns the address of group's coordinator.
func (b *Broker) coordinator(ctx context.Context, group string) (net.Addr, error) {
	res, err := b.client.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: group, KeyType: kafka.CoordinatorKeyTypeConsumer})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		return nil, wrapErr(ctx, fmt.Sprintf("find the coordinator of group %q", group), err)
	}
	return kafka.TCP(net.JoinHostPort(res.Coordinator.Host, strconv.Itoa(res.Coordinator.Port))), nil
}

func (b *Broker) provisionGroupOnce(ctx context.Context, topic, group string) error {
	parts, err := b.partitionsOf(ctx, topic)
	if err != nil {
		return err
	}
	coord, err := b.coordinator(ctx, group)
	if err != nil {
		return err
	}
	fetched, err := b.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		Addr:    coord,
		GroupID: group,
		Topics:  map[string][]int{topic: parts},
	})
	if err != nil {
		return wrapErr(ctx, fmt.Sprintf("fetch offsets of group %q", group), err)
	}
	if fetched.Error != nil {
		return wrapErr(ctx, fmt.Sprintf("fetch offsets of group %q", group), fetched.Error)
	}
	var missing []int
	have := map[int]bool{}
	for _, p := range fetched.Topics[topic] {
		if p.Error == nil && p.CommittedOffset >= 0 {
			have[p.Partition] = true
		}
	}
	for _, p := range parts {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	ends, err := b.listOffsets(ctx, topic, missing, mq.Latest)
	if err != nil {
		return err
	}
	commits := make([]kafka.OffsetCommit, 0, len(missing))
	for _, p := range missing {
		commits = append(commits, kafka.OffsetCommit{Partition: p, Offset: ends[p]})
	}
	// Generation -1 with no member commits for a group without active
	// members, creating it if needed. A group with active members rejects
	// it; its members then set their own start offsets.
	res, err := b.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		Addr:         coord,
		GroupID:      group,
		GenerationID: -1,
		Topics:       map[string][]kafka.OffsetCommit{topic: commits},
	})
	if err != nil {
		return wrapErr(ctx, fmt.Sprintf("create group %q", group), err)
	}
	for _, p := range res.Topics[topic] {
		switch {
		case p.Error == nil:
		case errors.Is(p.Error, kafka.IllegalGeneration), errors.Is(p.Error, kafka.UnknownMemberId),
			errors.Is(p.Error, kafka.RebalanceInProgress):
			// The group has active members: it exists already.
		default:
			return wrapErr(ctx, fmt.Sprintf("create group %q", group), p.Error)
		}
	}
	return nil
}
