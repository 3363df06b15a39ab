package main

import (
	"context"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/mempubsub"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
)

// memoryContenders are the in-process brokers: mq's memory driver against
// a plain buffered channel (the floor), Watermill's GoChannel and gocloud's
// mempubsub.
func memoryContenders() []contender {
	open := func(ctx context.Context, _ cell) (mq.Broker, error) {
		b, err := memory.New(ctx, memory.Options{})
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	cs := []contender{chanContender()}
	cs = append(cs, mqContenders("memory.New(ctx, memory.Options{}); Subscribe with Concurrency(conc); one message per Publish", open, nil)...)
	return append(cs, gochannelContender(), mempubsubContender())
}

// chanItem is what the plain channel carries.
type chanItem struct {
	body []byte
	sent int64
}

type chanRun struct {
	ch   chan chanItem
	wg   sync.WaitGroup
	once sync.Once
}

func (r *chanRun) Publish(ctx context.Context, bodies [][]byte, sent int64) error {
	for _, b := range bodies {
		select {
		case r.ch <- chanItem{b, sent}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (r *chanRun) Close(context.Context) error {
	r.once.Do(func() { close(r.ch) })
	r.wg.Wait()
	return nil
}

func (r *chanRun) Delete(context.Context) error { return nil } // nothing outside the process

// chanContender is a buffered Go channel with conc receiving goroutines:
// no copies, no acknowledgements, no redelivery. The floor any broker
// abstraction is measured against.
func chanContender() contender {
	return contender{Name: "chan", Role: "raw", Note: "make(chan, 1024) with conc receiving goroutines; no copy, no ack, no redelivery", Start: func(_ context.Context, c cell, recv func(int64)) (run, error) {
		r := &chanRun{ch: make(chan chanItem, 1024)}
		for range c.Conc {
			r.wg.Go(func() {
				for it := range r.ch {
					recv(it.sent)
				}
			})
		}
		return r, nil
	}}
}

type gochannelRun struct {
	ps    *gochannel.GoChannel
	topic string
	wg    sync.WaitGroup
}

func (r *gochannelRun) Publish(_ context.Context, bodies [][]byte, sent int64) error {
	msgs := make([]*message.Message, len(bodies))
	for i, b := range bodies {
		m := message.NewMessage(watermill.NewUUID(), b)
		if sent != 0 {
			m.Metadata.Set(sentHeader, formatSent(sent))
		}
		msgs[i] = m
	}
	return r.ps.Publish(r.topic, msgs...)
}

func (r *gochannelRun) Close(context.Context) error {
	err := r.ps.Close()
	r.wg.Wait()
	return err
}

func (r *gochannelRun) Delete(context.Context) error { return nil } // nothing outside the process

// gochannelContender is Watermill's GoChannel. A GoChannel subscription
// handles its messages one at a time (each waits for the previous Ack),
// and further subscriptions to a topic each get every message (fan-out),
// so it runs one subscription whatever conc is; conc still sets the
// publishing goroutines.
func gochannelContender() contender {
	return contender{Name: "watermill-gochannel", Note: "gochannel.NewGoChannel(Config{OutputChannelBuffer: 1024}); one subscription (GoChannel has no competing consumers); message.NewMessage(watermill.NewUUID(), body)", Start: func(ctx context.Context, c cell, recv func(int64)) (run, error) {
		r := &gochannelRun{ps: gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1024}, watermill.NopLogger{}), topic: freshTopic("wm")}
		msgs, err := r.ps.Subscribe(context.Background(), r.topic)
		if err != nil {
			return nil, err
		}
		r.wg.Go(func() {
			for m := range msgs {
				recv(parseSent(m.Metadata.Get(sentHeader)))
				m.Ack()
			}
		})
		return r, nil
	}}
}

type mempubsubRun struct {
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (r *mempubsubRun) Publish(ctx context.Context, bodies [][]byte, sent int64) error {
	for _, b := range bodies {
		m := &pubsub.Message{Body: b}
		if sent != 0 {
			m.Metadata = map[string]string{sentHeader: formatSent(sent)}
		}
		if err := r.topic.Send(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (r *mempubsubRun) Close(ctx context.Context) error {
	r.cancel()
	r.wg.Wait()
	err := r.sub.Shutdown(ctx)
	if terr := r.topic.Shutdown(ctx); err == nil {
		err = terr
	}
	return err
}

func (r *mempubsubRun) Delete(context.Context) error { return nil } // nothing outside the process

// mempubsubContender is gocloud.dev's mempubsub, with conc goroutines
// calling Receive on one subscription (competing consumers).
func mempubsubContender() contender {
	return contender{Name: "gocloud-mempubsub", Note: "mempubsub.NewTopic + NewSubscription(ackDeadline 1m); conc goroutines calling Receive, Ack each", Start: func(_ context.Context, c cell, recv func(int64)) (run, error) {
		topic := mempubsub.NewTopic()
		rctx, cancel := context.WithCancel(context.Background())
		r := &mempubsubRun{topic: topic, sub: mempubsub.NewSubscription(topic, time.Minute), cancel: cancel}
		for range c.Conc {
			r.wg.Go(func() {
				for {
					m, err := r.sub.Receive(rctx)
					if err != nil {
						return
					}
					recv(parseSent(m.Metadata[sentHeader]))
					m.Ack()
				}
			})
		}
		return r, nil
	}}
}
