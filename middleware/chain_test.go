package middleware_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/memory"
	"github.com/seedmq/mq/middleware"
)

// tag returns middleware that appends name to *trace on the way in and
// "/"+name on the way out.
func tag(trace *[]string, name string) mq.Middleware {
	return func(next mq.Handler) mq.Handler {
		return func(ctx context.Context, m *mq.Message) error {
			*trace = append(*trace, name)
			err := next(ctx, m)
			*trace = append(*trace, "/"+name)
			return err
		}
	}
}

func TestChain(t *testing.T) {
	tests := []struct {
		name string
		mws  func(tr *[]string) []mq.Middleware
		want []string
	}{
		{"first is outermost", func(tr *[]string) []mq.Middleware {
			return []mq.Middleware{tag(tr, "a"), tag(tr, "b"), tag(tr, "c")}
		}, []string{"a", "b", "c", "h", "/c", "/b", "/a"}},
		{"nil entries skipped", func(tr *[]string) []mq.Middleware {
			return []mq.Middleware{nil, tag(tr, "a"), nil, tag(tr, "b")}
		}, []string{"a", "b", "h", "/b", "/a"}},
		{"empty chain", func(tr *[]string) []mq.Middleware { return nil }, []string{"h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr []string
			h := middleware.Chain(tt.mws(&tr)...)(func(context.Context, *mq.Message) error {
				tr = append(tr, "h")
				return nil
			})
			if err := h(context.Background(), mq.NewMessage(nil)); err != nil {
				t.Fatalf("handler: got %v, want nil", err)
			}
			if !slices.Equal(tr, tt.want) {
				t.Errorf("got order %q, want %q", tr, tt.want)
			}
		})
	}
}

func TestChainPublisher(t *testing.T) {
	var tr []string
	mw := func(name string) middleware.PublisherMiddleware {
		return func(next middleware.PublishFunc) middleware.PublishFunc {
			return func(ctx context.Context, topic string, msgs ...*mq.Message) error {
				tr = append(tr, name)
				return next(ctx, topic, msgs...)
			}
		}
	}
	b := newBroker(t)
	p := middleware.WrapPublisher(b, mw("a"), nil, mw("b"))
	publish(t, p, topicFor(t), mq.NewMessage([]byte("x")))
	if want := []string{"a", "b"}; !slices.Equal(tr, want) {
		t.Errorf("got order %q, want %q", tr, want)
	}
}

func TestWrapBroker(t *testing.T) {
	ctx := context.Background()
	b := newBroker(t)
	var wrapped atomic.Int32
	w := middleware.WrapBroker(b, nil, func(next mq.Handler) mq.Handler {
		return func(ctx context.Context, m *mq.Message) error {
			wrapped.Add(1)
			return next(ctx, m)
		}
	})

	t.Run("Unwrap reaches the driver", func(t *testing.T) {
		var got *memory.Broker
		if !mq.As(w, &got) || got != b {
			t.Errorf("mq.As(wrapped, **memory.Broker): got %p, want %p", got, b)
		}
		if err := mq.Ping(ctx, w); err != nil {
			t.Errorf("mq.Ping(wrapped): got %v, want nil", err)
		}
		if err := mq.Provision(ctx, w, topicFor(t), "g"); err != nil {
			t.Errorf("mq.Provision(wrapped): got %v, want nil", err)
		}
		if got, want := w.Capabilities(), b.Capabilities(); got != want {
			t.Errorf("Capabilities: got %+v, want %+v", got, want)
		}
	})

	t.Run("Subscribe wraps the handler", func(t *testing.T) {
		topic := topicFor(t)
		in := newInbox()
		subscribe(t, w, topic, "g", in.handler(nil))
		publish(t, w, topic, mq.NewMessage([]byte("x")))
		in.waitFor(t, 1)
		if n := wrapped.Load(); n != 1 {
			t.Errorf("got %d runs of the broker's middleware, want 1", n)
		}
	})
}
