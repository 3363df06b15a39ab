package kafka

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/seedmq/mq/driver"
)

// generation is this member's share of one consumer group generation.
type generation struct {
	s        *subscription
	id       int32
	memberID string
	assigned []int    // partitions of the topic, sorted
	coord    net.Addr // the group coordinator; only the committer uses it
	parts    []*partition
	wg       sync.WaitGroup // partition goroutines
}

// run resolves the start offsets of the assigned partitions, starts their
// fetchers, then commits acknowledged offsets every CommitInterval until
// genCtx ends, and once more after every fetcher has finished. It returns
// after that last commit.
func (g *generation) run(genCtx context.Context) {
	s := g.s
	ctx, cancel := context.WithCancel(s.fetch)
	defer cancel()
	defer context.AfterFunc(genCtx, cancel)()

	offsets, fails, ok := g.committed(ctx)
	if !ok {
		return // the generation or the subscription ended first
	}
	var unknown []int
	for _, id := range g.assigned {
		if offsets[id] < 0 {
			unknown = append(unknown, id)
		}
	}
	var resolved map[int]int64
	for len(unknown) > 0 {
		var err error
		resolved, err = s.b.listOffsets(ctx, s.topic, unknown, s.cfg.StartAt)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("kafka: cannot resolve the start offsets of a new group; retrying", "error", err)
		if driver.Sleep(ctx, time.Second) != nil {
			return
		}
	}
	for _, id := range g.assigned {
		start := offsets[id]
		if o, ok := resolved[id]; ok {
			start = o
		}
		p := newPartition(g, id, start, fails[id])
		if _, ok := resolved[id]; ok {
			// Commit the resolved start at once, so that the group's
			// position holds even if the partition moves to another
			// member before anything is handled.
			p.t.committed = -1
		}
		g.parts = append(g.parts, p)
	}
	g.commit()
	if s.log.Enabled(ctx, slog.LevelDebug) {
		starts := make(map[int]int64, len(g.parts))
		for _, p := range g.parts {
			starts[p.id] = p.start
		}
		s.log.Debug("kafka: fetching the assigned partitions", "generation", g.id, "member", g.memberID, "start", starts)
	}
	g.wg.Add(len(g.parts))
	for _, p := range g.parts {
		go p.run(genCtx)
	}

	tick := time.NewTicker(s.b.cfg.CommitInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			g.commit()
		case <-genCtx.Done():
			g.wg.Wait()
			g.commit()
			if s.log.Enabled(ctx, slog.LevelDebug) {
				ends := make(map[int]int64, len(g.parts))
				for _, p := range g.parts {
					c, _ := p.t.toCommit()
					ends[p.id] = max(c.offset, p.t.committedOffset())
				}
				s.log.Debug("kafka: generation ended", "generation", g.id, "member", g.memberID, "committed", ends)
			}
			return
		}
	}
}

// committedAttempts is what the commit metadata of a partition says of
// its messages at or after the committed offset (see tracker).
type committedAttempts struct {
	fails map[int64]int // offset → attempts that failed or were cut short
	// startedBelow is one more than the committed started mark: offsets
	// below it count one more attempt when fetched again. 0 for none.
	startedBelow int64
}

// committed reads the group's committed offsets of the assigned
// partitions (-1 where it has none) and the attempts committed with them
// (see tracker), retrying until it succeeds or ctx ends (then ok is
// false). Without the counts, attempts restart at 1.
func (g *generation) committed(ctx context.Context) (offsets map[int]int64, fails map[int]committedAttempts, ok bool) {
	s := g.s
	if len(g.assigned) == 0 {
		return nil, nil, true
	}
	var lastWarn time.Time
	for {
		offsets, fails, err := g.committedOnce(ctx)
		if err == nil {
			return offsets, fails, true
		}
		if ctx.Err() != nil {
			return nil, nil, false
		}
		if time.Since(lastWarn) >= 10*time.Second {
			lastWarn = time.Now()
			s.log.Warn("kafka: cannot read the group's committed offsets; retrying", "error", err)
		}
		if driver.Sleep(ctx, 250*time.Millisecond) != nil {
			return nil, nil, false
		}
	}
}

func (g *generation) committedOnce(ctx context.Context) (map[int]int64, map[int]committedAttempts, error) {
	s := g.s
	coord, err := g.coordinator(ctx)
	if err != nil {
		return nil, nil, err
	}
	res, err := s.b.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		Addr:    coord,
		GroupID: s.groupID,
		Topics:  map[string][]int{s.topic: g.assigned},
	})
	if err == nil {
		err = res.Error
	}
	if err == nil {
		for _, p := range res.Topics[s.topic] {
			if p.Error != nil {
				err = p.Error // such as UNSTABLE_OFFSET_COMMIT: retry
				break
			}
		}
	}
	if err != nil {
		g.coord = nil
		return nil, nil, err
	}
	offsets := make(map[int]int64, len(g.assigned))
	for _, id := range g.assigned {
		offsets[id] = -1
	}
	fails := make(map[int]committedAttempts, len(g.assigned))
	for _, p := range res.Topics[s.topic] {
		offsets[p.Partition] = p.CommittedOffset
		m, mark := decodeAttempts(p.Metadata)
		fails[p.Partition] = committedAttempts{fails: m, startedBelow: mark + 1}
	}
	return offsets, fails, nil
}

// coordinator returns the group coordinator's address, looking it up once.
func (g *generation) coordinator(ctx context.Context) (net.Addr, error) {
	if g.coord == nil {
		addr, err := g.s.b.coordinator(ctx, g.s.groupID)
		if err != nil {
			return nil, err
		}
		g.coord = addr
	}
	return g.coord, nil
}

// commitTimeout bounds one offset commit, which also runs after the
// subscription's ctx ended.
const commitTimeout = 10 * time.Second

// commit sends the commit point (and attempt counts) of every partition
// whose state changed, as a member of the generation.
func (g *generation) commit() {
	var states map[int]commitState
	for _, p := range g.parts {
		if c, ok := p.t.toCommit(); ok {
			if states == nil {
				states = map[int]commitState{}
			}
			states[p.id] = c
		}
	}
	if states == nil {
		return
	}
	s := g.s
	ctx, cancel := s.stopBound(commitTimeout)
	defer cancel()
	commits := make([]kafka.OffsetCommit, 0, len(states))
	for id, c := range states {
		commits = append(commits, kafka.OffsetCommit{Partition: id, Offset: c.offset, Metadata: c.metadata})
	}
	err := g.send(ctx, commits)
	if err != nil {
		s.log.Warn("kafka: offset commit failed; messages handled since the last commit may be redelivered", "generation", g.id, "error", err)
		return
	}
	for _, p := range g.parts {
		if c, ok := states[p.id]; ok {
			p.t.setCommitted(c)
		}
	}
}

// send commits offsets and reports the first partition error.
func (g *generation) send(ctx context.Context, commits []kafka.OffsetCommit) error {
	s := g.s
	coord, err := g.coordinator(ctx)
	if err != nil {
		return err
	}
	res, err := s.b.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		Addr:         coord,
		GroupID:      s.groupID,
		GenerationID: int(g.id),
		MemberID:     g.memberID,
		Topics:       map[string][]kafka.OffsetCommit{s.topic: commits},
	})
	if err == nil {
		for _, p := range res.Topics[s.topic] {
			if p.Error != nil {
				err = p.Error
				break
			}
		}
	}
	if err != nil {
		g.coord = nil // look it up again next time, in case it moved
	}
	return err
}
