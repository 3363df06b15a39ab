package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Backlog returns group's lag on topic, per partition: the end offset
// (the last stable offset, as the driver reads read_committed) minus the
// group's committed offset. Messages is the sum over partitions;
// InFlight is -1, as Kafka does not count deliveries. A partition where
// the group has committed nothing has Committed -1 and Lag 0 (a new group
// starts at the end unless it asks for mq.Earliest). It returns an error
// wrapping mq.ErrNotFound if the topic does not exist or the group has
// committed no offset on it. It changes nothing on the broker, and never
// creates the topic.
func (b *Broker) Backlog(ctx context.Context, topic, group string) (mq.Backlog, error) {
	if err := validateTopic(topic); err != nil {
		return mq.Backlog{}, err
	}
	if err := driver.ValidateName("group", group); err != nil {
		return mq.Backlog{}, fmt.Errorf("kafka: %w", err)
	}
	if err := b.life.Err(); err != nil {
		return mq.Backlog{}, fmt.Errorf("kafka: backlog: %w", err)
	}
	exists, err := b.topicExists(ctx, topic)
	if err != nil {
		return mq.Backlog{}, err
	}
	if !exists {
		return mq.Backlog{}, fmt.Errorf("kafka: %w: topic %q does not exist", mq.ErrNotFound, topic)
	}
	parts, err := b.partitionsOf(ctx, topic)
	if err != nil {
		return mq.Backlog{}, err
	}
	ends, err := b.listOffsets(ctx, topic, parts, mq.Latest)
	if err != nil {
		return mq.Backlog{}, err
	}
	id := b.groupID(group, topic)
	var committed map[int]int64
	err = retryCoordinator(ctx, func() error {
		var err error
		committed, err = b.committed(ctx, topic, id, parts)
		return err
	})
	if err != nil {
		return mq.Backlog{}, err
	}
	if len(committed) == 0 {
		return mq.Backlog{}, fmt.Errorf("kafka: %w: consumer group %q has no committed offset on topic %q", mq.ErrNotFound, id, topic)
	}
	out := mq.Backlog{Topic: topic, Group: group, InFlight: -1, Partitions: make([]mq.PartitionBacklog, len(parts))}
	for i, p := range parts {
		pb := mq.PartitionBacklog{Partition: p, End: ends[p], Committed: -1}
		if c, ok := committed[p]; ok {
			pb.Committed = c
			pb.Lag = max(0, ends[p]-c)
		}
		out.Partitions[i] = pb
		out.Messages += pb.Lag
	}
	return out, nil
}

// committed returns the offsets group (a Kafka group ID) has committed on
// topic's partitions, leaving out those without one.
func (b *Broker) committed(ctx context.Context, topic, group string, parts []int) (map[int]int64, error) {
	coord, err := b.coordinator(ctx, group)
	if err != nil {
		return nil, err
	}
	res, err := b.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{Addr: coord, GroupID: group, Topics: map[string][]int{topic: parts}})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		return nil, wrapErr(ctx, fmt.Sprintf("fetch offsets of group %q", group), err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, wrapErr(ctx, fmt.Sprintf("fetch offsets of group %q partition %d", group, p.Partition), p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out, nil
}

// DeleteGroup deletes the consumer group of group on topic (see
// Options.ExactGroupID for its name) with its committed offsets. It
// returns nil if the group does not exist. Kafka refuses to delete a
// group with active members; DeleteGroup retries for a few seconds, as a
// member that just left may still be listed, then returns that error.
func (b *Broker) DeleteGroup(ctx context.Context, topic, group string) error {
	if err := driver.ValidateName("group", group); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	if err := b.life.Err(); err != nil {
		return fmt.Errorf("kafka: delete group: %w", err)
	}
	id := b.groupID(group, topic)
	return retryCoordinator(ctx, func() error {
		coord, err := b.coordinator(ctx, id)
		if err != nil {
			return err
		}
		res, err := b.client.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{Addr: coord, GroupIDs: []string{id}})
		if err == nil {
			err = res.Errors[id]
		}
		if err == nil || errors.Is(err, kafka.GroupIdNotFound) {
			return nil
		}
		return wrapErr(ctx, fmt.Sprintf("delete group %q", id), err)
	})
}

// retryCoordinator calls f until it succeeds or fails with an error other
// than a busy or moving coordinator or a group that still has members,
// up to 20 times (about 10s), bounded by ctx.
func retryCoordinator(ctx context.Context, f func() error) error {
	var err error
	for attempt := range 20 {
		if err = f(); err == nil || !(coordinatorBusy(err) || errors.Is(err, kafka.NonEmptyGroup)) {
			return err
		}
		t := time.NewTimer(time.Duration(min(attempt+1, 5)) * 100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
	return err
}
