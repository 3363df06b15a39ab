package driver

import (
	"net/url"
	"strings"
)

// Redact returns u as text for errors and logs, with the whole user info,
// user name and password alike, replaced by "***" and without the query
// (whose parameters may name secrets files): "amqp://***@rabbit:5672/vhost".
// No byte of a URL's user info may appear in what a driver prints.
func Redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User("***")
	}
	c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = "", false, "", ""
	return strings.Replace(c.String(), "%2A%2A%2A@", "***@", 1)
}
