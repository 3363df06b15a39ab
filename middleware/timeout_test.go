package middleware_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/middleware"
)

func TestTimeout(t *testing.T) {
	slow := func(ctx context.Context, m *mq.Message) error {
		<-ctx.Done()
		return ctx.Err()
	}
	t.Run("handler past its deadline", func(t *testing.T) {
		err := middleware.Timeout(middleware.TimeoutOptions{Timeout: 10 * time.Millisecond})(slow)(context.Background(), mq.NewMessage(nil))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want context.DeadlineExceeded", err)
		}
		if err == nil || !strings.Contains(err.Error(), "timed out after 10ms") {
			t.Errorf("got %v, want it to say the handler timed out after 10ms", err)
		}
	})
	t.Run("parent ctx canceled is not a timeout", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := middleware.Timeout(middleware.TimeoutOptions{Timeout: time.Hour})(slow)(ctx, mq.NewMessage(nil))
		if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "timed out") {
			t.Errorf("got %v, want context.Canceled as the handler returned it", err)
		}
	})
	t.Run("fast handler", func(t *testing.T) {
		var deadline time.Time
		h := func(ctx context.Context, m *mq.Message) error {
			deadline, _ = ctx.Deadline()
			return nil
		}
		if err := middleware.Timeout(middleware.TimeoutOptions{})(h)(context.Background(), mq.NewMessage(nil)); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		if d := time.Until(deadline); d < 29*time.Second || d > 30*time.Second {
			t.Errorf("got deadline in %v, want the 30s default", d)
		}
	})
}
