package mq

import "github.com/google/uuid"

// NewID returns a new message ID: a UUIDv7 in its canonical text form.
// UUIDv7 values sort by creation time, which keeps broker indexes and logs
// in publish order.
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does; a v4
		// UUID from the same source would fail too, so this is fatal.
		panic("mq: cannot generate a message ID: " + err.Error())
	}
	return id.String()
}
