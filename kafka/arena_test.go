package kafka

import (
	"io"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// A fetched record with a key and headers becomes a delivery in three
// allocations (the delivery with its message and native record, the
// Header map and its table): its key, body, ID and header values come
// from the fetcher's arena, the native record is boxed for Message.As
// only when As is called, and the delivery is its own Settler.
func TestFetchedRecordAllocations(t *testing.T) {
	p := testPartition()
	var a arena
	body := make([]byte, 1024)
	r := &protocol.Record{
		Time:  time.Unix(1, 0),
		Key:   protocol.NewBytes([]byte("key-1")),
		Value: protocol.NewBytes(body),
		Headers: []protocol.Header{
			{Key: headerID, Value: []byte("0190a6f4-0000-7000-8000-000000000000")},
			{Key: "sent", Value: []byte("1733340000000000000")},
			{Key: "trace", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
		},
	}
	deliver := func() *delivery {
		r.Key.(io.Seeker).Seek(0, io.SeekStart)
		r.Value.(io.Seeker).Seek(0, io.SeekStart)
		km, err := toMessage(&a, "t", 0, 0, r)
		if err != nil {
			t.Fatal(err)
		}
		d := p.newDelivery(km, &a)
		p.t.ack(d.seq)
		r.Offset++
		return d
	}
	d := deliver()
	m := d.Msg
	if m.Key != "key-1" || len(m.Body) != len(body) || m.ID != "0190a6f4-0000-7000-8000-000000000000" ||
		len(m.Header) != 2 || m.Header["sent"] != "1733340000000000000" || m.Header["trace"] == "" {
		t.Fatalf("got %+v, want the record's key, body, ID and two headers", m)
	}
	var km kafka.Message
	if !m.As(&km) || string(km.Key) != "key-1" || len(km.Value) != len(body) || len(km.Headers) != 3 {
		t.Fatalf("As: got %+v, want the record", km)
	}
	if cap(m.Body) != len(m.Body) {
		t.Errorf("Body: got capacity %d, want %d: an append could overwrite a neighbour", cap(m.Body), len(m.Body))
	}
	n := testing.AllocsPerRun(1000, func() { deliver() })
	if n > 3.2 {
		t.Errorf("fetched record to delivery: got %v allocations, want at most 3 (plus the arena's shared blocks)", n)
	}
}

// Pieces of an arena never overlap, and an empty piece is not nil.
func TestArenaPieces(t *testing.T) {
	var a arena
	if b := a.alloc(0); b == nil {
		t.Error("alloc(0): got nil, want an empty slice")
	}
	var pieces [][]byte
	for i := range 200 {
		n := (i * 37) % (arenaMaxShared + 100)
		b := a.alloc(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("alloc(%d): got len %d cap %d", n, len(b), cap(b))
		}
		for j := range b {
			b[j] = byte(i)
		}
		pieces = append(pieces, b)
	}
	for i, b := range pieces {
		for _, c := range b {
			if c != byte(i) {
				t.Fatalf("piece %d was overwritten", i)
			}
		}
	}
}
