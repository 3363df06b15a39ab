package rabbitmq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
)

// management asks RabbitMQ's management plugin (its HTTP API) what AMQP
// cannot tell: how many messages of a queue are delivered and not yet
// acknowledged, and how many wait in the group's delay queues.
type management struct {
	base       *url.URL // scheme, host and path prefix of the API, without /api
	shown      string   // base as text, for messages
	user, pass string   // from the amqp URL's user info
	vhost      string
	client     *http.Client
}

// parseManagement checks raw, the management URL, and returns it without
// a trailing slash. It accepts http and https URLs with a host and an
// optional path prefix (a reverse proxy's), and nothing else: user info,
// a query or a fragment are errors, and the message never repeats raw's
// user info.
func parseManagement(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: %w: management: not a URL (want http://host:15672)", mq.ErrInvalidURL)
	}
	switch {
	case u.User != nil:
		return nil, fmt.Errorf("rabbitmq: %w: management: the URL must not carry user info; the credentials are the amqp URL's", mq.ErrInvalidURL)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("rabbitmq: %w: management: scheme %q: want http or https (e.g. http://host:15672)", mq.ErrInvalidURL, u.Scheme)
	case u.Host == "":
		return nil, fmt.Errorf("rabbitmq: %w: management: %q has no host (want http://host:15672)", mq.ErrInvalidURL, raw)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("rabbitmq: %w: management: %s: a query or fragment is not allowed", mq.ErrInvalidURL, u.Scheme+"://"+u.Host+u.Path)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// newManagement returns a client of the management API at base for the
// user, password and vhost of dialURL (amqp091-go's defaults, guest and
// "/", where the URL has none).
func newManagement(base *url.URL, dialURL string) (*management, error) {
	uri, err := amqp.ParseURI(dialURL)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: %w: %v", mq.ErrInvalidURL, err)
	}
	return &management{
		base:   base,
		shown:  base.String(),
		user:   uri.Username,
		pass:   uri.Password,
		vhost:  uri.Vhost,
		client: &http.Client{},
	}, nil
}

// queueCounts is what the management API reports of one queue; a count
// is nil until the plugin has sampled the queue once.
type queueCounts struct {
	Name     string `json:"name"`
	Messages *int64 `json:"messages"`
	Unacked  *int64 `json:"messages_unacknowledged"`
}

// counts returns the messages of queue delivered and not acknowledged
// (-1 when the plugin has not sampled the queue yet) and the messages
// waiting in its delay queues, in one request.
func (m *management) counts(ctx context.Context, queue string) (unacked, delayed int64, err error) {
	pattern := "^" + regexp.QuoteMeta(queue) + `(\.mq-delay-[0-9]+)?$`
	q := url.Values{
		"page":      {"1"},
		"page_size": {"500"},
		"use_regex": {"true"},
		"name":      {pattern},
		"columns":   {"name,messages,messages_unacknowledged"},
	}
	target := m.shown + "/api/queues/" + url.PathEscape(m.vhost) + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("rabbitmq: management %s: %w", m.shown, err)
	}
	req.SetBasicAuth(m.user, m.pass)
	req.Header.Set("Accept", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, 0, fmt.Errorf("rabbitmq: management %s: %w", m.shown, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, 0, fmt.Errorf("rabbitmq: management %s: %w", m.shown, err)
	}
	if resp.StatusCode != http.StatusOK {
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			hint = " (the amqp URL's user is refused: it needs the management, monitoring or administrator tag)"
		case http.StatusNotFound:
			hint = fmt.Sprintf(" (no vhost %q, or not the management API)", m.vhost)
		}
		return 0, 0, fmt.Errorf("rabbitmq: management %s: HTTP %d%s", m.shown, resp.StatusCode, hint)
	}
	var page struct {
		Items []queueCounts `json:"items"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return 0, 0, fmt.Errorf("rabbitmq: management %s: unexpected answer: %v", m.shown, err)
	}
	unacked = -1
	for _, it := range page.Items {
		switch {
		case it.Name == queue:
			if it.Unacked != nil {
				unacked = *it.Unacked
			}
		case it.Messages != nil:
			delayed += *it.Messages
		}
	}
	return unacked, delayed, nil
}
