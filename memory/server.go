package memory

import (
	"container/heap"
	"sync"
	"time"
)

// server is one in-process broker. Every Broker opened with the same name
// shares one server, as clients of one real broker share it.
type server struct {
	mu     sync.Mutex
	topics map[string]*topic
}

var (
	serversMu sync.Mutex
	servers   = map[string]*server{}
)

// serverNamed returns the process-wide server called name, creating it.
// An empty name always makes a new, private server.
func serverNamed(name string) *server {
	if name == "" {
		return newServer()
	}
	serversMu.Lock()
	defer serversMu.Unlock()
	s := servers[name]
	if s == nil {
		s = newServer()
		servers[name] = s
	}
	return s
}

func newServer() *server { return &server{topics: map[string]*topic{}} }

// topic is an append-only log plus the groups reading it.
type topic struct {
	name   string
	seq    int64
	log    entryLog // retained messages, for replay
	groups map[string]*group
}

// entryLog is a topic's retained messages in publish order, kept in
// fixed-size chunks so that appending never copies the whole log under
// the server lock, however long it grows.
type entryLog struct {
	chunks [][]*entry // every chunk but the last is full
	head   int        // entries at the start of chunks[0] already dropped
	n      int        // entries retained
}

const logChunk = 1024

// append adds e at the end of the log, then drops the oldest entries
// while more than retain are kept (retain 0: keep all).
func (l *entryLog) append(e *entry, retain int) {
	if k := len(l.chunks); k == 0 || len(l.chunks[k-1]) == logChunk {
		l.chunks = append(l.chunks, nil) // grows by append: small topics stay small
	}
	last := &l.chunks[len(l.chunks)-1]
	*last = append(*last, e)
	l.n++
	for retain > 0 && l.n > retain {
		l.chunks[0][l.head] = nil // groups still holding it keep it alive
		l.head++
		l.n--
		if l.head == logChunk { // a full chunk: a later one holds the newest entry
			l.chunks[0] = nil
			l.chunks = l.chunks[1:]
			l.head = 0
		}
	}
}

// all calls f for each retained entry, oldest first.
func (l *entryLog) all(f func(*entry)) {
	for i, chunk := range l.chunks {
		if i == 0 {
			chunk = chunk[l.head:]
		}
		for _, e := range chunk {
			f(e)
		}
	}
}

// entry is one published message, frozen at publish time: a private
// copy of the message's fields (its Body is shared read-only with
// handlers). It stays in the topic's log for replay, so it holds only
// what a delivery needs.
type entry struct {
	seq       int64
	id, key   string
	body      []byte
	header    map[string]string
	published time.Time
	delay     time.Duration // the message's Delay
	first     pending       // the first group's pending record, saving an allocation
}

// group tracks one consumer group's unacknowledged messages.
//
// Every pending message is in exactly one place: the ready queue (may be
// delivered now), the delayed heap (may be delivered later), leased to a
// subscription, or waiting in its key's queue behind an earlier message of
// the same key. Only the head of a key's queue is ever ready, delayed or
// leased, which is what keeps per-key order across redeliveries.
type group struct {
	name    string
	topic   string
	ready   readyQueue
	delayed timeHeap
	keys    map[string][]*pending // per-key FIFO; [0] is the head
	count   int                   // pending messages, leased included
	signal  chan struct{}         // closed and replaced when a change has waiters
	waiters int                   // subscriptions that took signal since the last broadcast
	leaseID uint64
}

// pending is one message a group has not acknowledged yet.
type pending struct {
	e        *entry
	attempts int       // deliveries so far
	at       time.Time // when it may be delivered; zero means now
	lease    uint64    // non-zero while leased to a subscription
}

func newGroup(topicName, name string) *group {
	return &group{name: name, topic: topicName, keys: map[string][]*pending{}, signal: make(chan struct{})}
}

// broadcast wakes every subscription waiting on g. Callers hold the
// server lock.
func (g *group) broadcast() {
	if g.waiters == 0 {
		return // nobody holds the current signal: no channel to spend
	}
	close(g.signal)
	g.signal = make(chan struct{})
	g.waiters = 0
}

// wait returns the channel a subscription that found nothing to take
// waits on. Callers hold the server lock, and took nothing in the same
// critical section, so no change can slip between the two.
func (g *group) wait() <-chan struct{} {
	g.waiters++
	return g.signal
}

// add appends a newly published (or replayed) message, recorded in p,
// which the caller has zeroed.
func (g *group) add(e *entry, p *pending) {
	p.e = e
	if e.delay > 0 {
		p.at = e.published.Add(e.delay)
	}
	g.count++
	if k := e.key; k != "" {
		q := g.keys[k]
		g.keys[k] = append(q, p)
		if len(q) > 0 {
			return // waits behind the key's head
		}
	}
	g.schedule(p)
}

// schedule puts p in the ready queue or the delayed heap by its time.
func (g *group) schedule(p *pending) {
	if !p.at.IsZero() && p.at.After(time.Now()) {
		heap.Push(&g.delayed, p)
	} else {
		g.ready.push(p)
	}
	g.broadcast()
}

// take leases the oldest deliverable message, or returns nil and the time
// the next delayed one becomes deliverable (zero if none).
func (g *group) take() (*pending, time.Time) {
	if len(g.delayed) > 0 {
		now := time.Now()
		for len(g.delayed) > 0 && !g.delayed[0].at.After(now) {
			g.ready.push(heap.Pop(&g.delayed).(*pending))
		}
	}
	p := g.ready.pop()
	if p == nil {
		var next time.Time
		if len(g.delayed) > 0 {
			next = g.delayed[0].at
		}
		return nil, next
	}
	g.leaseID++
	p.lease = g.leaseID
	p.attempts++
	return p, time.Time{}
}

// ack removes a leased message for good and promotes the next message of
// its key. A stale lease (revoked meanwhile) is ignored and reported.
func (g *group) ack(p *pending, lease uint64) bool {
	if p.lease != lease || lease == 0 {
		return false
	}
	p.lease = 0
	g.count--
	if k := p.e.key; k != "" {
		q := g.keys[k]
		q[0] = nil
		q = q[1:]
		if len(q) == 0 {
			delete(g.keys, k)
		} else {
			g.keys[k] = q
			g.schedule(q[0])
		}
	}
	g.broadcast()
	return true
}

// retry makes a leased message deliverable again after delay. It stays
// the head of its key, so later messages of that key keep waiting.
// handled says whether a handler saw this delivery; if not, it does not
// count as an attempt.
func (g *group) retry(p *pending, lease uint64, delay time.Duration, handled bool) bool {
	if p.lease != lease || lease == 0 {
		return false
	}
	p.lease = 0
	if !handled {
		p.attempts--
	}
	p.at = time.Time{}
	if delay > 0 {
		p.at = time.Now().Add(delay)
	}
	g.schedule(p)
	return true
}

// readyQueue holds a group's deliverable messages and gives them out in
// publish order. Nearly all become ready in that order (new publishes),
// so they go to a FIFO ring at O(1); the rest (redeliveries, delayed
// messages coming due, a key's next message once its head is acked) go
// to a heap, and pop takes whichever head has the lower sequence.
type readyQueue struct {
	ring []*pending // circular; len is zero or a power of two
	head int        // index of the oldest in ring
	n    int        // messages in ring
	late seqHeap    // messages that became ready out of sequence
}

func (q *readyQueue) push(p *pending) {
	if q.n > 0 && q.ring[(q.head+q.n-1)&(len(q.ring)-1)].e.seq > p.e.seq {
		heap.Push(&q.late, p)
		return
	}
	if q.n == len(q.ring) {
		grown := make([]*pending, max(16, 2*len(q.ring)))
		k := copy(grown, q.ring[q.head:])
		copy(grown[k:], q.ring[:q.head])
		q.ring, q.head = grown, 0
	}
	q.ring[(q.head+q.n)&(len(q.ring)-1)] = p
	q.n++
}

// pop removes and returns the ready message with the lowest sequence, or
// nil if there is none.
func (q *readyQueue) pop() *pending {
	if q.n > 0 && (len(q.late) == 0 || q.ring[q.head].e.seq < q.late[0].e.seq) {
		p := q.ring[q.head]
		q.ring[q.head] = nil
		q.head = (q.head + 1) & (len(q.ring) - 1)
		q.n--
		return p
	}
	if len(q.late) > 0 {
		return heap.Pop(&q.late).(*pending)
	}
	return nil
}

// seqHeap orders pending messages by publish sequence: a group is a queue.
type seqHeap []*pending

func (h seqHeap) Len() int           { return len(h) }
func (h seqHeap) Less(i, j int) bool { return h[i].e.seq < h[j].e.seq }
func (h seqHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *seqHeap) Push(x any)        { *h = append(*h, x.(*pending)) }
func (h *seqHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}

// timeHeap orders delayed messages by when they become deliverable, then
// by sequence.
type timeHeap []*pending

func (h timeHeap) Len() int { return len(h) }
func (h timeHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].e.seq < h[j].e.seq
}
func (h timeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)   { *h = append(*h, x.(*pending)) }
func (h *timeHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}
