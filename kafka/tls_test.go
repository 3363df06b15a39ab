//go:build cluster

package kafka_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/internal/brokertest"
)

// The tests of this file run against the TLS and SASL_SSL listeners of
// the three-node cluster of `scripts/brokers up kafka-cluster` (see
// internal/brokertest.ClusterEnv): they skip without it.

// clusterTLSQuery returns the query parameters that trust the cluster's CA.
func clusterTLSQuery(t testing.TB) string {
	return "tls_ca_file=" + url.QueryEscape(brokertest.ClusterEnv(t, "MQ_TEST_TLS_CA_FILE"))
}

// scramURL returns a kafka:// URL for the SASL_SSL listeners that
// authenticates as the cluster's SCRAM user with the password from
// MQ_TEST_KAFKA_SCRAM_PASSWORD.
func scramURL(t testing.TB) string {
	addrs := brokertest.ClusterEnv(t, "MQ_TEST_KAFKA_CLUSTER_SASL_ADDR")
	user := brokertest.ClusterEnv(t, "MQ_TEST_KAFKA_SCRAM_USER")
	brokertest.ClusterEnv(t, "MQ_TEST_KAFKA_SCRAM_PASSWORD")
	return "kafka://" + user + "@" + addrs + "?sasl=scram-sha-512&sasl_password_env=MQ_TEST_KAFKA_SCRAM_PASSWORD&" + clusterTLSQuery(t)
}

// roundTrip publishes n messages to a new topic of the broker at u and
// checks that a subscriber receives each of them intact.
func roundTrip(t *testing.T, u string, n int) mq.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := mq.Open(ctx, u+"&replication_factor=3&start_at=earliest")
	if err != nil {
		t.Fatalf("Open: got %v, want nil", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: got %v, want nil", err)
		}
	})
	topic := uniqueName(t, "tls")
	var mu sync.Mutex
	got := map[string]string{}
	all := make(chan struct{})
	stop := subscribe(t, b, topic, func(_ context.Context, m *mq.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[m.ID] = string(m.Body)
		if len(got) == n {
			close(all)
		}
		return nil
	}, mq.Group("g"))
	pctx, pcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer pcancel()
	for i := range n {
		m := &mq.Message{ID: fmt.Sprintf("m%03d", i), Key: fmt.Sprintf("k%d", i%5), Body: []byte(fmt.Sprintf("body %d\x00\xff", i))}
		if err := b.Publish(pctx, topic, m); err != nil {
			t.Fatalf("Publish %d: got %v, want nil", i, err)
		}
	}
	select {
	case <-all:
	case <-time.After(90 * time.Second):
		mu.Lock()
		t.Fatalf("received %d of %d messages within 90s", len(got), n)
	}
	if err := stop(); err != nil && err != context.Canceled {
		t.Errorf("Subscribe: got %v, want context.Canceled", err)
	}
	for i := range n {
		if want := fmt.Sprintf("body %d\x00\xff", i); got[fmt.Sprintf("m%03d", i)] != want {
			t.Errorf("message m%03d: got body %q, want %q", i, got[fmt.Sprintf("m%03d", i)], want)
		}
	}
	return b
}

// TestTLSRoundTrip publishes and consumes over the cluster's SSL
// listeners, verifying the brokers' certificates against the cluster CA.
func TestTLSRoundTrip(t *testing.T) {
	addrs := brokertest.ClusterEnv(t, "MQ_TEST_KAFKA_CLUSTER_TLS_ADDR")
	b := roundTrip(t, "kafka://"+addrs+"?"+clusterTLSQuery(t), 50)
	var tr *kafkago.Transport
	if !b.(interface{ As(any) bool }).As(&tr) || tr.TLS == nil {
		t.Errorf("As(**kafka.Transport): got a transport without TLS, want TLS")
	}
}

// TestSASLSCRAMRoundTrip publishes and consumes over the cluster's
// SASL_SSL listeners, authenticating with SCRAM-SHA-512; the password
// comes from an environment variable named in the URL.
func TestSASLSCRAMRoundTrip(t *testing.T) {
	b := roundTrip(t, scramURL(t), 50)
	var tr *kafkago.Transport
	if !b.(interface{ As(any) bool }).As(&tr) || tr.SASL == nil || tr.SASL.Name() != "SCRAM-SHA-512" {
		t.Errorf("As(**kafka.Transport): got SASL %v, want SCRAM-SHA-512", tr.SASL)
	}
}

// TestTLSAndSASLFailures checks that each misconfiguration fails Open
// within a bound, with an error that names the problem and carries no
// secret: the URLs hold a password in their user info or a password file.
func TestTLSAndSASLFailures(t *testing.T) {
	tlsAddrs := brokertest.ClusterEnv(t, "MQ_TEST_KAFKA_CLUSTER_TLS_ADDR")
	saslAddrs := brokertest.ClusterEnv(t, "MQ_TEST_KAFKA_CLUSTER_SASL_ADDR")
	user := brokertest.ClusterEnv(t, "MQ_TEST_KAFKA_SCRAM_USER")
	ca := url.QueryEscape(brokertest.ClusterEnv(t, "MQ_TEST_TLS_CA_FILE"))
	dir := t.TempDir()
	const secret = "S3cret-pa55word-never-printed"
	passFile := filepath.Join(dir, "password")
	if err := os.WriteFile(passFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherCA := writeUnrelatedCA(t, dir)

	cases := []struct {
		name string
		url  string
		want []string // substrings the error must hold (case-insensitive)
	}{
		{
			name: "SASL wrong password",
			url:  "kafka://" + user + "@" + saslAddrs + "?sasl=scram-sha-512&sasl_password_file=" + url.QueryEscape(passFile) + "&tls_ca_file=" + ca,
			want: []string{"authentication"},
		},
		{
			name: "SASL wrong password in the URL",
			url:  "kafka://" + user + ":" + secret + "@" + saslAddrs + "?sasl=scram-sha-512&tls_ca_file=" + ca,
			want: []string{"authentication"},
		},
		{
			name: "TLS untrusted CA",
			url:  "kafka://" + user + ":" + secret + "@" + saslAddrs + "?sasl=scram-sha-512&tls_ca_file=" + url.QueryEscape(otherCA),
			want: []string{"certificate", "unknown authority"},
		},
		{
			name: "TLS wrong server name",
			url:  "kafka://" + tlsAddrs + "?tls_server_name=wrong.invalid&tls_ca_file=" + ca,
			want: []string{"certificate", "wrong.invalid"},
		},
		{
			name: "TLS to a TLS listener without the CA",
			url:  "kafka://" + tlsAddrs + "?tls=true",
			want: []string{"certificate"},
		},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			b, err := mq.Open(ctx, c.url)
			took := time.Since(start)
			if err == nil {
				_ = b.Close(ctx)
				t.Fatalf("Open: got nil error, want one naming %q", c.want)
			}
			t.Logf("Open failed after %v: %v", took.Round(time.Millisecond), err)
			msg := strings.ToLower(err.Error())
			for _, w := range c.want {
				if !strings.Contains(msg, strings.ToLower(w)) {
					t.Errorf("Open error %q: does not name the problem (want %q in it)", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Open error %q: holds the password", err)
			}
			if took > 20*time.Second {
				t.Errorf("Open took %v to fail, want at most 20s", took)
			}
			if mq.IsRetryable(err) {
				t.Errorf("Open error %q: IsRetryable true, want false (retrying cannot fix configuration)", err)
			}
		})
	}
}

// writeUnrelatedCA writes a self-signed CA certificate that signed none
// of the cluster's certificates and returns its file name.
func writeUnrelatedCA(t testing.TB, dir string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "unrelated test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "unrelated-ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
