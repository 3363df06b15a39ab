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
