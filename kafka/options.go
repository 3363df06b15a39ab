package kafka

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Defaults for Options fields left at their zero value.
const (
	DefaultPartitions        = 3
	DefaultReplicationFactor = 1
	DefaultBatchSize         = 100
	DefaultBatchTimeout      = time.Millisecond
	DefaultDialTimeout       = 10 * time.Second
	DefaultSessionTimeout    = 10 * time.Second
	DefaultHeartbeatInterval = 500 * time.Millisecond
	DefaultRebalanceTimeout  = 30 * time.Second
	DefaultCommitInterval    = 100 * time.Millisecond
	DefaultClientID          = "mq"
)

// Acks says how many replicas must store a published message before
// Publish returns. The zero value is AcksAll.
type Acks int

const (
	// AcksAll waits for every in-sync replica (Kafka's acks=all). Publish
	// then returns nil only for durably stored messages. This is the
	// default.
	AcksAll Acks = iota
	// AcksLeader waits for the partition leader only (acks=1): a message
	// can be lost if the leader fails before replicating it.
	AcksLeader
	// AcksNone does not wait at all (acks=0): Publish returns once the
	// request is written to the connection, and nothing tells the
	// publisher whether the broker kept it. It breaks mq's publish
	// contract and is meant only for fire-and-forget telemetry.
	AcksNone
)

func (a Acks) required() kafka.RequiredAcks {
	switch a {
	case AcksLeader:
		return kafka.RequireOne
	case AcksNone:
		return kafka.RequireNone
	}
	return kafka.RequireAll
}

// Isolation says which records of transactional producers Subscribe
// delivers. The zero value is ReadCommitted.
type Isolation int

const (
	// ReadCommitted delivers only records of committed transactions (and
	// every non-transactional record), as the Java client's
	// isolation.level=read_committed does: records of aborted
	// transactions are dropped and a partition is read only up to its
	// last stable offset (the first open transaction). This is the
	// default.
	ReadCommitted Isolation = iota
	// ReadUncommitted delivers every record, including those of aborted
	// and still open transactions.
	ReadUncommitted
)

// wire returns the isolation level as Fetch requests encode it.
func (i Isolation) wire() int8 {
	if i == ReadUncommitted {
		return int8(kafka.ReadUncommitted)
	}
	return int8(kafka.ReadCommitted)
}

// Options configures a Broker made with New. Only Brokers is required;
// every other zero field takes the default named in its comment. Negative
// numbers and durations are invalid. Each field but Brokers, TLS, SASL and
// Logger has a URL parameter of the same name in snake_case (see the
// package documentation).
type Options struct {
	// Brokers lists the bootstrap brokers as host:port.
	Brokers []string

	// Group is the consumer group Subscribe uses when no mq.Group option is
	// given. Empty means Subscribe requires mq.Group.
	Group string

	// ExactGroupID uses the mq group name as the Kafka consumer group ID.
	// By default the ID is "<group>.<topic>": each topic's subscribers of
	// a group form a consumer group of their own, so Provision can always
	// set a new group's start offsets (Kafka refuses offset commits from
	// outside a group with active members, as a group shared by several
	// topics would have) and a rebalance on one topic does not pause the
	// others. Set it to take over an existing consumer group, accepting
	// that Provision cannot set start offsets for a group already active
	// on other topics.
	ExactGroupID bool

	// ClientID identifies this client to the brokers. Default "mq".
	ClientID string

	// NoProvision makes Publish and Subscribe use existing topics only: a
	// missing topic is an error wrapping mq.ErrNotFound. By default a
	// missing topic is created with Partitions and ReplicationFactor.
	// Provision creates topics in either case. URL parameter:
	// provision=false.
	NoProvision bool

	// Partitions is the partition count of topics the driver creates.
	// Default 3.
	Partitions int

	// ReplicationFactor is the replication factor of topics the driver
	// creates. Default 1 (fine for a single broker; use 3 in production).
	ReplicationFactor int

	// StartAt is where a new group starts when Subscribe is given no
	// mq.StartAt option. Default mq.Latest.
	StartAt mq.StartPosition

	// Acks is how many replicas must store a message before Publish
	// returns. Default AcksAll.
	Acks Acks

	// Compression compresses published batches. Default none.
	Compression kafka.Compression

	// BatchSize is the most messages sent to one partition in one produce
	// request. Default 100.
	BatchSize int

	// BatchTimeout is ignored: Publish sends a partition's messages as soon
	// as its previous request is answered, never after a timer (see
	// Publishing in the package documentation). It is kept, with its URL
	// parameter, so that existing configurations still load, and sets the
	// BatchTimeout of the kafka.Writer that As returns.
	BatchTimeout time.Duration

	// MaxMessageBytes overrides the broker's message.max.bytes, which New
	// reads from the broker (and assumes to be Kafka's default, 1048588,
	// when the broker does not say). Set it lower when topics have a lower
	// max.message.bytes.
	MaxMessageBytes int

	// TLS enables TLS with this configuration. Default plain TCP.
	TLS *tls.Config

	// SASL authenticates with this mechanism (see packages
	// github.com/segmentio/kafka-go/sasl/plain and .../sasl/scram).
	// Default none.
	SASL sasl.Mechanism

	// DialTimeout bounds each connection attempt. Default 10s.
	DialTimeout time.Duration

	// SessionTimeout is the consumer group session timeout: a member that
	// crashes is replaced after it. It must lie within the broker's
	// group.min.session.timeout.ms and group.max.session.timeout.ms.
	// Default 10s.
	SessionTimeout time.Duration

	// HeartbeatInterval is how often a member checks in with the group
	// coordinator, and so how quickly it learns of a rebalance. Default
	// 500ms.
	HeartbeatInterval time.Duration

	// RebalanceTimeout is how long the coordinator waits for members to
	// rejoin during a rebalance; a member handling the messages it already
	// fetched holds the rebalance up to three quarters of it. Default 30s.
	RebalanceTimeout time.Duration

	// CommitInterval is how often acknowledged offsets are committed.
	// Offsets are also committed when a partition is revoked and when a
	// subscription stops. Default 100ms.
	CommitInterval time.Duration

	// Isolation is which records of transactional producers Subscribe
	// delivers. Default ReadCommitted. Transaction markers are never
	// delivered.
	Isolation Isolation

	// Logger receives the driver's log records. Default slog.Default().
	Logger *slog.Logger

	// dial, if set, opens the transports' connections (tests route them
	// through a proxy that can stall).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// withDefaults returns o with zero fields set to their defaults.
func (o Options) withDefaults() Options {
	setDefault(&o.ClientID, DefaultClientID)
	setDefault(&o.Partitions, DefaultPartitions)
	setDefault(&o.ReplicationFactor, DefaultReplicationFactor)
	setDefault(&o.BatchSize, DefaultBatchSize)
	setDefault(&o.BatchTimeout, DefaultBatchTimeout)
	setDefault(&o.DialTimeout, DefaultDialTimeout)
	setDefault(&o.SessionTimeout, DefaultSessionTimeout)
	setDefault(&o.HeartbeatInterval, DefaultHeartbeatInterval)
	setDefault(&o.RebalanceTimeout, DefaultRebalanceTimeout)
	setDefault(&o.CommitInterval, DefaultCommitInterval)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// validate reports options New cannot use, after withDefaults.
func (o Options) validate() error {
	if len(o.Brokers) == 0 {
		return fmt.Errorf("kafka: %w: Options.Brokers is empty; give at least one host:port", mq.ErrInvalidOption)
	}
	for _, b := range o.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("kafka: %w: broker address %q: want host:port", mq.ErrInvalidOption, b)
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"BatchSize", int64(o.BatchSize)},
		{"BatchTimeout", int64(o.BatchTimeout)},
		{"MaxMessageBytes", int64(o.MaxMessageBytes)},
		{"DialTimeout", int64(o.DialTimeout)},
		{"SessionTimeout", int64(o.SessionTimeout)},
		{"HeartbeatInterval", int64(o.HeartbeatInterval)},
		{"RebalanceTimeout", int64(o.RebalanceTimeout)},
		{"CommitInterval", int64(o.CommitInterval)},
	} {
		if n.v < 0 {
			return fmt.Errorf("kafka: %w: %s is negative; leave it zero for the default", mq.ErrInvalidOption, n.name)
		}
	}
	switch {
	case o.Partitions < 1:
		return fmt.Errorf("kafka: %w: Partitions is %d; want at least 1", mq.ErrInvalidOption, o.Partitions)
	case o.ReplicationFactor < 1:
		return fmt.Errorf("kafka: %w: ReplicationFactor is %d; want at least 1", mq.ErrInvalidOption, o.ReplicationFactor)
	case o.Acks < AcksAll || o.Acks > AcksNone:
		return fmt.Errorf("kafka: %w: Acks is %d; use AcksAll, AcksLeader or AcksNone", mq.ErrInvalidOption, o.Acks)
	case o.Isolation != ReadCommitted && o.Isolation != ReadUncommitted:
		return fmt.Errorf("kafka: %w: Isolation is %d; use ReadCommitted or ReadUncommitted", mq.ErrInvalidOption, o.Isolation)
	case o.StartAt != mq.Latest && o.StartAt != mq.Earliest:
		return fmt.Errorf("kafka: %w: StartAt is %v; use mq.Latest or mq.Earliest", mq.ErrInvalidOption, o.StartAt)
	case o.HeartbeatInterval >= o.SessionTimeout:
		return fmt.Errorf("kafka: %w: HeartbeatInterval (%v) must be shorter than SessionTimeout (%v)", mq.ErrInvalidOption, o.HeartbeatInterval, o.SessionTimeout)
	}
	if o.Group != "" {
		if err := driver.ValidateName("group", o.Group); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
	}
	return nil
}

// optionsFromURL reads a kafka:// URL. See the package documentation for
// its parameters.
func optionsFromURL(u *url.URL) (Options, error) {
	var o Options
	if u.Host == "" {
		return o, fmt.Errorf("kafka: %w: %q has no broker address; use kafka://host:9092[,host2:9092]", mq.ErrInvalidURL, driver.Redact(u))
	}
	if u.Path != "" && u.Path != "/" {
		return o, fmt.Errorf("kafka: %w: unexpected path %q; the URL is kafka://host:port[,host:port]?param=value", mq.ErrInvalidURL, u.Path)
	}
	for _, h := range strings.Split(u.Host, ",") {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return o, fmt.Errorf("kafka: %w: broker address %q: want host:port", mq.ErrInvalidURL, h)
		}
		o.Brokers = append(o.Brokers, h)
	}

	p := driver.NewParams("kafka", u)
	o.Group = p.Group()
	o.ExactGroupID = p.Bool("exact_group_id", false)
	o.ClientID = p.String("client_id", DefaultClientID)
	o.NoProvision = !p.Provision()
	o.Partitions = p.Int("partitions", DefaultPartitions, 1, 100000)
	o.ReplicationFactor = p.Int("replication_factor", DefaultReplicationFactor, 1, 32767)
	p.Renamed("replication", "replication_factor")
	if p.Enum("start_at", "latest", "latest", "earliest") == "earliest" {
		o.StartAt = mq.Earliest
	}
	p.Renamed("start", "start_at")
	switch p.Enum("acks", "all", "all", "leader", "none") {
	case "leader":
		o.Acks = AcksLeader
	case "none":
		o.Acks = AcksNone
	}
	switch p.Enum("compression", "none", "none", "gzip", "snappy", "lz4", "zstd") {
	case "gzip":
		o.Compression = kafka.Gzip
	case "snappy":
		o.Compression = kafka.Snappy
	case "lz4":
		o.Compression = kafka.Lz4
	case "zstd":
		o.Compression = kafka.Zstd
	}
	o.BatchSize = p.Int("batch_size", DefaultBatchSize, 1, 1000000)
	o.BatchTimeout = p.Duration("batch_timeout", DefaultBatchTimeout, time.Microsecond, time.Minute)
	o.MaxMessageBytes = p.MaxMessageBytes(0, 1024, 1<<30)
	o.DialTimeout = p.Duration("dial_timeout", DefaultDialTimeout, time.Millisecond, 10*time.Minute)
	o.SessionTimeout = p.Duration("session_timeout", DefaultSessionTimeout, time.Second, time.Hour)
	o.HeartbeatInterval = p.Duration("heartbeat_interval", DefaultHeartbeatInterval, 10*time.Millisecond, time.Hour)
	o.RebalanceTimeout = p.Duration("rebalance_timeout", DefaultRebalanceTimeout, time.Second, time.Hour)
	o.CommitInterval = p.Duration("commit_interval", DefaultCommitInterval, time.Millisecond, time.Hour)
	if p.Enum("isolation", "read_committed", "read_committed", "read_uncommitted") == "read_uncommitted" {
		o.Isolation = ReadUncommitted
	}
	tlsFiles, tlsOn := p.TLS(false)

	mech := p.Enum("sasl", "", "plain", "scram-sha-256", "scram-sha-512")
	user := p.String("sasl_user", "")
	passEnv := p.String("sasl_password_env", "")
	passFile := p.String("sasl_password_file", "")
	if err := p.Err(); err != nil {
		return o, err
	}

	if tlsOn {
		t, err := tlsFiles.Config("kafka")
		if err != nil {
			return o, err
		}
		o.TLS = t
	}
	m, err := saslMechanism(u, mech, user, passEnv, passFile)
	if err != nil {
		return o, err
	}
	o.SASL = m
	return o, nil
}

// saslMechanism builds the SASL mechanism from the URL. The user name comes
// from the URL's user info or sasl_user; the password from the user info,
// the environment variable named by sasl_password_env, or the file named by
// sasl_password_file. Passwords never appear in errors.
func saslMechanism(u *url.URL, mech, user, passEnv, passFile string) (sasl.Mechanism, error) {
	var pass string
	var passSet bool
	if u.User != nil {
		if user != "" {
			return nil, fmt.Errorf("kafka: %w: the user is given both in the URL and as sasl_user; give it once", mq.ErrInvalidURL)
		}
		user = u.User.Username()
		pass, passSet = u.User.Password()
	}
	sources := 0
	if passSet {
		sources++
	}
	if passEnv != "" {
		sources++
		v, ok := os.LookupEnv(passEnv)
		if !ok {
			return nil, fmt.Errorf("kafka: %w: sasl_password_env names %q, which is not set", mq.ErrInvalidURL, passEnv)
		}
		pass = v
	}
	if passFile != "" {
		sources++
		b, err := os.ReadFile(passFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: %w: sasl_password_file: %v", mq.ErrInvalidURL, err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	}
	if sources > 1 {
		return nil, fmt.Errorf("kafka: %w: give the SASL password one way only (URL, sasl_password_env or sasl_password_file)", mq.ErrInvalidURL)
	}
	if mech == "" {
		if user != "" || sources > 0 {
			return nil, fmt.Errorf("kafka: %w: credentials given without sasl=plain|scram-sha-256|scram-sha-512", mq.ErrInvalidURL)
		}
		return nil, nil
	}
	if user == "" {
		return nil, fmt.Errorf("kafka: %w: sasl=%s needs a user (kafka://user@host or sasl_user)", mq.ErrInvalidURL, mech)
	}
	switch mech {
	case "plain":
		return plain.Mechanism{Username: user, Password: pass}, nil
	case "scram-sha-256", "scram-sha-512":
		algo := scram.SHA256
		if mech == "scram-sha-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, user, pass)
		if err != nil {
			// The error names the problem (such as an invalid user name),
			// never the password.
			return nil, fmt.Errorf("kafka: %w: sasl=%s: %v", mq.ErrInvalidURL, mech, err)
		}
		return m, nil
	}
	return nil, nil
}
