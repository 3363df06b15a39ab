package driver

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seedmq/mq"
)

// Params reads a driver URL's query parameters with one set of rules for
// every driver: each parameter is read once with its type and range,
// repeated or malformed values are errors naming the parameter and the
// fix, and anything left unread is an unknown parameter. Values of
// parameters read with Secret never appear in errors.
//
// Create it with NewParams, read every parameter the driver knows, then
// call Err.
type Params struct {
	driver string
	q      url.Values
	known  []string
	old    []string // spellings Renamed reports, not listed as known
	errs   []string
}

// NewParams returns a reader for u's query; driver prefixes error messages.
//
// The raw query is parsed strictly: a malformed pair (a bad percent
// escape, a ';' separator) is an error, not silently dropped.
func NewParams(driver string, u *url.URL) *Params {
	q, err := url.ParseQuery(u.RawQuery)
	p := &Params{driver: driver, q: q}
	if err != nil {
		p.errs = append(p.errs, fmt.Sprintf("malformed query (%v); separate parameters with '&' and percent-encode reserved characters in values", err))
	}
	return p
}

// lookup marks name as known and returns its single value.
func (p *Params) lookup(name string) (string, bool) {
	p.known = append(p.known, name)
	vs, ok := p.q[name]
	if !ok {
		return "", false
	}
	if len(vs) > 1 {
		p.fail(name, "is given %d times; give it once", len(vs))
		return "", false
	}
	return vs[0], true
}

func (p *Params) fail(name, format string, args ...any) {
	p.errs = append(p.errs, fmt.Sprintf("parameter %q %s", name, fmt.Sprintf(format, args...)))
}

// String returns the value of name, or def when it is absent.
func (p *Params) String(name, def string) string {
	v, ok := p.lookup(name)
	if !ok {
		return def
	}
	return v
}

// Secret is String for a value that must never be printed.
func (p *Params) Secret(name, def string) string {
	v, ok := p.lookup(name)
	if !ok {
		return def
	}
	return v
}

// Enum returns the value of name, which must be one of allowed, or def.
func (p *Params) Enum(name, def string, allowed ...string) string {
	v, ok := p.lookup(name)
	if !ok {
		return def
	}
	if !slices.Contains(allowed, v) {
		p.fail(name, "is %q; use one of %s", v, strings.Join(allowed, ", "))
		return def
	}
	return v
}

// Int returns the value of name as an integer in [lo, hi], or def.
func (p *Params) Int(name string, def, lo, hi int) int {
	v, ok := p.lookup(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.fail(name, "is %q; want a whole number from %d to %d", v, lo, hi)
		return def
	}
	if n < lo || n > hi {
		p.fail(name, "is %d; want %d to %d", n, lo, hi)
		return def
	}
	return n
}

// Bool returns the value of name as a boolean (true/false/1/0), or def.
// A parameter given with no value ("?tls") counts as true.
func (p *Params) Bool(name string, def bool) bool {
	v, ok := p.lookup(name)
	if !ok {
		return def
	}
	if v == "" {
		return true
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(name, "is %q; want true or false", v)
		return def
	}
	return b
}

// Duration returns the value of name as a Go duration ("250ms", "30s") in
// [lo, hi], or def.
func (p *Params) Duration(name string, def, lo, hi time.Duration) time.Duration {
	v, ok := p.lookup(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.fail(name, "is %q; want a duration such as 500ms or 30s", v)
		return def
	}
	if d < lo || d > hi {
		p.fail(name, "is %v; want %v to %v", d, lo, hi)
		return def
	}
	return d
}

// Err returns nil if every parameter was known and well formed, and
// otherwise an error wrapping mq.ErrInvalidURL that lists each problem and
// the known parameters.
func (p *Params) Err() error {
	var unknown []string
	for name := range p.q {
		if !slices.Contains(p.known, name) && !slices.Contains(p.old, name) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		if strings.ContainsAny(name, "@:/") {
			// Not a parameter name: the tail of a password holding '?'
			// that cut the URL early. Never print it.
			p.errs = append(p.errs, "an unknown parameter whose name holds '@', ':' or '/' (a password holding '?' must be percent-encoded as %3F)")
			continue
		}
		p.errs = append(p.errs, fmt.Sprintf("unknown parameter %q", name))
	}
	if len(p.errs) == 0 {
		return nil
	}
	known := slices.Clone(p.known)
	slices.Sort(known)
	known = slices.Compact(known)
	msg := strings.Join(p.errs, "; ")
	if len(unknown) > 0 {
		msg += fmt.Sprintf(" (known parameters: %s)", strings.Join(known, ", "))
	}
	return fmt.Errorf("%s: %w: %s", p.driver, mq.ErrInvalidURL, msg)
}

// Renamed reports an error if the URL uses old, a spelling this driver
// no longer reads, telling the user to write name instead.
func (p *Params) Renamed(old, name string) {
	p.old = append(p.old, old)
	if _, ok := p.q[old]; ok {
		p.errs = append(p.errs, fmt.Sprintf("parameter %q is spelled %q now", old, name))
	}
}

// The parameters every driver reads with the same name and meaning.

// Group reads group, the default consumer group of Subscribe calls that
// give no mq.Group option (default "": the driver's own default).
func (p *Params) Group() string { return p.String("group", "") }

// Provision reads provision (default true): whether the driver creates
// missing topics, groups and their broker objects. With provision=false
// it uses what exists and reports what is missing with mq.ErrNotFound.
func (p *Params) Provision() bool { return p.Bool("provision", true) }

// MaxMessageBytes reads max_message_bytes, the largest message Publish
// accepts (mq.Message.Size), in [lo, hi], or def.
func (p *Params) MaxMessageBytes(def, lo, hi int) int {
	return p.Int("max_message_bytes", def, lo, hi)
}

// TLS reads the TLS parameters: tls (a bool, default on), tls_ca_file,
// tls_cert_file, tls_key_file, tls_server_name and
// tls_insecure_skip_verify. It reports whether TLS is asked for: by
// on, by tls=true, or by any tls_* parameter; tls=false with a tls_*
// parameter is an error. Build the configuration with TLSFiles.Config.
func (p *Params) TLS(on bool) (TLSFiles, bool) {
	f := TLSFiles{
		CAFile:             p.String("tls_ca_file", ""),
		CertFile:           p.String("tls_cert_file", ""),
		KeyFile:            p.String("tls_key_file", ""),
		ServerName:         p.String("tls_server_name", ""),
		InsecureSkipVerify: p.Bool("tls_insecure_skip_verify", false),
	}
	_, given := p.q["tls"]
	on = p.Bool("tls", on)
	files := f != TLSFiles{}
	if given && !on && files {
		p.fail("tls", "is false, but tls_* parameters are given; remove them or set tls=true")
	}
	return f, on || files
}
