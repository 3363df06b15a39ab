package kafka

import (
	"cmp"
	"slices"
)

// rangeAssignor is the name of the range assignor in the consumer
// protocol: the Java client's default (its default list is range,
// cooperative-sticky) and one of librdkafka's (range,roundrobin), so
// groups mixing them with mq agree on it.
const rangeAssignor = "range"

// groupMember is one member of a group as the leader sees it in the
// JoinGroup response.
type groupMember struct {
	ID         string
	InstanceID string
	Sub        *memberSubscription // nil: its metadata could not be read
}

// assignRange assigns partitions as the Java client's RangeAssignor does:
// for each topic, the members subscribed to it, sorted by group instance
// ID (when set) and member ID, each take a contiguous range of its
// partitions, the first (partitions % members) of them one more than the
// others. partitions holds each topic's partition count. Every member is
// in the result, with an empty assignment if it gets nothing.
func assignRange(members []groupMember, partitions map[string]int) map[string][]topicPartitions {
	out := make(map[string][]topicPartitions, len(members))
	byTopic := map[string][]*groupMember{}
	for i := range members {
		m := &members[i]
		out[m.ID] = nil
		if m.Sub == nil {
			continue
		}
		for _, t := range m.Sub.Topics {
			if !slices.Contains(byTopic[t], m) {
				byTopic[t] = append(byTopic[t], m)
			}
		}
	}
	topics := make([]string, 0, len(byTopic))
	for t := range byTopic {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	for _, t := range topics {
		ms := byTopic[t]
		n := partitions[t]
		if n <= 0 {
			continue
		}
		slices.SortFunc(ms, compareMembers)
		per, extra := n/len(ms), n%len(ms)
		for i, m := range ms {
			start := i*per + min(i, extra)
			count := per
			if i < extra {
				count++
			}
			if count == 0 {
				continue
			}
			tp := topicPartitions{Topic: t, Partitions: make([]int32, count)}
			for j := range count {
				tp.Partitions[j] = int32(start + j)
			}
			out[m.ID] = append(out[m.ID], tp)
		}
	}
	return out
}

// compareMembers orders members as Java's RangeAssignor does: members
// with a group instance ID first, by it, then the others by member ID.
func compareMembers(a, b *groupMember) int {
	switch {
	case a.InstanceID != "" && b.InstanceID != "":
		if c := cmp.Compare(a.InstanceID, b.InstanceID); c != 0 {
			return c
		}
	case a.InstanceID != "":
		return -1
	case b.InstanceID != "":
		return 1
	}
	return cmp.Compare(a.ID, b.ID)
}
