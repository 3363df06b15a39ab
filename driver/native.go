package driver

import (
	"github.com/seedmq/mq"
	"github.com/seedmq/mq/internal/hook"
)

// SetNative attaches the broker's own representation of a delivery to m,
// so that the handler's m.As(&target) can reach it. Call it before the
// message is handed to the handler; raw is usually a value (not a
// pointer) of the client library's delivery type, and the driver's
// package doc lists which types As accepts.
func SetNative(m *mq.Message, raw any) {
	hook.SetMessageRaw(m, raw)
}
