package mq

import (
	"context"
	"fmt"
)

// Backlog is how far a group is behind a topic: the messages published to
// the topic that the group has not acknowledged yet, as the broker counts
// them. BacklogOf returns it.
//
// Brokers count differently, and the fields say what each one knows:
//
//	driver    Messages                                      InFlight               Partitions
//	kafka     sum over partitions of end minus committed    -1 (not counted)       one per partition
//	rabbitmq  ready in the group's queue; with the          unacknowledged, with   none
//	          management API, + unacknowledged + delayed    the management API;
//	                                                        else -1
//	sqs       ApproximateNumberOfMessages + NotVisible      NotVisible             none
//	          + Delayed (sns+sqs: of the group's queue)
//	memory    depth: not acknowledged, in flight included   -1 (not counted)       none
type Backlog struct {
	// Topic and Group are those asked about.
	Topic string
	Group string

	// Messages is the number of messages the group has not acknowledged
	// yet: waiting, delayed and in flight, except where the broker cannot
	// tell (RabbitMQ over AMQP alone counts only those ready for delivery;
	// see the table above and Note).
	Messages int64

	// InFlight is the part of Messages delivered to a subscriber and not
	// yet acknowledged, where the broker counts it apart; -1 where it
	// does not.
	InFlight int64

	// Delayed is the part of Messages not yet deliverable (a Message.Delay
	// or a nack delay not over yet), where the broker counts it apart
	// (SQS ApproximateNumberOfMessagesDelayed, memory); 0 elsewhere.
	Delayed int64

	// Approximate is true when the broker's counts are estimates or
	// samples (SQS; RabbitMQ's management API).
	Approximate bool

	// Note, when not empty, says in a sentence what the counts leave out
	// and how to have it counted (for example, how to let the RabbitMQ
	// driver count unacknowledged messages). Tools print it as it is.
	Note string

	// Partitions holds the per-partition detail on brokers with
	// partitions (Kafka), in partition order; nil elsewhere.
	Partitions []PartitionBacklog
}

// PartitionBacklog is the backlog of one partition of a topic for a group.
type PartitionBacklog struct {
	// Partition is the partition number.
	Partition int
	// End is the offset the next published message will get (the high
	// watermark; under read_committed, the last stable offset).
	End int64
	// Committed is the group's committed offset: the next one it will
	// read. -1 when the group has committed none on this partition.
	Committed int64
	// Lag is End minus Committed, or 0 when nothing is committed (a new
	// group starts at the end, unless it asks for Earliest).
	Lag int64
}

// BacklogReader is implemented by brokers that can report a group's
// backlog on a topic.
type BacklogReader interface {
	// Backlog returns group's backlog on topic. It returns an error
	// wrapping ErrNotFound when the topic or the group does not exist.
	// It does not change anything on the broker.
	Backlog(ctx context.Context, topic, group string) (Backlog, error)
}

// BacklogOf returns group's backlog on topic from b, or from what b wraps.
// It returns an error wrapping ErrNotSupported if no broker in the chain
// can tell.
func BacklogOf(ctx context.Context, b any, topic, group string) (Backlog, error) {
	r, ok := find[BacklogReader](b)
	if !ok {
		return Backlog{}, fmt.Errorf("%w: %T cannot report a backlog", ErrNotSupported, b)
	}
	return r.Backlog(ctx, topic, group)
}

// GroupDeleter is implemented by brokers that can remove a group from a
// topic, with everything it has not acknowledged: tools that read a topic
// through a temporary group of their own remove it afterwards.
type GroupDeleter interface {
	// DeleteGroup removes group from topic. Messages published to topic
	// later are no longer kept for it, and those it had not acknowledged
	// are dropped. Deleting a group that does not exist returns nil. A
	// group with running subscribers may be refused with an error.
	DeleteGroup(ctx context.Context, topic, group string) error
}

// DeleteGroup removes group from topic on b, or on what b wraps. It
// returns an error wrapping ErrNotSupported if no broker in the chain can.
func DeleteGroup(ctx context.Context, b any, topic, group string) error {
	d, ok := find[GroupDeleter](b)
	if !ok {
		return fmt.Errorf("%w: %T cannot delete groups", ErrNotSupported, b)
	}
	return d.DeleteGroup(ctx, topic, group)
}
