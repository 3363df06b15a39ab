package rabbitmq

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
)

func TestDelayBucket(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int64
	}{
		{time.Nanosecond, 1},
		{time.Millisecond, 1},
		{3 * time.Millisecond, 3},
		{4 * time.Millisecond, 4},
		{9 * time.Millisecond, 10},
		{100 * time.Millisecond, 112},
		{time.Second, 1024},
		{30 * time.Second, 32768},
		{100 * 24 * time.Hour, maxTTL},
	}
	for _, tt := range tests {
		if got := delayBucket(tt.d); got != tt.want {
			t.Errorf("delayBucket(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
	// Never early, at most 25% late, over a wide range.
	for ms := int64(1); ms < 1<<22; ms = ms*9/8 + 1 {
		got := delayBucket(time.Duration(ms) * time.Millisecond)
		if got < ms || float64(got) > 1.25*float64(ms) {
			t.Fatalf("delayBucket(%dms) = %d, want within [%d, %d]", ms, got, ms, ms*5/4)
		}
	}
}

func TestChannelLostOutcome(t *testing.T) {
	pd := &outMsg{exchange: "orders", pub: amqp.Publishing{Body: make([]byte, 2000)}}
	tests := []struct {
		name  string
		cause *amqp.Error
		kind  outcome
		is    error
	}{
		{"connection lost", nil, resend, nil},
		{"our exchange missing", &amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND - no exchange 'orders' in vhost '/'"}, finalErr, mq.ErrNotFound},
		{"another exchange missing", &amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND - no exchange 'other' in vhost '/'"}, resend, nil},
		{"body over the broker limit", &amqp.Error{Code: amqp.PreconditionFailed, Reason: "PRECONDITION_FAILED - message size 2000 is larger than configured max size 1000"}, finalErr, mq.ErrMessageTooLarge},
		{"another body over the limit", &amqp.Error{Code: amqp.PreconditionFailed, Reason: "PRECONDITION_FAILED - message size 5000 is larger than max size 3000"}, resend, nil},
		{"forced close", &amqp.Error{Code: amqp.ConnectionForced, Reason: "CONNECTION_FORCED"}, resend, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, err := channelLostOutcome(tt.cause, pd)
			if kind != tt.kind {
				t.Errorf("got outcome %d, want %d (err %v)", kind, tt.kind, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("got %v, want it to wrap %v", err, tt.is)
			}
			if kind == resend && !mq.IsRetryable(err) {
				t.Errorf("IsRetryable(%v) = false for a resent message, want true", err)
			}
		})
	}
}

func TestAttemptCount(t *testing.T) {
	tests := []struct {
		name string
		d    amqp.Delivery
		want int
	}{
		{"first", amqp.Delivery{}, 1},
		{"classic redelivery", amqp.Delivery{Redelivered: true}, 2},
		{"quorum redelivery", amqp.Delivery{Redelivered: true, Headers: amqp.Table{"x-delivery-count": int64(3)}}, 4},
		{"driver copy", amqp.Delivery{Headers: amqp.Table{hdrAttempt: int64(2), hdrQueue: "t.g"}}, 3},
		{"driver copy redelivered", amqp.Delivery{Redelivered: true, Headers: amqp.Table{hdrAttempt: int64(2), hdrQueue: "t.g", "x-delivery-count": int64(1)}}, 4},
		{"copy for another queue", amqp.Delivery{Headers: amqp.Table{hdrAttempt: int64(5), hdrQueue: "t.other"}}, 1},
		// Issue 20: headers from another AMQP publisher must not make
		// Attempt negative or zero; each count is clamped to MaxAttempt.
		{"mq-attempt MaxInt64", amqp.Delivery{Headers: amqp.Table{hdrAttempt: int64(math.MaxInt64), hdrQueue: "t.g"}}, MaxAttempt + 1},
		{"mq-attempt and x-delivery-count MaxInt64", amqp.Delivery{Redelivered: true, Headers: amqp.Table{hdrAttempt: int64(math.MaxInt64), hdrQueue: "t.g", "x-delivery-count": int64(math.MaxInt64)}}, 2*MaxAttempt + 1},
		{"mq-attempt MaxUint64", amqp.Delivery{Headers: amqp.Table{hdrAttempt: uint64(math.MaxUint64), hdrQueue: "t.g"}}, MaxAttempt + 1},
		{"mq-attempt negative", amqp.Delivery{Headers: amqp.Table{hdrAttempt: int64(math.MinInt64), hdrQueue: "t.g"}}, 1},
		{"x-delivery-count negative", amqp.Delivery{Redelivered: true, Headers: amqp.Table{"x-delivery-count": int32(-5)}}, 2},
		{"mq-attempt a string", amqp.Delivery{Headers: amqp.Table{hdrAttempt: "9999999999999999999999", hdrQueue: "t.g"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := decode(&tt.d, "t", "g", "t.g", tt.d)
			if m.Attempt != tt.want {
				t.Errorf("got Attempt %d, want %d", m.Attempt, tt.want)
			}
			for k := range m.Header {
				t.Errorf("got header %q, want driver and broker headers removed", k)
			}
		})
	}
}

func TestEncodeDecode(t *testing.T) {
	in := &mq.Message{ID: "id-1", Key: "k", Body: []byte{0, 0xff}, Header: map[string]string{"a": "ü"}}
	p := encode(in)
	if p.DeliveryMode != amqp.Persistent || p.MessageId != "id-1" {
		t.Errorf("got delivery mode %d, message id %q; want persistent, id-1", p.DeliveryMode, p.MessageId)
	}
	d := amqp.Delivery{MessageId: p.MessageId, Headers: p.Headers, Body: p.Body}
	out := decode(&d, "t", "g", "t.g", d)
	if out.ID != in.ID || out.Key != in.Key || string(out.Body) != string(in.Body) || len(out.Header) != 1 || out.Header["a"] != "ü" {
		t.Errorf("round trip: got %+v, want ID, Key, Body and Header of %+v", out, in)
	}
	var raw amqp.Delivery
	if !out.As(&raw) || raw.MessageId != "id-1" {
		t.Errorf("As(*amqp091.Delivery) = false or wrong delivery")
	}
}

// writeCert writes a self-signed certificate and its key as PEM files and
// returns their paths.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mq-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestTLSParameters(t *testing.T) {
	cert, key := writeCert(t)
	s, err := resolve(Options{URL: "amqps://u:secret@rabbit.example:5671/vh?tls_ca_file=" + cert + "&tls_cert_file=" + cert + "&tls_key_file=" + key + "&tls_server_name=broker.internal"})
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	tc := s.Config.TLSClientConfig
	if tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "broker.internal" || tc.MinVersion < tls.VersionTLS12 {
		t.Fatalf("got TLS config %+v, want roots, one client certificate, server name broker.internal, TLS 1.2+", tc)
	}
	if strings.Contains(s.dialURL, "tls_ca_file") || strings.Contains(s.redacted, "secret") {
		t.Errorf("got dial URL %q and redacted %q, want no driver parameters in the first and no password in the second", s.dialURL, s.redacted)
	}
	t.Run("own TLS config wins", func(t *testing.T) {
		own := &tls.Config{ServerName: "mine", MinVersion: tls.VersionTLS13}
		s, err := resolve(Options{URL: "amqps://rabbit.example/?tls_ca_file=" + cert, Config: amqp.Config{TLSClientConfig: own}})
		if err != nil {
			t.Fatalf("resolve: %v", err)
		}
		if s.Config.TLSClientConfig != own {
			t.Errorf("the URL's TLS files replaced Options.Config.TLSClientConfig, want it kept")
		}
	})
	t.Run("not a PEM file", func(t *testing.T) {
		_, err := resolve(Options{URL: "amqps://rabbit.example/?tls_ca_file=" + key})
		if !errors.Is(err, mq.ErrInvalidURL) {
			t.Errorf("got %v, want ErrInvalidURL", err)
		}
	})
}

func TestInvalidOptions(t *testing.T) {
	const u = "amqp://127.0.0.1:1/"
	tests := []struct {
		name    string
		o       Options
		mention string
	}{
		{"negative PublishChannels", Options{URL: u, PublishChannels: -1}, "PublishChannels"},
		{"too many PublishChannels", Options{URL: u, PublishChannels: 65}, "PublishChannels"},
		{"negative ConfirmWindow", Options{URL: u, ConfirmWindow: -1}, "ConfirmWindow"},
		{"negative MaxMessageBytes", Options{URL: u, MaxMessageBytes: -1}, "MaxMessageBytes"},
		{"negative QueueExpires", Options{URL: u, QueueExpires: -time.Second}, "QueueExpires"},
		{"negative ReconnectMax", Options{URL: u, ReconnectMax: -time.Second}, "ReconnectMax"},
		{"negative Prefetch", Options{URL: u, Prefetch: -1}, "Prefetch"},
		{"unknown QueueType", Options{URL: u, QueueType: "stream"}, "QueueType"},
		{"unknown ExchangeType", Options{URL: u, ExchangeType: "headers"}, "ExchangeType"},
		{"Recovery set", Options{URL: u, Config: amqp.Config{Recovery: &amqp.Recovery{}}}, "Recovery"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resolve(tt.o)
			if !errors.Is(err, mq.ErrInvalidOption) {
				t.Fatalf("got %v, want an error wrapping ErrInvalidOption", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("got %q, want it to mention %q", err, tt.mention)
			}
		})
	}
	s, err := resolve(Options{URL: u})
	if err != nil {
		t.Fatalf("resolve with zero options: %v", err)
	}
	if s.PublishChannels != DefaultPublishChannels || s.ConfirmWindow != DefaultConfirmWindow ||
		s.MaxMessageBytes != DefaultMaxMessageBytes || s.ReconnectMax != DefaultReconnectMax || s.QueueType != QueueQuorum {
		t.Errorf("zero options resolved to %+v, want the defaults", s.Options)
	}
}

func TestTLSSwitch(t *testing.T) {
	s, err := resolve(Options{URL: "amqps://rabbit.example/?tls=true&tls_insecure_skip_verify=true"})
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if tc := s.Config.TLSClientConfig; tc == nil || !tc.InsecureSkipVerify {
		t.Errorf("got TLS config %+v, want one that skips verification", tc)
	}
	s, err = resolve(Options{URL: "amqps://rabbit.example/"})
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if s.Config.TLSClientConfig != nil {
		t.Errorf("amqps:// without tls_* parameters built a TLS config; want amqp091-go's default")
	}
}
