package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/seedmq/mq"

	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/heartbeat"
	"github.com/segmentio/kafka-go/protocol/joingroup"
	"github.com/segmentio/kafka-go/protocol/leavegroup"
)

// javaSubscriptionV3 is a version 3 subscription as the Java client's
// ConsumerProtocol.serializeSubscription writes it for topics [t1, t2],
// null user data, owned partitions t1:[0,2], generation 5 and rack "r1",
// spelled out field by field from ConsumerProtocolSubscription.json.
var javaSubscriptionV3 = "" +
	"0003" + // version
	"00000002" + "00027431" + "00027432" + // topics
	"ffffffff" + // user data: null
	"00000001" + "00027431" + "00000002" + "00000000" + "00000002" + // owned
	"00000005" + // generation ID
	"00027231" // rack ID

func TestSubscriptionEncoding(t *testing.T) {
	rack := "r1"
	s := memberSubscription{
		Topics:       []string{"t1", "t2"},
		Owned:        []topicPartitions{{Topic: "t1", Partitions: []int32{0, 2}}},
		GenerationID: 5,
		RackID:       &rack,
	}
	if got := hex.EncodeToString(s.encode()); got != javaSubscriptionV3 {
		t.Errorf("encode:\n got %s\nwant %s", got, javaSubscriptionV3)
	}
	b, _ := hex.DecodeString(javaSubscriptionV3)
	d, err := decodeSubscription(b)
	if err != nil {
		t.Fatalf("decode: got %v, want nil", err)
	}
	if d.Version != 3 || !reflect.DeepEqual(d.Topics, s.Topics) || d.UserData != nil ||
		!reflect.DeepEqual(d.Owned, s.Owned) || d.GenerationID != 5 || d.RackID == nil || *d.RackID != "r1" {
		t.Errorf("decode: got %+v, want %+v", d, s)
	}
}

func TestSubscriptionDecodeVersions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hex     string
		topics  []string
		owned   []topicPartitions
		gen     int32
		user    []byte
		wantErr bool
	}{
		// librdkafka and old Java clients: topics and user data only.
		{name: "v0", hex: "0000" + "00000001" + "00027431" + "00000003" + "010203",
			topics: []string{"t1"}, gen: -1, user: []byte{1, 2, 3}},
		{name: "v1", hex: "0001" + "00000001" + "00027431" + "ffffffff" + "00000001" + "00027431" + "00000001" + "00000004",
			topics: []string{"t1"}, owned: []topicPartitions{{Topic: "t1", Partitions: []int32{4}}}, gen: -1},
		{name: "v2", hex: "0002" + "00000001" + "00027431" + "ffffffff" + "00000000" + "00000007",
			topics: []string{"t1"}, gen: 7},
		// A newer version is read as version 3; what follows is ignored.
		{name: "v9 with more fields", hex: "0009" + "00000001" + "00027431" + "ffffffff" + "00000000" + "00000007" + "ffff" + "abcdef",
			topics: []string{"t1"}, gen: 7},
		// What kafka-go's ConsumerGroup wrote (kafka-go #762): version 1
		// without the owned partitions.
		{name: "kafka-go v1 without owned partitions", hex: "0001" + "00000001" + "00027431" + "00000000", wantErr: true},
		{name: "empty", hex: "", wantErr: true},
		{name: "huge array length", hex: "0000" + "7fffffff", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := hex.DecodeString(tc.hex)
			s, err := decodeSubscription(b)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want an error", s)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if !reflect.DeepEqual(s.Topics, tc.topics) || !reflect.DeepEqual(s.Owned, tc.owned) || s.GenerationID != tc.gen || !bytes.Equal(s.UserData, tc.user) {
				t.Errorf("got %+v, want topics %v owned %v generation %d user data %v", s, tc.topics, tc.owned, tc.gen, tc.user)
			}
		})
	}
}

func TestAssignmentEncoding(t *testing.T) {
	a := memberAssignment{Assigned: []topicPartitions{{Topic: "t1", Partitions: []int32{1, 3}}}}
	want := "0003" + "00000001" + "00027431" + "00000002" + "00000001" + "00000003" + "ffffffff"
	if got := hex.EncodeToString(a.encode()); got != want {
		t.Errorf("encode:\n got %s\nwant %s", got, want)
	}
	for _, v := range []string{"0000", "0001", "0002", "0003"} {
		b, _ := hex.DecodeString(v + want[4:])
		d, err := decodeAssignment(b)
		if err != nil {
			t.Fatalf("decode version %s: got %v, want nil", v, err)
		}
		if got := partitionsOf(d.Assigned, "t1"); !reflect.DeepEqual(got, []int{1, 3}) {
			t.Errorf("decode version %s: got partitions %v, want [1 3]", v, got)
		}
	}
	if d, err := decodeAssignment(nil); err != nil || len(d.Assigned) != 0 {
		t.Errorf("decode of an empty assignment: got %+v, %v; want nothing assigned", d, err)
	}
	if _, err := decodeAssignment([]byte{0, 3, 0, 0}); err == nil {
		t.Errorf("decode of a truncated assignment: got nil error, want one")
	}
}

func TestAssignRange(t *testing.T) {
	sub := func(topics ...string) *memberSubscription { return &memberSubscription{Topics: topics} }
	members := []groupMember{
		{ID: "mq-b", Sub: sub("t")},
		{ID: "java-a", Sub: sub("t", "u")},
		{ID: "broken"}, // metadata that could not be read
		{ID: "mq-c", Sub: sub("t")},
	}
	got := assignRange(members, map[string]int{"t": 7, "u": 2})
	want := map[string][]topicPartitions{
		// Sorted by member ID: java-a, mq-b, mq-c; 7 = 3 + 2 + 2.
		"java-a": {{Topic: "t", Partitions: []int32{0, 1, 2}}, {Topic: "u", Partitions: []int32{0, 1}}},
		"mq-b":   {{Topic: "t", Partitions: []int32{3, 4}}},
		"mq-c":   {{Topic: "t", Partitions: []int32{5, 6}}},
		"broken": nil,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}

	// More members than partitions: the last ones get nothing.
	got = assignRange([]groupMember{{ID: "a", Sub: sub("t")}, {ID: "b", Sub: sub("t")}, {ID: "c", Sub: sub("t")}}, map[string]int{"t": 2})
	if len(got["a"]) != 1 || len(got["b"]) != 1 || got["c"] != nil {
		t.Errorf("3 members, 2 partitions: got %v, want one each for a and b, nothing for c", got)
	}

	// Static members (group instance IDs) come first, by instance ID.
	got = assignRange([]groupMember{{ID: "a", Sub: sub("t")}, {ID: "z", InstanceID: "i1", Sub: sub("t")}}, map[string]int{"t": 2})
	if !reflect.DeepEqual(got["z"], []topicPartitions{{Topic: "t", Partitions: []int32{0}}}) {
		t.Errorf("static member: got %v, want partition 0 for z", got)
	}
}

// TestSwappedErrorCode pins how kafka-go v0.4.51 decodes Heartbeat and
// LeaveGroup responses of versions 1 and up: its structs put ErrorCode
// before ThrottleTimeMs, the reverse of Kafka's order, which hid every
// REBALANCE_IN_PROGRESS from heartbeats. If this fails after a kafka-go
// upgrade, the order was fixed: drop swappedErrorCode.
func TestSwappedErrorCode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		key     protocol.ApiKey
		version int16
		body    []byte
		code    func(protocol.Message) int16
	}{
		{"heartbeat v4", protocol.Heartbeat, 4,
			// throttle 0, error 27 (REBALANCE_IN_PROGRESS), no tagged fields
			[]byte{0, 0, 0, 0, 0, 27, 0},
			func(m protocol.Message) int16 {
				r := m.(*heartbeat.Response)
				return swappedErrorCode(r.ErrorCode, r.ThrottleTimeMs)
			}},
		{"heartbeat v2 throttled", protocol.Heartbeat, 2,
			[]byte{0, 0, 0, 100, 0, 25},
			func(m protocol.Message) int16 {
				r := m.(*heartbeat.Response)
				return swappedErrorCode(r.ErrorCode, r.ThrottleTimeMs)
			}},
		{"leavegroup v3", protocol.LeaveGroup, 3,
			// throttle 0, error 25 (UNKNOWN_MEMBER_ID), no members
			[]byte{0, 0, 0, 0, 0, 25, 0, 0, 0, 0},
			func(m protocol.Message) int16 {
				r := m.(*leavegroup.Response)
				return swappedErrorCode(r.ErrorCode, r.ThrottleTimeMS)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var frame []byte
			frame = binary.BigEndian.AppendUint32(frame, uint32(4+len(tc.body)+tagHeader(tc.version, tc.key)))
			frame = binary.BigEndian.AppendUint32(frame, 1) // correlation ID
			if tagHeader(tc.version, tc.key) == 1 {
				frame = append(frame, 0) // response header tagged fields
			}
			frame = append(frame, tc.body...)
			_, m, err := protocol.ReadResponse(bytes.NewReader(frame), tc.key, tc.version)
			if err != nil {
				t.Fatalf("ReadResponse: %v", err)
			}
			want := int16(binary.BigEndian.Uint16(tc.body[4:6]))
			if got := tc.code(m); got != want {
				t.Errorf("error code: got %d, want %d (decoded %+v)", got, want, m)
			}
		})
	}
}

// tagHeader returns the size of the response header's tagged fields:
// one byte in flexible versions.
func tagHeader(version int16, key protocol.ApiKey) int {
	if version >= 4 && (key == protocol.Heartbeat || key == protocol.LeaveGroup) {
		return 1
	}
	return 0
}

// TestTrackerSkipTo: records the fetcher does not deliver (transaction
// markers, aborted records) let the commit point pass them, but never past
// a delivered message not yet acknowledged.
func TestTrackerSkipTo(t *testing.T) {
	tr := newTracker(10, nil)
	seq, _ := tr.add(10)
	tr.skipTo(13) // offsets 11 and 12: a marker and an aborted record
	if c, _ := tr.toCommit(); c.offset > 10 {
		t.Errorf("commit point with offset 10 unacknowledged: got %d, want 10", c.offset)
	}
	tr.ack(seq)
	if c, ok := tr.toCommit(); !ok || c.offset != 13 {
		t.Errorf("commit point after the ack: got %d (changed %v), want 13", c.offset, ok)
	}
	tr.skipTo(20) // nothing in flight
	if c, ok := tr.toCommit(); !ok || c.offset != 20 {
		t.Errorf("commit point after skipping to 20: got %d (changed %v), want 20", c.offset, ok)
	}
}

func TestIsolationParameter(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  Isolation
		err   bool
	}{
		{"", ReadCommitted, false},
		{"isolation=read_committed", ReadCommitted, false},
		{"isolation=read_uncommitted", ReadUncommitted, false},
		{"isolation=serializable", 0, true},
	} {
		u, _ := url.Parse("kafka://127.0.0.1:9092?" + tc.query)
		o, err := optionsFromURL(u)
		switch {
		case tc.err:
			if !errors.Is(err, mq.ErrInvalidURL) {
				t.Errorf("%q: got %v, want an error wrapping mq.ErrInvalidURL", tc.query, err)
			}
		case err != nil:
			t.Errorf("%q: got %v, want nil", tc.query, err)
		case o.Isolation != tc.want:
			t.Errorf("%q: got Isolation %d, want %d", tc.query, o.Isolation, tc.want)
		}
	}
	if err := (Options{Brokers: []string{"h:1"}, Isolation: 7}).withDefaults().validate(); !errors.Is(err, mq.ErrInvalidOption) {
		t.Errorf("Isolation 7: got %v, want an error wrapping mq.ErrInvalidOption", err)
	}
}

// TestLeaderWarnsOfUnreadableMember: a member whose subscription cannot
// be read is named in a warning and assigned nothing (issue 17: mq logged
// "unable to read metadata for member java-…: %!w(<nil>)" at debug level).
func TestLeaderWarnsOfUnreadableMember(t *testing.T) {
	var buf bytes.Buffer
	s := &subscription{topic: "t", log: slog.New(slog.NewTextHandler(&buf, nil))}
	m := &member{s: s}
	bad, _ := hex.DecodeString("0001" + "00000001" + "00017400000000") // v1 without owned partitions
	out, _ := m.lead(context.Background(), []joingroup.ResponseMember{{MemberID: "java-1", Metadata: bad}})
	if len(out) != 1 || out[0].MemberID != "java-1" {
		t.Fatalf("assignments: got %+v, want one for java-1", out)
	}
	a, err := decodeAssignment(out[0].Assignment)
	if err != nil || len(a.Assigned) != 0 {
		t.Errorf("assignment of the unreadable member: got %+v, %v; want nothing assigned", a, err)
	}
	if log := buf.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "member=java-1") {
		t.Errorf("log: got %q, want a warning naming member java-1", log)
	}
}
