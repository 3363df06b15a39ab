package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The "consumer" protocol type's member metadata and assignments, encoded
// exactly as the Java client's ConsumerProtocol does (the message
// definitions ConsumerProtocolSubscription and
// ConsumerProtocolAssignment in Apache Kafka's clients), so that Java,
// librdkafka and mq members can read each other's. Both start with an
// int16 version and use the classic (non-flexible) encoding:
//
//	Subscription v0: topics [string], user_data nullable bytes
//	             v1: + owned_partitions [topic string, partitions [int32]]
//	             v2: + generation_id int32
//	             v3: + rack_id nullable string
//	Assignment v0..v3: assigned_partitions [topic string, partitions [int32]],
//	                   user_data nullable bytes
//
// The driver writes version 3 of both, as the Java 3.9 client does, and
// reads versions 0 to 3; a newer version is read as version 3 and what
// follows is ignored, as Java does.

// consumerProtocolType is the protocol type of Kafka consumer groups.
const consumerProtocolType = "consumer"

// consumerProtocolVersion is the version of subscriptions and assignments
// the driver writes.
const consumerProtocolVersion = 3

// memberSubscription is a member's consumer protocol metadata.
type memberSubscription struct {
	Version      int16
	Topics       []string
	UserData     []byte // nil: null
	Owned        []topicPartitions
	GenerationID int32 // -1: unknown (v2+)
	RackID       *string
}

// memberAssignment is what the leader assigns one member.
type memberAssignment struct {
	Version  int16
	Assigned []topicPartitions
	UserData []byte // nil: null
}

// topicPartitions is one topic's partitions within a subscription or an
// assignment.
type topicPartitions struct {
	Topic      string
	Partitions []int32
}

// partitionsOf returns the partitions of topic in tps, sorted.
func partitionsOf(tps []topicPartitions, topic string) []int {
	var out []int
	for _, tp := range tps {
		if tp.Topic == topic {
			for _, p := range tp.Partitions {
				out = append(out, int(p))
			}
		}
	}
	slices.Sort(out)
	return out
}

// encode writes s as version consumerProtocolVersion.
func (s *memberSubscription) encode() []byte {
	var w protoWriter
	w.int16(consumerProtocolVersion)
	w.int32(int32(len(s.Topics)))
	for _, t := range s.Topics {
		w.string(t)
	}
	w.nullableBytes(s.UserData)
	w.topicPartitions(s.Owned)
	w.int32(s.GenerationID)
	w.nullableString(s.RackID)
	return w.b
}

// decodeSubscription reads a subscription of any version.
func decodeSubscription(b []byte) (*memberSubscription, error) {
	r := protoReader{b: b}
	s := &memberSubscription{GenerationID: -1}
	s.Version = r.int16()
	if r.err == nil && s.Version < 0 {
		return nil, fmt.Errorf("subscription version %d", s.Version)
	}
	v := min(s.Version, consumerProtocolVersion)
	n := r.arrayLen()
	for range n {
		s.Topics = append(s.Topics, r.string())
	}
	s.UserData = r.nullableBytes()
	if v >= 1 {
		s.Owned = r.topicPartitions()
	}
	if v >= 2 {
		s.GenerationID = r.int32()
	}
	if v >= 3 {
		s.RackID = r.nullableString()
	}
	if r.err != nil {
		return nil, fmt.Errorf("subscription version %d: %w", s.Version, r.err)
	}
	return s, nil
}

// encode writes a as version consumerProtocolVersion.
func (a *memberAssignment) encode() []byte {
	var w protoWriter
	w.int16(consumerProtocolVersion)
	w.topicPartitions(a.Assigned)
	w.nullableBytes(a.UserData)
	return w.b
}

// decodeAssignment reads an assignment of any version. An empty one (a
// member the leader left out) is an assignment of nothing.
func decodeAssignment(b []byte) (*memberAssignment, error) {
	if len(b) == 0 {
		return &memberAssignment{}, nil
	}
	r := protoReader{b: b}
	a := &memberAssignment{}
	a.Version = r.int16()
	if r.err == nil && a.Version < 0 {
		return nil, fmt.Errorf("assignment version %d", a.Version)
	}
	a.Assigned = r.topicPartitions()
	a.UserData = r.nullableBytes()
	if r.err != nil {
		return nil, fmt.Errorf("assignment version %d: %w", a.Version, r.err)
	}
	return a, nil
}

// protoWriter appends Kafka's classic encodings to b.
type protoWriter struct{ b []byte }

func (w *protoWriter) int16(v int16) { w.b = binary.BigEndian.AppendUint16(w.b, uint16(v)) }
func (w *protoWriter) int32(v int32) { w.b = binary.BigEndian.AppendUint32(w.b, uint32(v)) }

func (w *protoWriter) string(s string) {
	w.int16(int16(len(s)))
	w.b = append(w.b, s...)
}

func (w *protoWriter) nullableString(s *string) {
	if s == nil {
		w.int16(-1)
		return
	}
	w.string(*s)
}

func (w *protoWriter) nullableBytes(b []byte) {
	if b == nil {
		w.int32(-1)
		return
	}
	w.int32(int32(len(b)))
	w.b = append(w.b, b...)
}

func (w *protoWriter) topicPartitions(tps []topicPartitions) {
	w.int32(int32(len(tps)))
	for _, tp := range tps {
		w.string(tp.Topic)
		w.int32(int32(len(tp.Partitions)))
		for _, p := range tp.Partitions {
			w.int32(p)
		}
	}
}

// errShort is the error of a reader that ran out of bytes.
var errShort = errors.New("buffer underflow")

// protoReader reads Kafka's classic encodings; the first failure sticks in
// err and later reads return zero values.
type protoReader struct {
	b   []byte
	err error
}

func (r *protoReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = errShort
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *protoReader) int16() int16 {
	if b := r.take(2); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (r *protoReader) int32() int32 {
	if b := r.take(4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

// arrayLen reads an array length; null (-1) is an empty array. A length
// the remaining bytes cannot hold is an error, so that a corrupt length
// cannot make the caller allocate much.
func (r *protoReader) arrayLen() int {
	n := int(r.int32())
	if n < 0 {
		return 0
	}
	if n > len(r.b) {
		if r.err == nil {
			r.err = errShort
		}
		return 0
	}
	return n
}

func (r *protoReader) string() string {
	n := int(r.int16())
	if n < 0 {
		if r.err == nil {
			r.err = errors.New("null string")
		}
		return ""
	}
	return string(r.take(n))
}

func (r *protoReader) nullableString() *string {
	n := int(r.int16())
	if n < 0 || r.err != nil {
		return nil
	}
	s := string(r.take(n))
	return &s
}

func (r *protoReader) nullableBytes() []byte {
	n := int(r.int32())
	if n < 0 || r.err != nil {
		return nil
	}
	return slices.Clone(r.take(n))
}

func (r *protoReader) topicPartitions() []topicPartitions {
	n := r.arrayLen()
	var out []topicPartitions
	for range n {
		tp := topicPartitions{Topic: r.string()}
		m := r.arrayLen()
		for range m {
			tp.Partitions = append(tp.Partitions, r.int32())
		}
		if r.err != nil {
			return nil
		}
		out = append(out, tp)
	}
	return out
}
