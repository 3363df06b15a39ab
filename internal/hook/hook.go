// Package hook lets driver-support code reach unexported state of package
// mq without widening mq's public API. Package mq fills the variables in
// its init function; nothing else may assign them.
package hook

// SetMessageRaw attaches a driver's native delivery to a *mq.Message so
// that Message.As can return it. m is a *mq.Message.
var SetMessageRaw func(m any, raw any)
