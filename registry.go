package mq

import (
	"context"
	"errors"
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
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
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

// encodeHint tells how to write a password with reserved characters.
const encodeHint = "percent-encode reserved characters in a user name or password ('#' as %23, '?' as %3F, '/' as %2F, '@' as %40, ':' as %3A)"

// parseURL parses rawURL without ever echoing a byte of it in an error:
// a password with a reserved character ('#', '?', '/') splits the URL in
// the wrong place, and the pieces would otherwise show up as a "port", a
// host or a parameter name.
func parseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		why := "it is malformed"
		var ue *url.Error
		if errors.As(err, &ue) {
			msg := ue.Err.Error()
			switch {
			case strings.Contains(msg, "invalid port"):
				why = "its port is not a number (a password holding '#', '?' or '/' cuts the URL there)"
			case strings.Contains(msg, "invalid URL escape"):
				why = "it holds a malformed percent escape"
			case strings.Contains(msg, "invalid userinfo"):
				why = "its user info holds characters that must be percent-encoded"
			case strings.Contains(msg, "invalid character"), strings.Contains(msg, "invalid control character"):
				why = "it holds a character that is not allowed in a URL"
			case strings.Contains(msg, "missing protocol scheme"):
				why = "it has no scheme; use one of " + schemeList() + ", e.g. mem://"
			}
		}
		return nil, fmt.Errorf("%w: cannot parse the URL: %s; %s", ErrInvalidURL, why, encodeHint)
	}
	if strings.Contains(rawURL, "#") {
		// No driver URL has a fragment: this is a password holding '#'.
		return nil, fmt.Errorf("%w: the URL holds a '#', which no driver URL has (a password holding '#' cuts the URL there); %s", ErrInvalidURL, encodeHint)
	}
	if u.Opaque != "" && strings.Contains(u.Opaque, "@") {
		// "user:secret@host" without "scheme://" parses as scheme "user".
		return nil, fmt.Errorf("%w: the URL has no scheme:// before its host; write it as scheme://user:password@host", ErrInvalidURL)
	}
	if strings.Contains(u.EscapedPath(), "@") {
		// "amqp://user:12/x@host/" parses with host "user:12" and the
		// '@' that should have ended the user info left in the path.
		return nil, fmt.Errorf("%w: the URL's path holds an '@', as when a password holds '/' or '?'; %s", ErrInvalidURL, encodeHint)
	}
	if strings.Contains(u.RawQuery, "@") {
		// A literal '@' in the query is the tail of user info that a
		// password holding '?' cut early ("user:p@h?x@host"). Values that
		// hold an '@' write it as %40.
		return nil, fmt.Errorf("%w: the URL's query holds an '@', as when a password holds '?' (write an '@' in a parameter value as %%40); %s", ErrInvalidURL, encodeHint)
	}
	return u, nil
}
