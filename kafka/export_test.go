package kafka

import (
	"context"
	"net"
	"net/url"

	"github.com/seedmq/mq"
)

// OpenDialing opens rawURL as mq.Open does, with every connection the
// broker makes (bootstrap, partition leaders, group coordinator) opened
// by dial. It lets the external tests route the driver through a proxy.
func OpenDialing(ctx context.Context, rawURL string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (mq.Broker, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	o, err := optionsFromURL(u)
	if err != nil {
		return nil, err
	}
	o.dial = dial
	return New(ctx, o)
}
