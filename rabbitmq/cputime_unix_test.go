//go:build unix

package rabbitmq_test

import "syscall"

// cpuTime returns the CPU time (user and system) the process has used, in
// nanoseconds: the client's cost, as the broker runs in another process.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
