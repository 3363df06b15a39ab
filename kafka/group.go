package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/describegroups"
	"github.com/segmentio/kafka-go/protocol/heartbeat"
	"github.com/segmentio/kafka-go/protocol/joingroup"
	"github.com/segmentio/kafka-go/protocol/leavegroup"
	"github.com/segmentio/kafka-go/protocol/syncgroup"
)

// member is one Subscribe call's membership of its consumer group: it
// joins with the standard "consumer" protocol (see consumerprotocol.go),
// assigns partitions with the range assignor when it is the leader,
// heartbeats, and leaves.
//
// It sends its group requests over a kafka.Transport of its own: a
// JoinGroup waits at the coordinator until every member has rejoined, and
// Kafka answers a connection's requests in order, so sharing a connection
// with other members of the process (or with commits) could keep them
// from hearing of the rebalance they are waited for.
type member struct {
	s      *subscription
	tr     *kafka.Transport
	closeT func()   // closes tr's connections
	coord  net.Addr // the group coordinator, once found
	id     string   // member ID the coordinator gave; "" before the first join
	owned  []int32  // partitions of the last generation
	ownGen int32    // that generation, or -1
	// lastWarn throttles warnings about a group that cannot be joined.
	lastWarn time.Time
}

// memberGen is one generation as this member got it from SyncGroup.
type memberGen struct {
	id         int32
	memberID   string
	leader     bool
	partitions []int          // of the subscription's topic, sorted
	counts     map[string]int // as leader: the partition counts it assigned
}

func newMember(s *subscription) *member {
	tr, closeT := s.b.newTransport()
	return &member{s: s, tr: tr, closeT: closeT, ownGen: -1}
}

// close closes the member's connections, also one waiting for an answer.
func (m *member) close() { m.closeT() }

// errGroupFatal marks join failures that retrying cannot fix.
var errGroupFatal = errors.New("kafka: cannot join the consumer group")

// roundTrip sends one group request to the group's coordinator.
func (m *member) roundTrip(ctx context.Context, req protocol.Message) (protocol.Message, error) {
	if m.coord == nil {
		coord, err := m.s.b.coordinator(ctx, m.s.groupID)
		if err != nil {
			return nil, err
		}
		m.coord = coord
	}
	r, err := m.tr.RoundTrip(ctx, m.coord, req)
	if err != nil || coordinatorMoved(r) {
		m.coord = nil // look it up again next time
	}
	return r, err
}

// coordinatorMoved reports whether a group response says the broker asked
// is not (or not yet) the group's coordinator.
func coordinatorMoved(r protocol.Message) bool {
	var code int16
	switch res := r.(type) {
	case *joingroup.Response:
		code = res.ErrorCode
	case *syncgroup.Response:
		code = res.ErrorCode
	case *heartbeat.Response:
		code = swappedErrorCode(res.ErrorCode, res.ThrottleTimeMs)
	case *leavegroup.Response:
		code = swappedErrorCode(res.ErrorCode, res.ThrottleTimeMS)
	}
	switch kafka.Error(code) {
	case kafka.NotCoordinatorForGroup, kafka.GroupCoordinatorNotAvailable:
		return true
	}
	return false
}

// swappedErrorCode returns the error code of a Heartbeat or LeaveGroup
// response as kafka-go v0.4.51 decodes it. Kafka sends ThrottleTimeMs
// (int32, versions 1+) before ErrorCode (int16), but kafka-go's structs
// declare ErrorCode first, so its ErrorCode holds the throttle time's high
// half (0 unless a throttle of 65s or more) and the low 16 bits of its
// ThrottleTimeMs hold the real error code. Version 0 responses, which have
// no throttle time, decode correctly. TestSwappedErrorCode pins this, so
// that a kafka-go that fixes the order is noticed.
func swappedErrorCode(errorCode int16, throttle int32) int16 {
	if errorCode != 0 {
		return errorCode
	}
	return int16(uint16(throttle))
}

// kerr returns the Kafka error of code, or nil for 0.
func kerr(code int16) error {
	if code == 0 {
		return nil
	}
	return kafka.Error(code)
}

// join joins the group and syncs, retrying until this member has a
// generation, ctx ends (its error is returned) or the coordinator refuses
// the member for good (an error wrapping errGroupFatal).
func (m *member) join(ctx context.Context) (*memberGen, error) {
	s := m.s
	backoff := 250 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		g, err := m.joinOnce(ctx)
		if err == nil {
			return g, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.log.Debug("kafka: join attempt failed", "member", m.id, "error", err)
		if fatalGroupError(err) {
			if errors.Is(err, kafka.InconsistentGroupProtocol) {
				return nil, fmt.Errorf("%w %q: %s: %w", errGroupFatal, s.groupID, m.protocolMismatch(ctx), err)
			}
			return nil, fmt.Errorf("%w %q: %w", errGroupFatal, s.groupID, err)
		}
		switch {
		case errors.Is(err, kafka.MemberIDRequired):
			continue // joinOnce kept the ID; join again at once
		case errors.Is(err, kafka.RebalanceInProgress), errors.Is(err, kafka.IllegalGeneration):
			continue
		case errors.Is(err, kafka.UnknownMemberId):
			m.id = ""
			continue
		}
		level := slog.LevelDebug
		if time.Since(m.lastWarn) >= 10*time.Second {
			level, m.lastWarn = slog.LevelWarn, time.Now()
		}
		s.log.Log(ctx, level, "kafka: cannot join the consumer group yet; retrying", "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}

// protocolMismatch says why the coordinator refused this member's
// protocols (INCONSISTENT_GROUP_PROTOCOL), naming what the group's
// members use as far as DescribeGroups tells: their protocol type, and
// their assignor while the group is stable.
func (m *member) protocolMismatch(ctx context.Context) string {
	offer := fmt.Sprintf("this driver offers only the %q assignor of protocol type %q", rangeAssignor, consumerProtocolType)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := m.roundTrip(ctx, &describegroups.Request{Groups: []string{m.s.groupID}})
	res, ok := r.(*describegroups.Response)
	if err != nil || !ok || len(res.Groups) != 1 || res.Groups[0].ErrorCode != 0 {
		return "the group's members allow no protocol of this member; " + offer
	}
	g := res.Groups[0]
	switch {
	case g.ProtocolType != "" && g.ProtocolType != consumerProtocolType:
		return fmt.Sprintf("the group's members use protocol type %q; %s", g.ProtocolType, offer)
	case g.ProtocolData != "":
		return fmt.Sprintf("the group's members use the %q assignor; %s", g.ProtocolData, offer)
	}
	return "the group's members allow none of this member's assignors; " + offer
}

// joinOnce sends one JoinGroup and, if it succeeds, one SyncGroup.
func (m *member) joinOnce(ctx context.Context) (*memberGen, error) {
	s := m.s
	cfg := &s.b.cfg
	sub := memberSubscription{
		Topics:       []string{s.topic},
		GenerationID: -1,
	}
	if len(m.owned) > 0 {
		sub.Owned = []topicPartitions{{Topic: s.topic, Partitions: m.owned}}
		sub.GenerationID = m.ownGen
	}
	r, err := m.roundTrip(ctx, &joingroup.Request{
		GroupID:            s.groupID,
		SessionTimeoutMS:   int32(cfg.SessionTimeout.Milliseconds()),
		RebalanceTimeoutMS: int32(cfg.RebalanceTimeout.Milliseconds()),
		MemberID:           m.id,
		ProtocolType:       consumerProtocolType,
		Protocols:          []joingroup.RequestProtocol{{Name: rangeAssignor, Metadata: sub.encode()}},
	})
	if err != nil {
		return nil, err
	}
	res, ok := r.(*joingroup.Response)
	if !ok {
		return nil, fmt.Errorf("kafka: JoinGroup: unexpected response %T", r)
	}
	if res.MemberID != "" {
		m.id = res.MemberID
	}
	if err := kerr(res.ErrorCode); err != nil {
		return nil, err
	}
	g := &memberGen{id: res.GenerationID, memberID: res.MemberID, leader: res.LeaderID == res.MemberID}
	var assignments []syncgroup.RequestAssignment
	if g.leader {
		assignments, g.counts = m.lead(ctx, res.Members)
	}
	r, err = m.roundTrip(ctx, &syncgroup.Request{
		GroupID:      s.groupID,
		GenerationID: res.GenerationID,
		MemberID:     m.id,
		ProtocolType: consumerProtocolType,
		ProtocolName: rangeAssignor,
		Assignments:  assignments,
	})
	if err != nil {
		return nil, err
	}
	sres, ok := r.(*syncgroup.Response)
	if !ok {
		return nil, fmt.Errorf("kafka: SyncGroup: unexpected response %T", r)
	}
	if err := kerr(sres.ErrorCode); err != nil {
		return nil, err
	}
	a, err := decodeAssignment(sres.Assignments)
	if err != nil {
		// The leader is another client whose assignment cannot be read:
		// take nothing rather than guess, and say so.
		s.log.Warn("kafka: cannot read this member's assignment from the group leader; consuming nothing in this generation", "member", m.id, "generation", g.id, "error", err)
		a = &memberAssignment{}
	}
	g.partitions = partitionsOf(a.Assigned, s.topic)
	m.owned = m.owned[:0]
	for _, p := range g.partitions {
		m.owned = append(m.owned, int32(p))
	}
	m.ownGen = g.id
	return g, nil
}

// lead assigns the topics the members subscribe to with the range
// assignor. A member whose metadata cannot be read is warned about and
// assigned nothing. It returns the assignments and the partition counts
// they were computed from.
func (m *member) lead(ctx context.Context, joined []joingroup.ResponseMember) ([]syncgroup.RequestAssignment, map[string]int) {
	s := m.s
	members := make([]groupMember, len(joined))
	var topics []string
	seen := map[string]bool{}
	for i, jm := range joined {
		members[i] = groupMember{ID: jm.MemberID, InstanceID: jm.GroupInstanceID}
		sub, err := decodeSubscription(jm.Metadata)
		if err != nil {
			s.log.Warn("kafka: cannot read a group member's subscription; it is assigned no partition", "member", jm.MemberID, "error", err)
			continue
		}
		members[i].Sub = sub
		for _, t := range sub.Topics {
			if !seen[t] {
				seen[t] = true
				topics = append(topics, t)
			}
		}
	}
	counts := m.partitionCounts(ctx, topics)
	plan := assignRange(members, counts)
	out := make([]syncgroup.RequestAssignment, 0, len(members))
	for _, mm := range members {
		a := memberAssignment{Assigned: plan[mm.ID]}
		out = append(out, syncgroup.RequestAssignment{MemberID: mm.ID, Assignment: a.encode()})
	}
	s.log.Debug("kafka: assigned the group's partitions as its leader", "members", len(members), "topics", len(topics))
	return out, counts
}

// partitionCounts returns the partition count of each topic, 0 for one
// the metadata does not show (yet).
func (m *member) partitionCounts(ctx context.Context, topics []string) map[string]int {
	counts := make(map[string]int, len(topics))
	for _, t := range topics {
		counts[t] = 0
	}
	if len(topics) == 0 {
		return counts
	}
	md, err := m.s.b.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		m.s.log.Warn("kafka: cannot read the partition counts of the group's topics", "error", err)
		return counts
	}
	for _, t := range md.Topics {
		if t.Error == nil {
			counts[t.Name] = len(t.Partitions)
		}
	}
	return counts
}

// partitionWatchInterval is how often a leader checks whether the
// partition counts it assigned changed.
const partitionWatchInterval = 5 * time.Second

// heartbeat keeps the member alive in generation g until done is closed,
// calling rebalance once when the member must rejoin: the coordinator
// started a rebalance, dropped the member, or could not be reached for a
// session timeout, or (as leader) a topic gained partitions. It goes on
// heartbeating after calling rebalance, while the generation drains, as
// long as the coordinator still knows the member.
func (m *member) heartbeat(done <-chan struct{}, g *memberGen, rebalance func()) {
	s := m.s
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-done
		cancel()
	}()
	tick := time.NewTicker(s.b.cfg.HeartbeatInterval)
	defer tick.Stop()
	lastOK := time.Now()
	nextWatch := time.Now().Add(partitionWatchInterval)
	signaled := false
	signal := func() {
		if !signaled {
			signaled = true
			rebalance()
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		hctx, hcancel := context.WithTimeout(ctx, s.b.cfg.SessionTimeout)
		r, err := m.roundTrip(hctx, &heartbeat.Request{GroupID: s.groupID, GenerationID: g.id, MemberID: g.memberID})
		hcancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if res, ok := r.(*heartbeat.Response); ok {
				err = kerr(swappedErrorCode(res.ErrorCode, res.ThrottleTimeMs))
			} else {
				err = fmt.Errorf("kafka: Heartbeat: unexpected response %T", r)
			}
		}
		if err != nil {
			s.log.Debug("kafka: heartbeat failed", "generation", g.id, "error", err)
		}
		switch {
		case err == nil:
			lastOK = time.Now()
		case errors.Is(err, kafka.RebalanceInProgress):
			lastOK = time.Now() // the coordinator still counts us in
			signal()
		case errors.Is(err, kafka.UnknownMemberId), errors.Is(err, kafka.IllegalGeneration), errors.Is(err, kafka.FencedInstanceID):
			s.log.Info("kafka: the coordinator ended this member's generation; rejoining", "generation", g.id, "error", err)
			signal()
			return
		default:
			if time.Since(lastOK) > s.b.cfg.SessionTimeout {
				s.log.Warn("kafka: no heartbeat reached the group coordinator within the session timeout; rejoining", "error", err)
				signal()
				return
			}
		}
		if g.leader && !signaled && time.Now().After(nextWatch) {
			nextWatch = time.Now().Add(partitionWatchInterval)
			if m.partitionsChanged(ctx, g.counts) {
				s.log.Info("kafka: a topic of the group gained partitions; rebalancing", "generation", g.id)
				signal()
			}
		}
	}
}

// partitionsChanged reports whether a topic's partition count differs
// from counts: it grew, or a topic the leader could not see has appeared.
func (m *member) partitionsChanged(ctx context.Context, counts map[string]int) bool {
	if len(counts) == 0 {
		return false
	}
	topics := make([]string, 0, len(counts))
	for t := range counts {
		topics = append(topics, t)
	}
	now := m.partitionCounts(ctx, topics)
	if ctx.Err() != nil {
		return false
	}
	for t, n := range counts {
		if c := now[t]; c > 0 && c != n {
			return true
		}
	}
	return false
}

// leaveTimeout bounds leaving the group when Subscribe's own ctx ended
// (Close bounds it by its ctx).
const leaveTimeout = 5 * time.Second

// leave tells the coordinator that the member is gone, so that the group
// rebalances at once instead of after a session timeout. ctx bounds it.
func (m *member) leave(ctx context.Context) {
	if m.id == "" {
		return
	}
	s := m.s
	r, err := m.roundTrip(ctx, &leavegroup.Request{
		GroupID: s.groupID,
		Members: []leavegroup.RequestMember{{MemberID: m.id}},
	})
	if err == nil {
		if res, ok := r.(*leavegroup.Response); ok {
			err = kerr(swappedErrorCode(res.ErrorCode, res.ThrottleTimeMS))
		}
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, kafka.UnknownMemberId) {
		s.log.Debug("kafka: leaving the consumer group failed; the coordinator drops the member after the session timeout", "error", err)
	}
	m.id = ""
}
