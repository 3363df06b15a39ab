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
