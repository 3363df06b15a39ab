package driver

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

func TestNewSubscribeConfig(t *testing.T) {
	c, err := NewSubscribeConfig("dflt", mq.Latest, nil)
	if err != nil || c.Group != "dflt" || c.Concurrency != 1 || c.StartAt != mq.Latest || c.Backoff == nil {
		t.Fatalf("defaults = %+v, %v", c, err)
	}
	for name, opt := range map[string]mq.SubscribeOption{
		"zero concurrency": mq.Concurrency(0),
		"huge concurrency": mq.Concurrency(math.MaxInt),
		"bad start":        mq.StartAt(mq.StartPosition(7)),
		"nil backoff":      mq.Backoff(nil),
		"bad group":        mq.Group("has space"),
	} {
		if _, err := NewSubscribeConfig("", mq.Latest, []mq.SubscribeOption{opt}); !errors.Is(err, mq.ErrInvalidOption) {
			t.Errorf("%s: error = %v, want ErrInvalidOption", name, err)
		}
	}
	c, _ = NewSubscribeConfig("", mq.Latest, []mq.SubscribeOption{mq.Backoff(mq.ExponentialBackoff(time.Second, time.Minute))})
	if d := c.RedeliveryDelay(1, mq.RetryAfter(errors.New("x"), 5*time.Second)); d != 5*time.Second {
		t.Errorf("RedeliveryDelay with RetryAfter = %v, want 5s", d)
	}
	if d := c.RedeliveryDelay(2, errors.New("x")); d != 2*time.Second {
		t.Errorf("RedeliveryDelay(2) = %v, want 2s", d)
	}
}
