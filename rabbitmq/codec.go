package rabbitmq

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
)

// Header keys the driver writes. They start with mq.ReservedHeaderPrefix,
// so user headers cannot collide with them, and are removed on delivery.
const (
	hdrKey     = "mq-key"     // Message.Key
	hdrID      = "mq-id"      // Message.ID when longer than AMQP's 255-byte message-id
	hdrAttempt = "mq-attempt" // attempts already made, on a redelivered copy
	hdrQueue   = "mq-queue"   // the queue hdrAttempt counts for
)

// brokerHeaders are header keys RabbitMQ adds itself (dead-lettering,
// quorum queue delivery counts). They are not user headers, so they are
// removed on delivery, and Publish rejects user headers with these names.
var brokerHeaders = []string{
	"x-death", "x-delivery-count",
	"x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
	"x-last-death-exchange", "x-last-death-queue", "x-last-death-reason",
}

func isBrokerHeader(k string) bool {
	if !strings.HasPrefix(k, "x-") {
		return false
	}
	for _, b := range brokerHeaders {
		if k == b {
			return true
		}
	}
	return false
}

// checkMessages adds AMQP's own limits to driver.PrepareMessages: Key (the
// routing key) and header keys are short strings (at most 255 bytes), the
// driver-reserved broker header names are refused, and the header table
// must fit one frame.
func checkMessages(msgs []*mq.Message) error {
	for i, m := range msgs {
		if len(m.Key) > 255 {
			return fmt.Errorf("rabbitmq: %w: message %d Key of %d bytes: it is the routing key, which AMQP allows at most 255", mq.ErrInvalidMessage, i, len(m.Key))
		}
		n := len(m.Key) + len(m.ID)
		for k, v := range m.Header {
			if len(k) > 255 {
				return fmt.Errorf("rabbitmq: %w: message %d header key of %d bytes: AMQP allows at most 255", mq.ErrInvalidMessage, i, len(k))
			}
			if isBrokerHeader(k) {
				return fmt.Errorf("rabbitmq: %w: message %d header %q: RabbitMQ sets this header itself", mq.ErrInvalidMessage, i, k)
			}
			n += len(k) + len(v) + 6
		}
		if n > maxHeaderBytes {
			return fmt.Errorf("rabbitmq: %w: message %d (id %q) has %d bytes of headers, ID and key; RabbitMQ carries at most %d in one frame", mq.ErrMessageTooLarge, i, m.ID, n, maxHeaderBytes)
		}
	}
	return nil
}

// encode turns m into a persistent AMQP publishing. Key goes in a header
// (the routing key is lost by dead-lettering), ID in message-id.
func encode(m *mq.Message) amqp.Publishing {
	var h amqp.Table
	if len(m.Header) > 0 || m.Key != "" || len(m.ID) > 255 {
		h = make(amqp.Table, len(m.Header)+1)
		for k, v := range m.Header {
			h[k] = v
		}
		if m.Key != "" {
			h[hdrKey] = m.Key
		}
	}
	p := amqp.Publishing{
		Headers:      h,
		DeliveryMode: amqp.Persistent,
		MessageId:    m.ID,
		Body:         m.Body,
	}
	if len(m.ID) > 255 {
		p.MessageId = ""
		h[hdrID] = m.ID
	}
	return p
}

// redeliveryCopy returns d as a publishing for redelivery to queue, with
// its attempt count (the attempts made so far) in a header and the
// broker's bookkeeping headers removed. The copy travels through a delay
// queue, which changes its routing key, so the Key and ID the handler saw
// go with it in the mq-key and mq-id headers: a foreign message keeps its
// routing-key Key and derived ID on every redelivery.
func redeliveryCopy(d *amqp.Delivery, queue string, attempts int) amqp.Publishing {
	h := make(amqp.Table, len(d.Headers)+4)
	for k, v := range d.Headers {
		if !isBrokerHeader(k) {
			h[k] = v
		}
	}
	if _, ok := h[hdrKey]; !ok {
		h[hdrKey] = d.RoutingKey
	}
	if _, ok := h[hdrID]; !ok && d.MessageId == "" {
		h[hdrID] = foreignID(d)
	}
	h[hdrAttempt] = int64(attempts)
	h[hdrQueue] = queue
	return amqp.Publishing{
		Headers:         h,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}

// decode turns a delivery from queue into the message a handler sees;
// raw is d as an interface value, for Message.As. See the package
// documentation's Interoperability section for the mapping.
func decode(d *amqp.Delivery, topic, group, queue string, raw any) *mq.Message {
	m := &mq.Message{
		ID:     d.MessageId,
		Body:   d.Body,
		Topic:  topic,
		Group:  group,
		Header: make(map[string]string, len(d.Headers)),
	}
	if !d.Timestamp.IsZero() {
		m.PublishTime = d.Timestamp
	}
	prior, returns := attempts(d, queue)
	key, hasKey := "", false
	for k, v := range d.Headers {
		switch {
		case k == hdrKey:
			key, hasKey = headerString(v), true
		case k == hdrID:
			m.ID = headerString(v)
		case strings.HasPrefix(k, mq.ReservedHeaderPrefix), isBrokerHeader(k):
		default:
			m.Header[k] = headerString(v)
		}
	}
	if !hasKey {
		// Not published through mq (which sends Key as the routing key
		// too, and in mq-key when it is not empty).
		key = d.RoutingKey
	}
	m.Key = key
	if m.ID == "" {
		m.ID = foreignID(d)
	}
	m.Attempt = prior + returns + 1
	driver.SetNative(m, raw)
	return m
}

// foreignIDPrefix starts the IDs of messages published without a
// message-id.
const foreignIDPrefix = "amqp-sha256:"

// foreignID returns the ID of a message published without a message-id:
// foreignIDPrefix and the first 16 bytes, in hex, of the SHA-256 of its
// routing key, basic properties, user headers (as decode renders them,
// sorted by key) and body. RabbitMQ keeps no identity for a message, and
// this is the only value that is the same on every delivery of it,
// requeues after a crash included; two such messages identical in all of
// these share an ID.
func foreignID(d *amqp.Delivery) string {
	h := sha256.New()
	field := func(s string) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	field(d.RoutingKey)
	field(d.ContentType)
	field(d.ContentEncoding)
	field(d.CorrelationId)
	field(d.ReplyTo)
	field(d.Type)
	field(d.AppId)
	field(d.UserId)
	field(strconv.Itoa(int(d.Priority)))
	if !d.Timestamp.IsZero() {
		field(strconv.FormatInt(d.Timestamp.Unix(), 10))
	} else {
		field("")
	}
	keys := make([]string, 0, len(d.Headers))
	for k := range d.Headers {
		if !strings.HasPrefix(k, mq.ReservedHeaderPrefix) && !isBrokerHeader(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	field(strconv.Itoa(len(keys)))
	for _, k := range keys {
		field(k)
		field(headerString(d.Headers[k]))
	}
	h.Write(d.Body)
	sum := h.Sum(nil)
	return foreignIDPrefix + hex.EncodeToString(sum[:16])
}

// attempts returns the deliveries of d before this one: those the driver
// counted on earlier copies in queue (a copy dead-lettered elsewhere starts
// afresh), and the times queue handed this copy out before. A quorum queue
// counts those (x-delivery-count); a classic queue says only whether it
// did.
//
// Both counts come from headers another AMQP publisher can set to
// anything: each is clamped to 0 to MaxAttempt, so that their sum plus
// one stays a positive int however large or negative the headers are.
func attempts(d *amqp.Delivery, queue string) (prior, returns int) {
	if q, _ := d.Headers[hdrQueue].(string); q == queue {
		prior = clampAttempt(d.Headers[hdrAttempt])
	}
	returns = clampAttempt(d.Headers["x-delivery-count"])
	if returns == 0 && d.Redelivered {
		returns = 1
	}
	return prior, returns
}

// MaxAttempt bounds each count Message.Attempt is made of (the driver's
// mq-attempt header, RabbitMQ's x-delivery-count): a larger value, as
// another publisher may set, counts as MaxAttempt, a negative one as 0.
const MaxAttempt = 1 << 30

// clampAttempt reads an attempt-count header value as a count from 0 to
// MaxAttempt.
func clampAttempt(v any) int {
	if u, ok := v.(uint64); ok && u > MaxAttempt {
		return MaxAttempt // toInt would wrap it negative
	}
	return int(min(max(toInt(v), 0), MaxAttempt))
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int32:
		return int64(n)
	case int16:
		return int64(n)
	case int8:
		return int64(n)
	case int:
		return int64(n)
	case uint8:
		return int64(n)
	case uint16:
		return int64(n)
	case uint32:
		return int64(n)
	case uint64:
		return int64(n)
	}
	return 0
}

// headerString renders an AMQP header value as the string a handler
// sees (see Interoperability in the package documentation): strings and
// byte arrays as their bytes, booleans as "true" or "false", integers in
// decimal, floats in Go's shortest 'g' form, timestamps in RFC 3339
// (UTC), decimals as "<value>e-<scale>", void as "", and tables and
// arrays as JSON with the same rules inside. Nothing is left out.
func headerString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case amqp.Table, []any:
		b, err := json.Marshal(jsonValue(x))
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
	return scalarString(v)
}

func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case amqp.Decimal:
		return fmt.Sprintf("%de-%d", x.Value, x.Scale)
	case nil:
		return ""
	case int64, int32, int16, int8, int, uint8, uint16, uint32:
		return strconv.FormatInt(toInt(v), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	}
	return fmt.Sprint(v)
}

// jsonValue converts a table or array for encoding/json: nested tables
// and arrays stay objects and arrays, numbers, booleans and void stay
// JSON numbers, booleans and null, and every other value becomes the
// JSON string scalarString gives.
func jsonValue(v any) any {
	switch x := v.(type) {
	case amqp.Table:
		o := make(map[string]any, len(x))
		for k, e := range x {
			o[k] = jsonValue(e)
		}
		return o
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = jsonValue(e)
		}
		return a
	case bool, nil, int64, int32, int16, int8, int, uint8, uint16, uint32, uint64:
		return x
	case float32:
		if f := float64(x); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return json.Number(strconv.FormatFloat(f, 'g', -1, 32))
		}
	case float64:
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
		}
	}
	return scalarString(v)
}
