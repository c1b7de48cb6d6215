//go:build unix

package onnxgrad

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user + system) that all of the process's threads
// have used.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
