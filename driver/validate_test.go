package driver

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

func TestValidateName(t *testing.T) {
	for _, bad := range []string{"", "a b", "tab\t", "nul\x00", string([]byte{0xff}), strings.Repeat("x", MaxNameBytes+1)} {
		if err := ValidateName("topic", bad); !errors.Is(err, mq.ErrInvalidTopic) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidTopic", bad, err)
		}
	}
	for _, good := range []string{"orders", "orders.v1", "a-b_c", "ünïcode", strings.Repeat("x", MaxNameBytes)} {
		if err := ValidateName("topic", good); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", good, err)
		}
	}
}

func TestPrepareMessages(t *testing.T) {
	lim := Limits{MaxMessageBytes: 100, MaxHeaders: 2}
	delayLim := Limits{AllowDelay: true, MaxDelay: time.Minute}
	if err := PrepareMessages([]*mq.Message{{Delay: time.Minute}}, delayLim); err != nil {
		t.Errorf("Delay at MaxDelay: %v, want nil", err)
	}
	if err := PrepareMessages([]*mq.Message{{Delay: time.Hour}}, delayLim); !errors.Is(err, mq.ErrInvalidMessage) {
		t.Errorf("Delay over MaxDelay: %v, want ErrInvalidMessage", err)
	}
	for _, tc := range []struct {
		name string
		msgs []*mq.Message
		want error
	}{
		{"empty batch", nil, mq.ErrInvalidMessage},
		{"nil message", []*mq.Message{{}, nil}, mq.ErrInvalidMessage},
		{"too large", []*mq.Message{{ID: "x", Body: make([]byte, 100)}}, mq.ErrMessageTooLarge},
		{"too many headers", []*mq.Message{{Header: map[string]string{"a": "", "b": "", "c": ""}}}, mq.ErrInvalidMessage},
		{"reserved header", []*mq.Message{{Header: map[string]string{"mq-id": "v"}}}, mq.ErrInvalidMessage},
		{"delay unsupported", []*mq.Message{{Delay: time.Second}}, mq.ErrNotSupported},
		{"negative delay", []*mq.Message{{Delay: -1}}, mq.ErrInvalidMessage},
		{"ok", []*mq.Message{{Body: []byte("\x00\xff"), Header: map[string]string{"k": "ü"}}}, nil},
		// Whatever a driver delivers, Publish accepts (issue 19): foreign
		// producers send binary keys, IDs and header keys and values.
		{"binary ID and key", []*mq.Message{{ID: "\xff\x00", Key: "\x00\x00\x00\x00\x00\x00\x00\xc8"}}, nil},
		{"binary header", []*mq.Message{{Header: map[string]string{"\xfe": "\xff", "k": "\xc3"}}}, nil},
		{"empty header key", []*mq.Message{{Header: map[string]string{"": "v"}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := PrepareMessages(tc.msgs, lim)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("PrepareMessages = %v, want %v", err, tc.want)
			}
		})
	}
	m := &mq.Message{}
	if err := PrepareMessages([]*mq.Message{m}, lim); err != nil || len(m.ID) != 36 {
		t.Fatalf("ID not filled with a UUID: %q, %v", m.ID, err)
	}
}

// TestPrepareMessagesKeyAndHeaderLimits pins issue 20: a Key or header
// over the broker's limits (RabbitMQ's 255-byte routing key) is refused
// before sending, naming the Capabilities field, and LimitsOf carries the
// limits over from Capabilities.
func TestPrepareMessagesKeyAndHeaderLimits(t *testing.T) {
	lim := LimitsOf(mq.Capabilities{MaxKeyBytes: 255, MaxHeaderKeyBytes: 10, MaxHeaderBytes: 20})
	if lim.MaxKeyBytes != 255 || lim.MaxHeaderKeyBytes != 10 || lim.MaxHeaderBytes != 20 {
		t.Fatalf("LimitsOf: got %+v, want the key and header limits carried over", lim)
	}
	for _, tc := range []struct {
		name  string
		m     *mq.Message
		want  []error
		field string
	}{
		{"key at the limit", &mq.Message{Key: strings.Repeat("k", 255)}, nil, ""},
		{"key over the limit", &mq.Message{Key: strings.Repeat("k", 256)}, []error{mq.ErrInvalidMessage}, "MaxKeyBytes"},
		{"header key at the limit", &mq.Message{Header: map[string]string{strings.Repeat("h", 10): "v"}}, nil, ""},
		{"header key over the limit", &mq.Message{Header: map[string]string{strings.Repeat("h", 11): ""}}, []error{mq.ErrInvalidMessage}, "MaxHeaderKeyBytes"},
		{"headers at the limit", &mq.Message{Header: map[string]string{"a": strings.Repeat("v", 9), "b": strings.Repeat("v", 9)}}, nil, ""},
		{"headers over the limit", &mq.Message{Header: map[string]string{"a": strings.Repeat("v", 10), "b": strings.Repeat("v", 9)}}, []error{mq.ErrMessageTooLarge, mq.ErrInvalidMessage}, "MaxHeaderBytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := PrepareMessages([]*mq.Message{tc.m}, lim)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("PrepareMessages: got %v, want nil", err)
				}
				return
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("PrepareMessages: got %v, want an error matching %v", err, w)
				}
			}
			if err != nil && !strings.Contains(err.Error(), "Capabilities."+tc.field) {
				t.Errorf("PrepareMessages: got %q, want it to name Capabilities.%s", err, tc.field)
			}
		})
	}
}
