package mq_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

// TestOpenRejectsMalformedQueryOnEveryScheme pins issue 20: malformed
// query parameters (a ';' separator, a bad percent escape) used to be
// dropped silently, so "?provision=false;x" left provisioning on. Every
// registered scheme must refuse them with mq.ErrInvalidURL, before it
// connects (nothing listens on the addresses used here).
func TestOpenRejectsMalformedQueryOnEveryScheme(t *testing.T) {
	bases := map[string]string{
		"mem": "mem://malformed",
		"sqs": "sqs://?region=us-east-1&endpoint=http%3A%2F%2F127.0.0.1%3A1",
	}
	for _, scheme := range mq.Schemes() {
		base, ok := bases[scheme]
		if !ok {
			base = scheme + "://127.0.0.1:1/"
		}
		for _, q := range []string{"group=billing;x", "no_such_param=%zz", "provision=false;x", "group=%zz"} {
			u := base + "?" + q
			if strings.Contains(base, "?") {
				u = base + "&" + q
			}
			t.Run(scheme+"/"+q, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				start := time.Now()
				b, err := mq.Open(ctx, u)
				if err == nil {
					_ = b.Close(ctx)
				}
				if !errors.Is(err, mq.ErrInvalidURL) {
					t.Fatalf("Open(%q): got %v, want mq.ErrInvalidURL", u, err)
				}
				if took := time.Since(start); took > time.Second {
					t.Errorf("Open(%q) took %v to refuse, want at once", u, took)
				}
			})
		}
	}
}
