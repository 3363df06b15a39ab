package driver

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
)

func parse(t *testing.T, raw string) *Params {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return NewParams("test", u)
}

func TestReadsTypedValuesAndDefaults(t *testing.T) {
	p := parse(t, "x://h?group=g&n=5&on&off=false&wait=250ms&kind=b")
	if got := p.String("group", "d"); got != "g" {
		t.Errorf("group = %q, want g", got)
	}
	if got := p.String("absent", "d"); got != "d" {
		t.Errorf("absent = %q, want default d", got)
	}
	if got := p.Int("n", 1, 0, 10); got != 5 {
		t.Errorf("n = %d, want 5", got)
	}
	if !p.Bool("on", false) || p.Bool("off", true) {
		t.Error("bools misread")
	}
	if got := p.Duration("wait", time.Second, 0, time.Minute); got != 250*time.Millisecond {
		t.Errorf("wait = %v, want 250ms", got)
	}
	if got := p.Enum("kind", "a", "a", "b"); got != "b" {
		t.Errorf("kind = %q, want b", got)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("Err = %v, want nil", err)
	}
}

func TestErrorsNameTheParameterAndTheFix(t *testing.T) {
	p := parse(t, "x://h?n=50&n2=abc&wait=soon&kind=z&grop=1&dup=1&dup=2&password=hunter2")
	p.Int("n", 1, 0, 10)
	p.Int("n2", 1, 0, 10)
	p.Duration("wait", 0, 0, time.Minute)
	p.Enum("kind", "a", "a", "b")
	p.String("dup", "")
	p.Secret("password", "")
	p.String("group", "")
	err := p.Err()
	if !errors.Is(err, mq.ErrInvalidURL) {
		t.Fatalf("Err = %v, want ErrInvalidURL", err)
	}
	for _, want := range []string{
		`"n" is 50; want 0 to 10`, `"n2" is "abc"`, `"wait" is "soon"`, `"kind" is "z"; use one of a, b`,
		`unknown parameter "grop"`, `"dup" is given 2 times`, "known parameters:", "group",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q leaks a secret", err)
	}
}

func TestMalformedQueryIsAnError(t *testing.T) {
	for _, raw := range []string{"x://h?group=billing;x", "x://h?no_such_param=%zz", "x://h?provision=false;x"} {
		p := parse(t, raw)
		p.Group()
		p.Provision()
		if err := p.Err(); !errors.Is(err, mq.ErrInvalidURL) || !strings.Contains(err.Error(), "malformed query") {
			t.Errorf("%s: got %v, want a malformed-query error", raw, err)
		}
	}
}

func TestRenamedNamesTheNewSpelling(t *testing.T) {
	p := parse(t, "x://h?maxMessageBytes=10")
	p.Renamed("maxMessageBytes", "max_message_bytes")
	p.MaxMessageBytes(100, 1, 1000)
	err := p.Err()
	if !errors.Is(err, mq.ErrInvalidURL) || !strings.Contains(err.Error(), `"max_message_bytes"`) || strings.Contains(err.Error(), "unknown") {
		t.Errorf("got %v, want an error naming max_message_bytes and no unknown parameter", err)
	}
	p = parse(t, "x://h?max_message_bytes=10")
	p.Renamed("maxMessageBytes", "max_message_bytes")
	if n := p.MaxMessageBytes(100, 1, 1000); n != 10 || p.Err() != nil {
		t.Errorf("new spelling: got %d, %v; want 10, nil", n, p.Err())
	}
}

func TestTLSParameters(t *testing.T) {
	p := parse(t, "x://h?tls_server_name=broker.example&tls_insecure_skip_verify=true")
	f, on := p.TLS(false)
	if !on || f.ServerName != "broker.example" || !f.InsecureSkipVerify || p.Err() != nil {
		t.Errorf("got %+v, %v, %v; want TLS on with the server name", f, on, p.Err())
	}
	p = parse(t, "x://h")
	if _, on := p.TLS(false); on {
		t.Error("no tls parameter: TLS on, want off")
	}
	p = parse(t, "x://h")
	if _, on := p.TLS(true); !on {
		t.Error("on by default: TLS off, want on")
	}
	p = parse(t, "x://h?tls=false&tls_ca_file=/ca.pem")
	p.TLS(false)
	if err := p.Err(); !errors.Is(err, mq.ErrInvalidURL) {
		t.Errorf("tls=false with tls_ca_file: got %v, want an error", err)
	}
	if _, err := (TLSFiles{CAFile: "/no/such/ca.pem"}).Config("x"); !errors.Is(err, mq.ErrInvalidURL) || !strings.Contains(err.Error(), "tls_ca_file") {
		t.Errorf("missing CA file: got %v, want an error naming tls_ca_file", err)
	}
	if _, err := (TLSFiles{CertFile: "/c.pem"}).Config("x"); !errors.Is(err, mq.ErrInvalidURL) {
		t.Errorf("cert without key: got %v, want an error", err)
	}
}

func TestUnknownNameWithUserInfoIsNotPrinted(t *testing.T) {
	p := parse(t, "x://h?Zq7s@host:1/x=1")
	err := p.Err()
	if err == nil || strings.Contains(err.Error(), "Zq7s") {
		t.Errorf("got %v, want an error that does not print the name", err)
	}
}
