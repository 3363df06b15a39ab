package driver

import (
	"fmt"

	"github.com/seedmq/mq"
)

// StartSubscribe does what every driver's Subscribe does first, in the
// same order on every driver: it checks the arguments (a nil handler is
// mq.ErrInvalidOption, a malformed topic name mq.ErrInvalidTopic, bad
// options as NewSubscribeConfig says), then registers the call with l
// (mq.ErrClosed once Close has begun). On success the caller must call
// exit when Subscribe returns, which also sends the subscription's last
// state report (not connected, stopped; see mq.WatchState); the driver adds its broker's
// own checks after this.
func StartSubscribe(l *Lifecycle, topic string, h mq.Handler, defaultGroup string, defaultStart mq.StartPosition, opts []mq.SubscribeOption) (cfg SubscribeConfig, exit func(), err error) {
	if h == nil {
		return cfg, nil, fmt.Errorf("%w: Subscribe needs a handler, got nil", mq.ErrInvalidOption)
	}
	if err := ValidateName("topic", topic); err != nil {
		return cfg, nil, err
	}
	if cfg, err = NewSubscribeConfig(defaultGroup, defaultStart, opts); err != nil {
		return cfg, nil, err
	}
	leave, err := l.Enter()
	if err != nil {
		return cfg, nil, err
	}
	if cfg.state == nil {
		return cfg, leave, nil
	}
	return cfg, func() {
		cfg.stopped()
		leave()
	}, nil
}

// CheckPublish does what every driver's Publish does first: it checks the
// topic name (mq.ErrInvalidTopic) and the messages (PrepareMessages, which
// also fills empty IDs), then reports mq.ErrClosed once l's Close has
// begun. Nothing has been sent when it returns an error.
func CheckPublish(l *Lifecycle, topic string, msgs []*mq.Message, lim Limits) error {
	if err := ValidateName("topic", topic); err != nil {
		return err
	}
	if err := PrepareMessages(msgs, lim); err != nil {
		return err
	}
	return l.Err()
}
