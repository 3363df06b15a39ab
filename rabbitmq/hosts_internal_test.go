package rabbitmq

import (
	"errors"
	"strings"
	"testing"

	"github.com/seedmq/mq"
)

// TestClusterHostList checks how a URL naming several hosts is split: one
// endpoint per host, in order, each with the user, vhost and no query,
// none with the password in its redacted form.
func TestClusterHostList(t *testing.T) {
	s, err := resolve(Options{URL: "amqps://u:s3cret@h1:5671,h2,10.0.0.3:5673/vh?heartbeat=5s"})
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	want := []endpoint{
		{"amqps://u:s3cret@h1:5671/vh", "amqps://***@h1:5671/vh"},
		{"amqps://u:s3cret@h2/vh", "amqps://***@h2/vh"},
		{"amqps://u:s3cret@10.0.0.3:5673/vh", "amqps://***@10.0.0.3:5673/vh"},
	}
	if len(s.hosts) != len(want) {
		t.Fatalf("got %d hosts %+v, want %d", len(s.hosts), s.hosts, len(want))
	}
	for i, w := range want {
		if s.hosts[i] != w {
			t.Errorf("host %d: got %+v, want %+v", i, s.hosts[i], w)
		}
	}
	if s.dialURL != want[0].dialURL || strings.Contains(s.redacted, "s3cret") || !strings.Contains(s.redacted, "h1:5671,h2,10.0.0.3:5673") {
		t.Errorf("got dial URL %q and redacted %q, want the first host's URL and every host without the password", s.dialURL, s.redacted)
	}

	for _, bad := range []string{"amqp://u:s3cret@h1:5672,,h2:5672/", "amqp://u:s3cret@h1:5672,h2:x/", "amqp://u:s3cret@h1:5672,/"} {
		_, err := resolve(Options{URL: bad})
		if !errors.Is(err, mq.ErrInvalidURL) {
			t.Errorf("resolve(%q): got %v, want ErrInvalidURL", strings.ReplaceAll(bad, "s3cret", "xxxxx"), err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("resolve: error %q holds the password", err)
		}
	}
}
