package sqs

import (
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/seedmq/mq"
)

// Message attributes the driver reserves. Their names start with
// mq.ReservedHeaderPrefix, so no user header can collide with them.
const (
	attrID     = "mq-id"   // String: Message.ID
	attrKey    = "mq-key"  // String: Message.Key
	attrBody   = "mq-body" // Binary: a body SQS cannot carry as text; String "empty": an empty body
	attrPacked = "mq-h"    // Binary: headers (and ID or Key) that do not fit as attributes

	// bodyPlaceholder is the SQS body of a message whose real body is in
	// the mq-body attribute. SQS needs a non-empty body.
	bodyPlaceholder = "mq: body in message attribute mq-body"
	emptyBodyMarker = "empty"

	// maxAttributes is SQS's limit of message attributes per message.
	maxAttributes = 10
	// maxAttrNameLen is SQS's limit on a message attribute name.
	maxAttrNameLen = 256
)

// traceHeaders are placed first among the attributes, so that tracing
// stays visible to consumers that do not use mq even when other headers
// overflow into the packed attribute.
var traceHeaders = []string{"traceparent", "tracestate", "baggage"}

// isSQSText reports whether s can be sent as an SQS message body or String
// attribute value: valid UTF-8 made only of the characters SQS allows
// (#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF).
func isSQSText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !sqsRune(r) {
			return false
		}
	}
	return true
}

// isSQSTextBytes is isSQSText for a byte slice (a message body), in one
// pass that checks eight bytes at a time while they are plain ASCII text:
// bodies are often large, and a rune at a time cost about as much CPU as
// the rest of publishing a 64 KiB message.
func isSQSTextBytes(b []byte) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for i := 0; i < len(b); {
		if i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			// No byte has its high bit set (all ASCII), and none is below
			// 0x20 (with high bits clear, subtracting 0x20 from every byte
			// borrows into a byte's high bit exactly when some byte is
			// below 0x20).
			if w&highs == 0 && (w-0x20*ones)&^w&highs == 0 {
				i += 8
				continue
			}
		}
		if c := b[i]; c < utf8.RuneSelf {
			if !sqsRune(rune(c)) {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 || !sqsRune(r) {
			return false // invalid UTF-8, or a character SQS refuses
		}
		i += size
	}
	return true
}

// sqsRune reports whether SQS accepts r in text (surrogates cannot occur
// in valid UTF-8).
func sqsRune(r rune) bool {
	return r >= 0x20 && r != 0xFFFE && r != 0xFFFF || r == '\t' || r == '\n' || r == '\r'
}

// isAttrName reports whether name is a valid SQS message attribute name
// that a user header can use as it is: letters, digits, '_', '-' and '.',
// at most 256 characters, not starting or ending with '.', without "..",
// and not starting with the prefixes AWS reserves.
func isAttrName(name string) bool {
	if name == "" || len(name) > maxAttrNameLen || name[0] == '.' || name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return false
	}
	lower := strings.ToLower(name)
	if strings.HasPrefix(lower, "aws.") || strings.HasPrefix(lower, "amazon.") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// encoded is one message ready for SendMessage(Batch). The ID and Key
// attributes point to its id and key, so that they cost no allocation of
// their own: an encoded must not be copied while the attributes are used.
type encoded struct {
	body  string
	id    string
	key   string
	attrs map[string]types.MessageAttributeValue
	// size is the message's size as SQS counts it: the body plus each
	// attribute's name, type and value.
	size int
}

// The attribute data types, shared by every request (the SDK only reads
// them), so that an attribute costs no allocation for its type.
var (
	stringType = aws.String("String")
	binaryType = aws.String("Binary")
)

func stringAttr(v string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: stringType, StringValue: aws.String(v)}
}

func binaryAttr(v []byte) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: binaryType, BinaryValue: v}
}

// encode maps m onto e, an SQS body and message attributes. It never loses
// anything: a body SQS cannot carry as text goes into the mq-body binary
// attribute; headers become attributes of their own name while the
// ten-attribute limit allows, trace headers first (String attributes, or
// Binary ones for values that are not SQS text), and the rest (along with
// any header whose name is not a valid attribute name or whose value is
// empty, and an ID or Key that SQS cannot carry as a String attribute)
// are packed into the mq-h binary attribute. See the package
// documentation for the format.
func (e *encoded) encode(m *mq.Message) {
	*e = encoded{attrs: make(map[string]types.MessageAttributeValue, 2+len(m.Header))}
	var packed []string // key, value pairs for mq-h

	add := func(name string, v types.MessageAttributeValue) {
		e.attrs[name] = v
		e.size += len(name) + len(*v.DataType) + len(v.BinaryValue)
		if v.StringValue != nil {
			e.size += len(*v.StringValue)
		}
	}

	if isSQSText(m.ID) && m.ID != "" {
		e.id = m.ID
		add(attrID, types.MessageAttributeValue{DataType: stringType, StringValue: &e.id})
	} else {
		packed = append(packed, attrID, m.ID)
	}
	if m.Key != "" {
		if isSQSText(m.Key) {
			e.key = m.Key
			add(attrKey, types.MessageAttributeValue{DataType: stringType, StringValue: &e.key})
		} else {
			packed = append(packed, attrKey, m.Key)
		}
	}
	switch {
	case len(m.Body) == 0:
		e.body = bodyPlaceholder
		add(attrBody, stringAttr(emptyBodyMarker))
	case isSQSTextBytes(m.Body):
		e.body = string(m.Body)
	default:
		e.body = bodyPlaceholder
		add(attrBody, binaryAttr(m.Body))
	}
	e.size += len(e.body)

	if len(m.Header) > 0 {
		// Headers that can be attributes, trace headers first, then by name.
		fit := make([]string, 0, len(m.Header))
		for k, v := range m.Header {
			if isAttrName(k) && v != "" {
				fit = append(fit, k)
			} else {
				packed = append(packed, k, v)
			}
		}
		slices.SortFunc(fit, func(a, b string) int {
			ia, ib := slices.Index(traceHeaders, a), slices.Index(traceHeaders, b)
			switch {
			case ia >= 0 && ib >= 0:
				return ia - ib
			case ia >= 0:
				return -1
			case ib >= 0:
				return 1
			}
			return strings.Compare(a, b)
		})
		room := maxAttributes - len(e.attrs)
		if len(packed) > 0 || len(fit) > room {
			room-- // keep one for mq-h
		}
		for i, k := range fit {
			if v := m.Header[k]; i < room && isSQSText(v) {
				add(k, stringAttr(v))
			} else if i < room {
				add(k, binaryAttr([]byte(v))) // not SQS text: binary, same name
			} else {
				packed = append(packed, k, m.Header[k])
			}
		}
	}
	if len(packed) > 0 {
		add(attrPacked, binaryAttr(packPairs(packed)))
	}
}

// packPairs writes each string as a uvarint length followed by its bytes.
func packPairs(kv []string) []byte {
	n := 0
	for _, s := range kv {
		n += binary.MaxVarintLen32 + len(s)
	}
	b := make([]byte, 0, n)
	for _, s := range kv {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

var errBadPack = errors.New("malformed mq-h attribute")

// unpackPairs reverses packPairs.
func unpackPairs(b []byte, f func(k, v string)) error {
	var kv [2]string
	for i := 0; len(b) > 0; i++ {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return errBadPack
		}
		kv[i%2] = string(b[w : w+int(n)])
		b = b[w+int(n):]
		if i%2 == 1 {
			f(kv[0], kv[1])
		} else if len(b) == 0 {
			return errBadPack
		}
	}
	return nil
}

// decode fills m from a received SQS message, the same way whatever
// order the attributes come in:
//
//   - The delivery facts come from SQS's system attributes only, never
//     from a message attribute another producer can set: Attempt from
//     ApproximateReceiveCount (at least 1), PublishTime from
//     SentTimestamp.
//   - The body is mq-body's Binary value, or empty for its String value
//     "empty", or else the SQS body.
//   - Headers are the attributes mq does not reserve (String and Number
//     values as text, Binary values byte for byte), then the pairs packed
//     in mq-h (a packed pair named like an attribute gives way to the
//     attribute). Header is never nil.
//   - ID is mq-id, else the ID packed in mq-h, else the SQS MessageId;
//     Key is mq-key, else the Key packed in mq-h, else on FIFO queues the
//     MessageGroupId of a message that is not mq's (no mq ID).
//
// An mq-h attribute that does not decode as a whole is ignored as a
// whole: none of its pairs is applied, everything else is decoded as
// above, and decode returns errBadPack so the caller can log it; the
// attribute stays readable through Message.As.
func decode(sm *types.Message, m *mq.Message) error {
	m.Attempt = 1
	if n, err := strconv.Atoi(sm.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil && n > 0 {
		m.Attempt = n
	}
	if ms, err := strconv.ParseInt(sm.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		m.PublishTime = time.UnixMilli(ms)
	}
	if sm.Body != nil {
		m.Body = []byte(*sm.Body)
	}
	attrs := sm.MessageAttributes
	if v, ok := attrs[attrBody]; ok {
		switch {
		case v.BinaryValue != nil:
			m.Body = v.BinaryValue
		case v.StringValue != nil && *v.StringValue == emptyBodyMarker:
			m.Body = []byte{}
		}
	}
	m.Header = make(map[string]string, len(attrs))
	for name, v := range attrs {
		switch {
		case strings.HasPrefix(name, mq.ReservedHeaderPrefix):
		case v.StringValue != nil: // String and Number attributes
			m.Header[name] = *v.StringValue
		case v.BinaryValue != nil: // Binary attributes, byte for byte
			m.Header[name] = string(v.BinaryValue)
		}
	}
	var packedID, packedKey string
	var err error
	if v, ok := attrs[attrPacked]; ok {
		var pairs []string
		if err = unpackPairs(v.BinaryValue, func(k, val string) { pairs = append(pairs, k, val) }); err == nil {
			for i := 0; i < len(pairs); i += 2 {
				switch k, val := pairs[i], pairs[i+1]; k {
				case attrID:
					packedID = val
				case attrKey:
					packedKey = val
				default:
					if _, dup := m.Header[k]; !dup && !strings.HasPrefix(k, mq.ReservedHeaderPrefix) {
						m.Header[k] = val
					}
				}
			}
		}
	}
	m.ID, m.Key = aws.ToString(attrs[attrID].StringValue), aws.ToString(attrs[attrKey].StringValue)
	if m.ID == "" {
		m.ID = packedID
	}
	if m.Key == "" {
		m.Key = packedKey
	}
	if m.ID == "" {
		// Not published through mq: use what SQS knows.
		m.ID = aws.ToString(sm.MessageId)
		if m.Key == "" {
			m.Key = sm.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
		}
	}
	return err
}
