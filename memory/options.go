package memory

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Defaults and limits for Options.
const (
	// DefaultMaxMessageBytes is the default Options.MaxMessageBytes: 1 MiB,
	// Kafka's default limit, so code tested here fits real brokers.
	DefaultMaxMessageBytes = 1 << 20
	// DefaultMaxDelay is the longest Message.Delay accepted, SQS's limit.
	DefaultMaxDelay = 15 * time.Minute
)

// Options configures a Broker. The zero value is a private broker with
// the defaults below. New rejects negative values and a malformed Group
// with an error wrapping mq.ErrInvalidOption.
type Options struct {
	// Name selects a process-wide in-memory server: every Broker opened
	// with the same non-empty Name shares its topics, groups and messages,
	// as connections to one real broker do. An empty Name gives the Broker
	// a private server of its own. Named servers live as long as the
	// process.
	Name string
	// Group is the group used by Subscribe calls without mq.Group.
	// Default: none, so Subscribe then fails with mq.ErrInvalidOption.
	Group string
	// NoProvision makes Publish and Subscribe fail with mq.ErrNotFound for
	// topics and groups not created by Provision, as brokers whose
	// topology is owned by infrastructure do. Default false: they are
	// created on first use.
	NoProvision bool
	// MaxMessageBytes is the largest mq.Message.Size accepted. Default
	// (0) DefaultMaxMessageBytes.
	MaxMessageBytes int
	// MaxHeaders is the most headers a message may carry. Default 0, no
	// limit. Set 10 to catch code that would break on SQS.
	MaxHeaders int
	// MaxKeyBytes is the longest Message.Key accepted, in bytes. Default
	// 0, no limit. Set 255 to catch code that would break on RabbitMQ.
	MaxKeyBytes int
	// MaxHeaderKeyBytes is the longest header key accepted, in bytes.
	// Default 0, no limit.
	MaxHeaderKeyBytes int
	// MaxHeaderBytes is the most bytes a message's header keys and values
	// may take together. Default 0, no limit.
	MaxHeaderBytes int
	// AckDeadline, when positive, is how long a handler may hold a message
	// before it is redelivered to another consumer while the first still
	// works on it, as SQS's visibility timeout does. The late handler's
	// acknowledgement is then discarded. Default 0: no deadline.
	AckDeadline time.Duration
	// Retain is how many of its newest messages each topic keeps in its
	// log for groups created later with mq.StartAt(mq.Earliest), as
	// Kafka's retention limits what a new consumer group can replay.
	// Dropping a message from the log never takes it from a group that
	// already has it: it stays until acknowledged. Default 0: keep every
	// message for as long as the server exists, so that a topic's memory
	// grows with everything published to it; set Retain for a
	// long-running process. On a named server, the Retain of the Broker
	// that publishes applies.
	Retain int
	// Logger receives driver logs (dropped permanent failures, handler
	// panics). Default slog.Default().
	Logger *slog.Logger
}

// withDefaults checks o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	for _, f := range []struct {
		name string
		neg  bool
	}{
		{"MaxMessageBytes", o.MaxMessageBytes < 0},
		{"MaxHeaders", o.MaxHeaders < 0},
		{"MaxKeyBytes", o.MaxKeyBytes < 0},
		{"MaxHeaderKeyBytes", o.MaxHeaderKeyBytes < 0},
		{"MaxHeaderBytes", o.MaxHeaderBytes < 0},
		{"AckDeadline", o.AckDeadline < 0},
		{"Retain", o.Retain < 0},
	} {
		if f.neg {
			return o, fmt.Errorf("memory: %w: Options.%s is negative; use 0 for the default", mq.ErrInvalidOption, f.name)
		}
	}
	if o.Group != "" {
		if err := driver.ValidateName("group", o.Group); err != nil {
			return o, fmt.Errorf("memory: Options.Group: %w", err)
		}
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// optionsFromURL parses a mem:// URL; see the package documentation.
func optionsFromURL(u *url.URL) (Options, error) {
	if u.User != nil || u.Path != "" && u.Path != "/" || u.Port() != "" {
		return Options{}, fmt.Errorf("memory: %w: use mem://NAME?param=value; the URL has a user, port or path", mq.ErrInvalidURL)
	}
	p := driver.NewParams("memory", u)
	p.Renamed("maxMessageBytes", "max_message_bytes")
	p.Renamed("maxHeaders", "max_headers")
	p.Renamed("ackDeadline", "ack_deadline")
	o := Options{
		Name:              u.Hostname(),
		Group:             p.Group(),
		NoProvision:       !p.Provision(),
		MaxMessageBytes:   p.MaxMessageBytes(DefaultMaxMessageBytes, 1, 1<<30),
		MaxHeaders:        p.Int("max_headers", 0, 0, 1<<16),
		MaxKeyBytes:       p.Int("max_key_bytes", 0, 0, 1<<30),
		MaxHeaderKeyBytes: p.Int("max_header_key_bytes", 0, 0, 1<<30),
		MaxHeaderBytes:    p.Int("max_header_bytes", 0, 0, 1<<30),
		AckDeadline:       p.Duration("ack_deadline", 0, 0, 24*time.Hour),
		Retain:            p.Int("retain", 0, 0, 1<<30),
	}
	return o, p.Err()
}
