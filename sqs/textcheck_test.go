package sqs

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// refIsSQSText is the plain definition isSQSTextBytes must agree with:
// valid UTF-8 made only of the characters SQS allows.
func refIsSQSText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !sqsRune(r) {
			return false
		}
	}
	return true
}

func TestIsSQSTextBytes(t *testing.T) {
	long := []byte("0123456789abcdefghijklmnopqrstuvwxyz ~\x7f")
	cases := [][]byte{
		nil, {}, []byte("a"), []byte("\t\n\r"), long,
		append(append([]byte{}, long...), 0),                                          // a control byte after the fast path
		append([]byte{0x1f}, long...),                                                 // one at the start
		append(append([]byte{}, long[:16]...), append([]byte{0x0b}, long[16:]...)...), // inside an 8-byte word
		append(append([]byte{}, long[:8]...), "é€😀\uFFFD"...),
		append(append([]byte{}, long[:8]...), "\uFFFE"...),
		append(append([]byte{}, long[:8]...), "\uFFFF"...),
		append(append([]byte{}, long[:8]...), 0xed, 0xa0, 0x80), // a surrogate, not valid UTF-8
		append(append([]byte{}, long[:8]...), 0xe2, 0x82),       // cut short
		append(append([]byte{}, long[:8]...), 0xff, 'a', 'b', 'c', 'd', 'e', 'f', 'g'),
		[]byte("\x00\x00\x00\x00\x00\x00\x00\x00"),
		[]byte("       \x19"), []byte("\x19       "), []byte("        \x00"),
	}
	for i, c := range cases {
		if got, want := isSQSTextBytes(c), refIsSQSText(c); got != want {
			t.Errorf("case %d %q: got %v, want %v", i, c, got, want)
		}
	}
	// Random bytes from an alphabet that mixes the fast path's boundaries
	// with multi-byte and invalid sequences.
	alphabet := []byte{0, 0x08, 0x09, 0x0a, 0x0b, 0x0d, 0x1f, 0x20, 'a', 0x7e, 0x7f, 0x80, 0xbf, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xef, 0xbf, 0xbe, 0xf0, 0x9f, 0x98, 0x80, 0xff}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[i] = byte(0x20 + rng.IntN(0x5f))
			}
		}
		if got, want := isSQSTextBytes(b), refIsSQSText(b); got != want {
			t.Fatalf("%q: got %v, want %v", b, got, want)
		}
	}
}

func BenchmarkIsSQSTextBytes64K(b *testing.B) {
	body := make([]byte, 64<<10)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if !isSQSTextBytes(body) {
			b.Fatal("not text")
		}
	}
}
