package mq_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	_ "github.com/seedmq/mq/kafka"
	_ "github.com/seedmq/mq/memory"
	_ "github.com/seedmq/mq/rabbitmq"
	_ "github.com/seedmq/mq/sqs"
)

// Markers that make up every password the fuzz target builds: none of
// them may appear in an error, whatever the characters between them do
// to the URL's parsing.
var secretMarkers = []string{"Zq7s", "Kx9w", "Pm3v"}

func init() {
	// The fuzzed URLs name arbitrary hosts: resolve none of them.
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS look-ups in this test")
	}}
}

// FuzzOpenNeverLeaksUserInfo opens URLs of every registered scheme whose
// password holds arbitrary bytes between fixed markers (so that '#', '?',
// '/', '@' and bad escapes cut the URL in unexpected places) and checks
// that no marker appears in Open's error. Nothing listens on the port, so
// drivers that dial fail fast.
func FuzzOpenNeverLeaksUserInfo(f *testing.F) {
	for _, seed := range [][2]string{
		{"", ""}, {"#", ""}, {"?", ""}, {"/", ""}, {"@", ""}, {"%zz", ""}, {"#x", "/"},
		{"?a=1", "#"}, {":", "@x"}, {" ", "\x00"}, {"/", "?group=g"}, {"%", "%4"},
	} {
		f.Add(seed[0], seed[1], "")
		f.Add(seed[0], seed[1], "?group=g")
	}
	schemes := mq.Schemes()
	f.Fuzz(func(t *testing.T, a, b, tail string) {
		pw := secretMarkers[0] + a + secretMarkers[1] + b + secretMarkers[2]
		for _, scheme := range schemes {
			raw := scheme + "://user:" + pw + "@127.0.0.1:1/" + tail
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			br, err := mq.Open(ctx, raw)
			if err == nil {
				_ = br.Close(ctx)
				cancel()
				continue
			}
			cancel()
			for _, m := range secretMarkers {
				if strings.Contains(err.Error(), m) {
					t.Fatalf("Open(%q) error shows part of the password (%q): %v", raw, m, err)
				}
			}
		}
	})
}

func TestOpenReservedCharacterPasswords(t *testing.T) {
	for _, raw := range []string{
		"amqp://guest:Zq7sekret#x@127.0.0.1:1/",
		"amqp://guest:Zq7s?ekret@127.0.0.1:1/",
		"amqps://guest:Zq7s/ekret@127.0.0.1:1/",
		"kafka://guest:12/Zq7s@127.0.0.1:1",
		"sqs://u:Zq7s#k@?endpoint=http://127.0.0.1:9324",
		"mem://u:Zq7s#a@",
		"user:Zq7s@127.0.0.1:1",
	} {
		_, err := mq.Open(context.Background(), raw)
		if err == nil {
			t.Errorf("Open(%q): got nil error, want an invalid URL", raw)
			continue
		}
		if strings.Contains(err.Error(), "Zq7s") || strings.Contains(err.Error(), "guest") {
			t.Errorf("Open(%q) error shows the user info: %v", raw, err)
		}
		if !strings.Contains(err.Error(), "percent-encode") && !strings.Contains(err.Error(), "scheme://") {
			t.Errorf("Open(%q) error does not say how to fix it: %v", raw, err)
		}
	}
}
