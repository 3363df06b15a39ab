package driver

import (
	"net/url"
	"strings"
	"testing"
)

func TestRedactHidesUserAndPassword(t *testing.T) {
	for raw, want := range map[string]string{
		"amqp://someone:s3cret@rabbit:5672/vh?group=g": "amqp://***@rabbit:5672/vh",
		"kafka://k1:9092,k2:9092?sasl=plain":           "kafka://k1:9092,k2:9092",
		"amqps://onlyuser@rabbit/":                     "amqps://***@rabbit/",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		got := Redact(u)
		if got != want || strings.Contains(got, "someone") || strings.Contains(got, "s3cret") || strings.Contains(got, "onlyuser") {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}
