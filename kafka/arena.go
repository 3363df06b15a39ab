package kafka

// arenaChunk is the size of the blocks an arena carves; arenaMaxShared
// is the largest piece it takes from a shared block. A message keeps
// the block its bytes lie in reachable for as long as the message is,
// so a handler that retains a message retains at most arenaChunk bytes
// for it, besides its own.
const (
	arenaChunk     = 64 << 10
	arenaMaxShared = arenaChunk / 8
)

// arena hands out the memory for the bytes and strings of fetched
// messages from shared blocks, so that a message costs a fraction of an
// allocation instead of one per key, body, ID and header value. One
// fetcher goroutine owns it; it is not safe for concurrent use. The zero
// value is ready to use, and a nil *arena allocates every piece on its
// own.
type arena struct {
	free []byte // the unused rest of the current block
}

// alloc returns n bytes (capacity n, so an append to them never reaches
// a neighbour's) that no other call returns.
func (a *arena) alloc(n int) []byte {
	if n == 0 {
		return []byte{} // not nil: an empty value is not a null one
	}
	if a == nil || n > arenaMaxShared {
		return make([]byte, n)
	}
	if len(a.free) < n {
		a.free = make([]byte, arenaChunk)
	}
	b := a.free[:n:n]
	a.free = a.free[n:]
	return b
}
