//go:build cluster

package rabbitmq_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/driver"
	"github.com/seedmq/mq/internal/brokertest"
	"github.com/seedmq/mq/rabbitmq"
)

// The tests of this file run against the TLS listeners of the three-node
// cluster of `scripts/brokers up rabbitmq-cluster` (see
// internal/brokertest.ClusterEnv): they skip without it.

// clusterNodeURLs splits a cluster URL of `scripts/brokers env`
// (amqp://user:pass@h1:p1,h2:p2,h3:p3/) into one URL per node.
func clusterNodeURLs(t testing.TB, env string) []string {
	t.Helper()
	v := brokertest.ClusterEnv(t, env)
	scheme, rest, ok := strings.Cut(v, "://")
	at := strings.LastIndex(rest, "@")
	slash := strings.Index(rest[at+1:], "/")
	if !ok || at < 0 || slash < 0 {
		t.Fatalf("%s: want scheme://user:pass@host:port,host:port/vhost", env)
	}
	user, hosts, vhost := rest[:at], rest[at+1:at+1+slash], rest[at+1+slash:]
	var out []string
	for _, h := range strings.Split(hosts, ",") {
		out = append(out, scheme+"://"+user+"@"+h+vhost)
	}
	return out
}

// clusterTLS returns a TLS client configuration that trusts the cluster's
// CA, with serverName ("" for the host dialed).
func clusterTLS(t testing.TB, caFile, serverName string) *tls.Config {
	t.Helper()
	c, err := driver.TLSFiles{CAFile: caFile, ServerName: serverName}.Config("rabbitmq")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newBroker calls rabbitmq.New bounded by 30s; the broker is closed when
// the test ends.
func newBroker(t testing.TB, o rabbitmq.Options) (*rabbitmq.Broker, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := rabbitmq.New(ctx, o)
	if err == nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := b.Close(ctx); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	return b, err
}

// TestTLSRoundTrip publishes and consumes over AMQPS on every node of the
// cluster, verifying the node's certificate against the cluster's CA: a
// message published on one node is consumed on the next.
func TestTLSRoundTrip(t *testing.T) {
	nodes := clusterNodeURLs(t, "MQ_TEST_AMQPS_CLUSTER_URL")
	ca := brokertest.ClusterEnv(t, "MQ_TEST_TLS_CA_FILE")
	for i, pubURL := range nodes {
		subURL := nodes[(i+1)%len(nodes)]
		t.Run(fmt.Sprintf("node%d-to-node%d", i+1, (i+1)%len(nodes)+1), func(t *testing.T) {
			opts := func(u string) rabbitmq.Options {
				return rabbitmq.Options{URL: u, Config: amqp.Config{TLSClientConfig: clusterTLS(t, ca, "")}, QueueExpires: 10 * time.Minute}
			}
			pub, err := newBroker(t, opts(pubURL))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			sub, err := newBroker(t, opts(subURL))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			topic := uniqueTopic(t)
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			if err := mq.Provision(ctx, sub, topic, "g"); err != nil {
				t.Fatalf("Provision: %v", err)
			}
			c := newCollector()
			subscribe(t, sub, topic, c.handler, mq.Group("g"))
			const n = 50
			for j := range n {
				if err := pub.Publish(ctx, topic, &mq.Message{ID: fmt.Sprint(j), Body: []byte(fmt.Sprintf("body %d\x00\xff", j))}); err != nil {
					t.Fatalf("Publish %d: %v", j, err)
				}
			}
			got := map[string]string{}
			for _, m := range c.wait(t, n) {
				got[m.ID] = string(m.Body)
			}
			for j := range n {
				if want := fmt.Sprintf("body %d\x00\xff", j); got[fmt.Sprint(j)] != want {
					t.Errorf("message %d: got body %q, want %q", j, got[fmt.Sprint(j)], want)
				}
			}
		})
	}
}

// TestTLSFailures checks that a wrong password, an untrusted CA and a
// wrong server name each fail New within a bound, with an error that
// names the problem and holds no secret.
func TestTLSFailures(t *testing.T) {
	node := clusterNodeURLs(t, "MQ_TEST_AMQPS_CLUSTER_URL")[0]
	ca := brokertest.ClusterEnv(t, "MQ_TEST_TLS_CA_FILE")
	const secret = "S3cret-pa55word-never-printed"
	wrongPass := strings.Replace(node, "guest:guest@", "guest:"+secret+"@", 1)
	if wrongPass == node {
		t.Fatalf("cluster URL has no guest:guest user info")
	}
	otherCA := writeUnrelatedCA(t, t.TempDir())
	cases := []struct {
		name string
		opts rabbitmq.Options
		want []string // substrings the error must hold (case-insensitive)
	}{
		{"wrong password", rabbitmq.Options{URL: wrongPass, Config: amqp.Config{TLSClientConfig: clusterTLS(t, ca, "")}}, []string{"authentication failed"}},
		{"untrusted CA", rabbitmq.Options{URL: wrongPass, Config: amqp.Config{TLSClientConfig: clusterTLS(t, otherCA, "")}}, []string{"certificate", "unknown authority"}},
		{"wrong server name", rabbitmq.Options{URL: wrongPass, Config: amqp.Config{TLSClientConfig: clusterTLS(t, ca, "wrong.invalid")}}, []string{"certificate", "wrong.invalid"}},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			start := time.Now()
			_, err := newBroker(t, c.opts)
			took := time.Since(start)
			if err == nil {
				t.Fatalf("New: got nil error, want one naming %q", c.want)
			}
			t.Logf("New failed after %v: %v", took.Round(time.Millisecond), err)
			for _, w := range c.want {
				if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(w)) {
					t.Errorf("New error %q: does not name the problem (want %q in it)", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("New error %q: holds the password", err)
			}
			if took > 20*time.Second {
				t.Errorf("New took %v to fail, want at most 20s", took)
			}
			if mq.IsRetryable(err) {
				t.Errorf("New error %q: IsRetryable true, want false (retrying cannot fix configuration)", err)
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
