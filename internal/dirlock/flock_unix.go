//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package dirlock

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// flock takes an exclusive flock on f without blocking; held is true when
// another open file description holds it.
func flock(f *os.File) (held bool, err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
			if ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return false, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	if errors.Is(ferr, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if ferr != nil {
		return false, fmt.Errorf("locking %s: %w", f.Name(), ferr)
	}
	return false, nil
}
