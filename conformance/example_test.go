package conformance_test

import (
	"fmt"

	"github.com/seedmq/mq/conformance"
)

// Cases lists the suite in the order Run runs it, for documentation or to
// select cases with go test -run.
func ExampleCases() {
	names := conformance.Cases()
	fmt.Println(names[0], names[1], names[2])
	// Output: round-trip publish-before-subscribe body-bytes
}
