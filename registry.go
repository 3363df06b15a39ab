package mq

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// OpenFunc opens a Broker from a parsed URL. Drivers register one per URL
// scheme with Register.
type OpenFunc func(ctx context.Context, u *url.URL) (Broker, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]OpenFunc{}
)

// Register makes a driver available under a URL scheme. Drivers call it
// from an init function, so a blank import registers them:
//
//	import _ "github.com/seedmq/mq/kafka"
//
// Register panics if open is nil or the scheme is already registered.
func Register(scheme string, open OpenFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if open == nil {
		panic("mq: Register open func is nil for scheme " + scheme)
	}
	scheme = strings.ToLower(scheme)
	if _, dup := registry[scheme]; dup {
		panic("mq: Register called twice for scheme " + scheme)
	}
	registry[scheme] = open
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	s := make([]string, 0, len(registry))
	for k := range registry {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// Open connects to the broker named by rawURL, whose scheme selects the
// driver: mem://, kafka://, amqp:// or amqps://, sqs://, or any other
// registered one. Each driver's package documentation lists its URL
// parameters and their defaults; unknown or malformed parameters are
// errors. Errors never include the URL's password.
//
// Open blocks until the driver has checked what it can check at once
// (drivers document whether they connect eagerly), bounded by ctx.
func Open(ctx context.Context, rawURL string) (Broker, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the URL, password included: say only what is wrong.
		var ue *url.Error
		if e, ok := err.(*url.Error); ok {
			ue = e
			return nil, fmt.Errorf("%w: cannot parse: %v", ErrInvalidURL, ue.Err)
		}
		return nil, fmt.Errorf("%w: cannot parse", ErrInvalidURL)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: %q has no scheme; use one of %s, e.g. mem://", ErrInvalidURL, u.Redacted(), schemeList())
	}
	registryMu.RLock()
	open := registry[strings.ToLower(u.Scheme)]
	registryMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("%w: unknown scheme %q (registered: %s); forgotten import of the driver package, such as _ \"github.com/seedmq/mq/%s\"?",
			ErrInvalidURL, u.Scheme, schemeList(), suggestPackage(u.Scheme))
	}
	return open(ctx, u)
}

func schemeList() string {
	s := Schemes()
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func suggestPackage(scheme string) string {
	switch strings.ToLower(scheme) {
	case "amqp", "amqps":
		return "rabbitmq"
	case "mem":
		return "memory"
	case "kafka", "sqs":
		return scheme
	}
	return "memory"
}
