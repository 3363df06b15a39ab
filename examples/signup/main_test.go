package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/examples/internal/exampletest"
)

func TestSignup(t *testing.T) {
	exampletest.Run(t, func(t *testing.T, ctx context.Context, url string, _ mq.Capabilities) {
		var out bytes.Buffer
		cfg := config{Prefix: exampletest.Prefix(t), Before: 3, During: 12}
		got, err := run(ctx, url, &out, cfg)
		t.Logf("output:\n%s", &out)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		want := cfg.Before + cfg.During
		if got.SignedUp != want {
			t.Errorf("signed up: got %d, want %d", got.SignedUp, want)
		}
		if got.Sent != got.SignedUp {
			t.Errorf("welcome emails: got %d, want %d, one per sign-up", got.Sent, got.SignedUp)
		}
		for _, line := range []string{
			"email service down: 12 more users signed up",
			"12 sign-ups wait in the broker",
			"sent the 12 waiting emails",
			"done: 15 users signed up, 15 welcome emails sent",
		} {
			if !strings.Contains(out.String(), line) {
				t.Errorf("output lacks %q", line)
			}
		}
	})
}
