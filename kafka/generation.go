package kafka

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// generation is this member's share of one consumer group generation.
type generation struct {
	s     *subscription
	gen   *kafka.Generation
	coord net.Addr // the group coordinator; only the committer uses it
	parts []*partition
	wg    sync.WaitGroup // partition goroutines
}

// startGeneration runs the committer of gen, which resolves start offsets
// and starts one fetcher per assigned partition.
func (s *subscription) startGeneration(gen *kafka.Generation) {
	g := &generation{s: s, gen: gen}
	s.log.Debug("kafka: joined consumer group generation", "generation", gen.ID, "member", gen.MemberID, "assigned", len(gen.Assignments[s.topic]))
	gen.Start(g.run)
}

// run resolves the start offset of partitions the group has no offset for,
// starts the partition fetchers, then commits acknowledged offsets every
// CommitInterval until the generation ends, and once more after every
// fetcher has finished.
func (g *generation) run(genCtx context.Context) {
	s := g.s
	ctx, cancel := context.WithCancel(s.fetch)
	defer cancel()
	defer context.AfterFunc(genCtx, cancel)()

	assigned := g.gen.Assignments[s.topic]
	ids := make([]int, len(assigned))
	var unknown []int
	for i, pa := range assigned {
		ids[i] = pa.ID
		if pa.Offset < 0 {
			unknown = append(unknown, pa.ID)
		}
	}
	fails := g.committedAttempts(ctx, ids)
	var resolved map[int]int64
	if len(unknown) > 0 {
		var err error
		resolved, err = s.b.listOffsets(ctx, s.topic, unknown, s.cfg.StartAt)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("kafka: cannot resolve the start offsets of a new group; the fetchers will resolve them", "error", err)
		}
	}
	for _, pa := range assigned {
		start := pa.Offset
		if o, ok := resolved[pa.ID]; ok {
			start = o
		}
		p := newPartition(g, pa.ID, start, fails[pa.ID])
		if _, ok := resolved[pa.ID]; ok {
			// Commit the resolved start at once, so that the group's
			// position holds even if the partition moves to another
			// member before anything is handled.
			p.t.committed = -1
		}
		g.parts = append(g.parts, p)
	}
	g.commit()
	g.wg.Add(len(g.parts))
	for _, p := range g.parts {
		g.gen.Start(p.run)
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
			return
		}
	}
}

// committedAttempts reads the failed-attempt counts committed with the
// group's offsets (see tracker). Without them attempts restart at 1.
func (g *generation) committedAttempts(ctx context.Context, ids []int) map[int]map[int64]int {
	s := g.s
	coord, err := g.coordinator(ctx)
	if err != nil {
		return nil
	}
	res, err := s.b.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		Addr:    coord,
		GroupID: s.groupID,
		Topics:  map[string][]int{s.topic: ids},
	})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("kafka: cannot read committed attempt counts; redelivered messages restart at attempt 1", "error", err)
		}
		g.coord = nil
		return nil
	}
	out := map[int]map[int64]int{}
	for _, p := range res.Topics[s.topic] {
		if m := decodeAttempts(p.Metadata); m != nil {
			out[p.Partition] = m
		}
	}
	return out
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
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	commits := make([]kafka.OffsetCommit, 0, len(states))
	for id, c := range states {
		commits = append(commits, kafka.OffsetCommit{Partition: id, Offset: c.offset, Metadata: c.metadata})
	}
	err := g.send(ctx, commits)
	if err != nil {
		s.log.Warn("kafka: offset commit failed; messages handled since the last commit may be redelivered", "generation", g.gen.ID, "error", err)
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
		GenerationID: int(g.gen.ID),
		MemberID:     g.gen.MemberID,
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
