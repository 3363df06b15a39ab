package rabbitmq

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Queue types for Options.QueueType.
const (
	// QueueQuorum is a replicated, durable queue that counts deliveries
	// (x-delivery-count), which makes Message.Attempt exact. The default.
	QueueQuorum = "quorum"
	// QueueClassic is RabbitMQ's original queue type.
	QueueClassic = "classic"
)

// Defaults of Options.
const (
	// DefaultMaxMessageBytes is the default Options.MaxMessageBytes: 16 MiB,
	// the broker-wide max_message_size default of RabbitMQ 4 (3.x allows
	// 128 MiB), so the default is safe on every supported version.
	DefaultMaxMessageBytes = 16 << 20
	// DefaultPublishChannels is the default Options.PublishChannels.
	DefaultPublishChannels = 2
	// DefaultConfirmWindow is the default Options.ConfirmWindow.
	DefaultConfirmWindow = 1024
	// DefaultReconnectMax is the default Options.ReconnectMax.
	DefaultReconnectMax = 5 * time.Second
	// maxPublishChannels, maxConfirmWindow, maxMessageBytes and
	// maxQueueExpires bound the options of the same names.
	maxPublishChannels = 64
	maxConfirmWindow   = 1 << 16
	maxMessageBytes    = 512 << 20
	maxQueueExpires    = 1 << 31 * time.Millisecond
	// maxHeaderBytes bounds what a message's header table may take, so that
	// it fits the content-header frame (RabbitMQ's frame_max is 128 KiB;
	// the rest is left to AMQP properties).
	maxHeaderBytes = 64 << 10
)

// Message limits, reported in Capabilities and checked by Publish before
// anything is sent.
const (
	// MaxKeyBytes is the longest Message.Key and the longest header key
	// (Capabilities.MaxKeyBytes and MaxHeaderKeyBytes): both are AMQP
	// short strings.
	MaxKeyBytes = 255
	// MaxHeaders is the most headers a message may carry
	// (Capabilities.MaxHeaders).
	MaxHeaders = 4096
	// MaxHeaderBytes is the most bytes a message's header keys and values
	// may take together (Capabilities.MaxHeaderBytes). The header table,
	// Key, an ID over 255 bytes and 6 bytes of framing per header travel
	// in one 64 KiB budget of the content-header frame: MaxHeaders headers
	// within MaxHeaderBytes leave room for the Key and an ID of up to 7
	// KiB; a longer ID that no longer fits is mq.ErrMessageTooLarge.
	MaxHeaderBytes = 32 << 10
)

// Options configures a Broker made by New. The zero value of every field
// is a sane default, documented on the field; only URL is required. New
// rejects a value out of its field's range with an error wrapping
// mq.ErrInvalidOption.
type Options struct {
	// URL is the broker's amqp:// or amqps:// URL: user, password, host,
	// port and vhost (the path). Query parameters are read as Open reads
	// them (see the package documentation); fields set here win over
	// parameters in the URL.
	URL string

	// Config holds the connection settings passed to amqp091-go: SASL
	// mechanisms, TLSClientConfig, Heartbeat, FrameSize, Properties, Dial
	// and so on. The zero value uses amqp091-go's defaults (10s heartbeat,
	// 128 KiB frames) with a TLS configuration built from the URL for
	// amqps. Config.Recovery must be nil: the driver reconnects itself.
	// Config.Vhost overrides the URL's vhost when set.
	Config amqp.Config

	// Group is the default consumer group, used by Subscribe calls without
	// the mq.Group option. Empty means every Subscribe must name one.
	Group string

	// QueueType is the type of the group queues and delay queues the
	// driver declares: QueueQuorum (default) or QueueClassic.
	QueueType string

	// ExchangeType is the kind of the topic exchanges the driver declares:
	// "fanout" (default), "topic" or "direct". Messages are published with
	// Message.Key as the routing key.
	ExchangeType string

	// BindingKey binds group queues to their topic exchange. Default "#"
	// for topic exchanges and "" otherwise (fanout ignores it; a direct
	// exchange then routes only messages with an empty Key).
	BindingKey string

	// Prefetch is the consumer prefetch count (unacknowledged deliveries
	// per subscription). Default 0 means twice the subscription's
	// Concurrency.
	Prefetch int

	// NoProvision makes the driver use existing topology only: it declares
	// nothing, checks exchanges and queues passively, and reports missing
	// ones as mq.ErrNotFound. Without delay queues, failed messages are
	// redelivered at once (Capabilities.NackDelay is false).
	NoProvision bool

	// DeadLetterExchange, when set, is declared as the group queues'
	// x-dead-letter-exchange: messages rejected with mq.Permanent go there.
	DeadLetterExchange string

	// QueueExpires, when positive, makes RabbitMQ delete a group queue
	// (and its delay queues) that has had no consumer for that long
	// (x-expires), messages included: for short-lived groups and tests.
	// At most 2^31 ms (about 24 days). Default 0: queues live until
	// deleted.
	QueueExpires time.Duration

	// AllowUnroutable makes Publish report success for messages the topic
	// exchange could not route to any queue (the broker drops them). By
	// default Publish fails them with an error wrapping mq.ErrNotFound.
	AllowUnroutable bool

	// PublishChannels is how many confirm-mode channels concurrent Publish
	// calls share, up to 64. Default DefaultPublishChannels.
	PublishChannels int

	// ConfirmWindow is the most messages awaiting a publisher confirm on
	// one channel, up to 65536; Publish waits while it is full. Default
	// DefaultConfirmWindow.
	ConfirmWindow int

	// MaxMessageBytes is the largest mq.Message.Size Publish accepts, up
	// to 512 MiB. Default DefaultMaxMessageBytes. Raising it above the broker's
	// max_message_size makes the broker reject larger messages (reported
	// as mq.ErrMessageTooLarge).
	MaxMessageBytes int

	// ReconnectMax caps the backoff between reconnection attempts, which
	// starts at 50ms and doubles. Default DefaultReconnectMax.
	ReconnectMax time.Duration

	// Logger receives reconnects, dropped messages and settle failures.
	// Default slog.Default().
	Logger *slog.Logger

	// Management is the base URL of the broker's management plugin HTTP
	// API (http://host:15672, or https, with a reverse proxy's path prefix
	// if any). When set, Backlog asks it for the messages delivered and not
	// yet acknowledged and for those waiting in the group's delay queues,
	// which AMQP does not report, signing in with the user and password of
	// URL. It must carry no user info, query or fragment. Default empty:
	// Backlog counts ready messages only and says so in its Note.
	Management string
}

// settings is Options with defaults applied and the URL split into what
// amqp091-go dials and what the driver reads.
type settings struct {
	Options
	mgmt     *management // nil without Options.Management
	dialURL  string      // URL without query parameters, for amqp091-go (the first host's)
	redacted string      // URL without password, for messages (every host)
	hosts    []endpoint  // one per host of the URL, in the URL's order
}

// endpoint is one host of a URL that names several
// (amqp://user:pass@h1:5672,h2:5672/vhost): the URL amqp091-go dials to
// reach it, and the same without password for messages.
type endpoint struct {
	dialURL, redacted string
}

// parseURL reads the query parameters of u into o, leaving fields already
// set in o alone.
func parseURL(u *url.URL, o *Options) error {
	if u.Scheme != Scheme && u.Scheme != SchemeTLS {
		return fmt.Errorf("rabbitmq: %w: scheme %q: use amqp or amqps", mq.ErrInvalidURL, u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("rabbitmq: %w: %s has no host", mq.ErrInvalidURL, driver.Redact(u))
	}
	p := driver.NewParams("rabbitmq", u)
	set := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	set(&o.Group, p.Group())
	set(&o.QueueType, p.Enum("queue_type", "", QueueQuorum, QueueClassic))
	set(&o.ExchangeType, p.Enum("exchange_type", "", "fanout", "topic", "direct"))
	set(&o.BindingKey, p.String("binding_key", ""))
	if o.Prefetch == 0 {
		o.Prefetch = p.Int("prefetch", 0, 0, 65535)
	} else {
		p.Int("prefetch", 0, 0, 65535)
	}
	if !p.Provision() {
		o.NoProvision = true
	}
	set(&o.DeadLetterExchange, p.String("dead_letter_exchange", ""))
	set(&o.Management, p.String("management", ""))
	if p.Bool("allow_unroutable", false) {
		o.AllowUnroutable = true
	}
	if n := p.Int("publish_channels", 0, 1, maxPublishChannels); o.PublishChannels == 0 {
		o.PublishChannels = n
	}
	if n := p.Int("confirm_window", 0, 1, maxConfirmWindow); o.ConfirmWindow == 0 {
		o.ConfirmWindow = n
	}
	if n := p.MaxMessageBytes(0, 1, maxMessageBytes); o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = n
	}
	if d := p.Duration("queue_expires", 0, time.Second, maxQueueExpires); o.QueueExpires == 0 {
		o.QueueExpires = d
	}
	if d := p.Duration("reconnect_max", 0, 10*time.Millisecond, 10*time.Minute); o.ReconnectMax == 0 {
		o.ReconnectMax = d
	}
	if d := p.Duration("heartbeat", 0, time.Second, time.Hour); o.Config.Heartbeat == 0 {
		o.Config.Heartbeat = d
	}
	p.Renamed("cacertfile", "tls_ca_file")
	p.Renamed("certfile", "tls_cert_file")
	p.Renamed("keyfile", "tls_key_file")
	p.Renamed("server_name", "tls_server_name")
	files, useTLS := p.TLS(u.Scheme == SchemeTLS)
	if err := p.Err(); err != nil {
		return err
	}
	// The scheme decides: amqp091-go speaks TLS on amqps:// only.
	if useTLS != (u.Scheme == SchemeTLS) {
		if useTLS {
			return fmt.Errorf("rabbitmq: %w: TLS parameters (tls, tls_ca_file, tls_cert_file, tls_key_file, tls_server_name, tls_insecure_skip_verify) need an amqps:// URL", mq.ErrInvalidURL)
		}
		return fmt.Errorf("rabbitmq: %w: tls=false on an amqps:// URL: use amqp:// for a connection without TLS", mq.ErrInvalidURL)
	}
	if files != (driver.TLSFiles{}) && o.Config.TLSClientConfig == nil {
		tc, err := files.Config("rabbitmq")
		if err != nil {
			return err
		}
		o.Config.TLSClientConfig = tc
	}
	return nil
}

// resolve validates o, applies defaults and returns the settings.
func resolve(o Options) (*settings, error) {
	if o.URL == "" {
		return nil, fmt.Errorf("rabbitmq: %w: Options.URL is empty", mq.ErrInvalidURL)
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		var ue *url.Error
		if e, ok := err.(*url.Error); ok {
			ue = e
			return nil, fmt.Errorf("rabbitmq: %w: cannot parse: %v", mq.ErrInvalidURL, ue.Err)
		}
		return nil, fmt.Errorf("rabbitmq: %w: cannot parse the URL", mq.ErrInvalidURL)
	}
	if err := parseURL(u, &o); err != nil {
		return nil, err
	}
	if o.Config.Recovery != nil {
		return nil, fmt.Errorf("rabbitmq: %w: Config.Recovery must be nil; the driver reconnects by itself", mq.ErrInvalidOption)
	}
	switch o.QueueType {
	case "":
		o.QueueType = QueueQuorum
	case QueueQuorum, QueueClassic:
	default:
		return nil, fmt.Errorf("rabbitmq: %w: QueueType %q: use %q or %q", mq.ErrInvalidOption, o.QueueType, QueueQuorum, QueueClassic)
	}
	switch o.ExchangeType {
	case "":
		o.ExchangeType = "fanout"
	case "fanout", "topic", "direct":
	default:
		return nil, fmt.Errorf("rabbitmq: %w: ExchangeType %q: use fanout, topic or direct", mq.ErrInvalidOption, o.ExchangeType)
	}
	if o.BindingKey == "" && o.ExchangeType == "topic" {
		o.BindingKey = "#"
	}
	if o.Group != "" {
		if err := driver.ValidateName("group", o.Group); err != nil {
			return nil, fmt.Errorf("rabbitmq: %w", err)
		}
	}
	if o.Prefetch < 0 || o.Prefetch > 65535 {
		return nil, fmt.Errorf("rabbitmq: %w: Prefetch %d: want 0 to 65535", mq.ErrInvalidOption, o.Prefetch)
	}
	if o.PublishChannels < 0 || o.PublishChannels > maxPublishChannels {
		return nil, fmt.Errorf("rabbitmq: %w: PublishChannels %d: want 1 to %d, or 0 for the default", mq.ErrInvalidOption, o.PublishChannels, maxPublishChannels)
	}
	if o.PublishChannels == 0 {
		o.PublishChannels = DefaultPublishChannels
	}
	if o.ConfirmWindow < 0 || o.ConfirmWindow > maxConfirmWindow {
		return nil, fmt.Errorf("rabbitmq: %w: ConfirmWindow %d: want 1 to %d, or 0 for the default", mq.ErrInvalidOption, o.ConfirmWindow, maxConfirmWindow)
	}
	if o.ConfirmWindow == 0 {
		o.ConfirmWindow = DefaultConfirmWindow
	}
	if o.MaxMessageBytes < 0 || o.MaxMessageBytes > maxMessageBytes {
		return nil, fmt.Errorf("rabbitmq: %w: MaxMessageBytes %d: want 1 to %d, or 0 for the default", mq.ErrInvalidOption, o.MaxMessageBytes, maxMessageBytes)
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.QueueExpires < 0 || o.QueueExpires > maxQueueExpires {
		return nil, fmt.Errorf("rabbitmq: %w: QueueExpires %v: want up to %v, or 0 for queues that never expire", mq.ErrInvalidOption, o.QueueExpires, maxQueueExpires)
	}
	if o.ReconnectMax < 0 {
		return nil, fmt.Errorf("rabbitmq: %w: ReconnectMax %v: want a positive duration, or 0 for the default", mq.ErrInvalidOption, o.ReconnectMax)
	}
	if o.ReconnectMax == 0 {
		o.ReconnectMax = DefaultReconnectMax
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	dial := *u
	dial.RawQuery = ""
	dial.ForceQuery = false
	dial.Fragment = ""
	s := &settings{Options: o, redacted: redact(&dial)}
	for _, h := range strings.Split(dial.Host, ",") {
		one := dial
		one.Host = h
		e := endpoint{dialURL: one.String(), redacted: redact(&one)}
		if h == "" {
			return nil, fmt.Errorf("rabbitmq: %w: %s: an empty host in the host list; separate hosts with single commas", mq.ErrInvalidURL, s.redacted)
		}
		if _, err := amqp.ParseURI(e.dialURL); err != nil {
			// amqp091-go's messages do not repeat the URL.
			return nil, fmt.Errorf("rabbitmq: %w: %s: %v", mq.ErrInvalidURL, e.redacted, err)
		}
		s.hosts = append(s.hosts, e)
	}
	s.dialURL = s.hosts[0].dialURL
	if o.Management != "" {
		base, err := parseManagement(o.Management)
		if err != nil {
			return nil, err
		}
		if s.mgmt, err = newManagement(base, s.dialURL); err != nil {
			return nil, err
		}
		if o.Config.Vhost != "" {
			s.mgmt.vhost = o.Config.Vhost
		}
	}
	return s, nil
}

// redact returns u as text without its user info or query.
func redact(u *url.URL) string { return driver.Redact(u) }
