//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package dirlock

import "os"

// flock excludes nothing where the system has no flock(2); see the
// package documentation.
func flock(*os.File) (held bool, err error) { return false, nil }
