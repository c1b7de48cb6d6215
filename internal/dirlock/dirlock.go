package dirlock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FileName is the name of the lock file inside a locked folder.
const FileName = ".marginaudit.lock"

const (
	// pollInterval is how often Wait tries the lock again.
	pollInterval = 100 * time.Millisecond
	// maxCommand bounds the command line recorded in the lock file, in
	// bytes.
	maxCommand = 200
	// holderReads and holderRetry bound how long a refused process waits
	// for the holder to finish writing its PID: a holder writes right
	// after it takes the lock, so a few milliseconds suffice.
	holderReads = 20
	holderRetry = 5 * time.Millisecond
	// maxAttempts bounds the retries of TryLock when the lock file it
	// opened was removed or replaced before it held it; each retry means
	// another process released the folder meanwhile.
	maxAttempts = 100
)

// A Lock is a held lock on a folder.
type Lock struct {
	dir     string
	f       *os.File
	created string // the topmost folder that locking created, or ""
}

// HeldError is the error of TryLock on a folder that another open lock
// holds.
type HeldError struct {
	Dir     string // the folder
	PID     int    // the holder's process ID; 0 when it could not be read
	Command string // the holder's command line, when known
}

func (e *HeldError) Error() string {
	switch {
	case e.PID == 0:
		return fmt.Sprintf("%s is in use by another process", e.Dir)
	case e.Command == "":
		return fmt.Sprintf("%s is in use by process %d", e.Dir, e.PID)
	}
	return fmt.Sprintf("%s is in use by process %d (%s)", e.Dir, e.PID, e.Command)
}

// TryLock locks the folder dir, creating it when needed, or returns a
// *HeldError at once when another lock holds it.
func TryLock(dir string) (*Lock, error) {
	created, err := mkdirAll(dir)
	if err != nil {
		return nil, err
	}
	l := &Lock{dir: dir, created: created}
	for range maxAttempts {
		f, err := l.open()
		if f == nil && err == nil {
			continue
		}
		if err != nil {
			l.removeCreated()
			return nil, err
		}
		l.f = f
		return l, nil
	}
	l.removeCreated()
	return nil, fmt.Errorf("locking %s: its lock file was replaced %d times in a row", dir, maxAttempts)
}

// open opens and locks the lock file and records this process in it. It
// returns neither file nor error when the file it opened was removed or
// replaced meanwhile by another lock's Close: then try again.
func (l *Lock) open() (*os.File, error) {
	f, err := os.OpenFile(l.path(), os.O_RDWR|os.O_CREATE, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		// Another lock's Close removed the folder it had created.
		created, err := mkdirAll(l.dir)
		if l.created == "" {
			l.created = created
		}
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", l.dir, err)
	}
	held, err := flock(f)
	var same bool
	if err == nil {
		same, err = isLockFile(f, l.path())
	}
	switch {
	case err == nil && !same:
		f.Close()
		return nil, nil
	case err == nil && held:
		err = readHolder(f, l.dir)
	case err == nil:
		err = writeHolder(f)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Wait locks the folder dir like TryLock, trying again while another lock
// holds it, until ctx is done.
func Wait(ctx context.Context, dir string) (*Lock, error) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		l, err := TryLock(dir)
		if _, ok := err.(*HeldError); !ok {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", dir, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// Close releases the lock: it removes the lock file, then the folders that
// TryLock created if they are empty, and unlocks. Close is idempotent and
// may be called on a nil *Lock.
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Removed while held: a process that opened the file meanwhile finds,
	// once it holds the lock, that the name no longer leads to it.
	err := os.Remove(l.path())
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	l.removeCreated()
	if err != nil {
		return fmt.Errorf("unlocking %s: %w", l.dir, err)
	}
	return nil
}

func (l *Lock) path() string { return filepath.Join(l.dir, FileName) }

// removeCreated removes the folders that TryLock created, from dir
// upwards, as long as they are empty.
func (l *Lock) removeCreated() {
	if l.created == "" {
		return
	}
	for d := filepath.Clean(l.dir); os.Remove(d) == nil && d != l.created; d = filepath.Dir(d) {
	}
}

// mkdirAll creates dir and its missing parents, and returns the topmost
// folder it created ("" when dir existed). Another lock's Close may remove
// a parent it just created (an empty folder that lock had created), so a
// creation that finds a parent gone starts over.
func mkdirAll(dir string) (created string, err error) {
	for attempt := 0; ; attempt++ {
		created = ""
		for d := filepath.Clean(dir); ; {
			if _, err := os.Stat(d); err == nil {
				break
			}
			created = d
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
		err := os.MkdirAll(dir, 0o755)
		if err == nil {
			return created, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt >= maxMkdirAttempts {
			return "", fmt.Errorf("locking %s: %w", dir, err)
		}
	}
}

// maxMkdirAttempts bounds mkdirAll's retries: each one needs another
// process to remove the folder in the instant between two mkdir calls.
const maxMkdirAttempts = 100

// isLockFile reports whether path still names the open file f.
func isLockFile(f *os.File, path string) (bool, error) {
	have, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("locking: %w", err)
	}
	named, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("locking: %w", err)
	}
	return os.SameFile(have, named), nil
}

// writeHolder records this process in the lock file f.
func writeHolder(f *os.File) error {
	args := append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...)
	rec := formatHolder(os.Getpid(), strings.Join(args, " "))
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("locking: %w", err)
	}
	if _, err := f.WriteAt([]byte(rec), 0); err != nil {
		return fmt.Errorf("locking: %w", err)
	}
	return nil
}

// formatHolder formats the record of a holder: its PID on the first line,
// its command on the second, on one line and at most maxCommand bytes.
func formatHolder(pid int, cmd string) string {
	cmd = strings.NewReplacer("\n", " ", "\r", " ").Replace(cmd)
	if len(cmd) > maxCommand {
		cmd = strings.ToValidUTF8(cmd[:maxCommand], "") + "…"
	}
	return fmt.Sprintf("%d\n%s\n", pid, cmd)
}

// readHolder returns the *HeldError for the folder dir whose lock file f
// another process holds, with the holder's PID and command when they can
// be read. The holder writes them just after it takes the lock, so an
// incomplete record is read again a few times.
func readHolder(f *os.File, dir string) error {
	e := &HeldError{Dir: dir}
	for range holderReads {
		b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<12))
		if err != nil {
			return e
		}
		pid, cmd, ok := parseHolder(string(b))
		if ok {
			e.PID, e.Command = pid, cmd
			return e
		}
		time.Sleep(holderRetry)
	}
	return e
}

// parseHolder reads the record of formatHolder; ok is false when it is
// incomplete or malformed.
func parseHolder(rec string) (pid int, cmd string, ok bool) {
	line, rest, found := strings.Cut(rec, "\n")
	if !found {
		return 0, "", false
	}
	pid, err := strconv.Atoi(line)
	if err != nil || pid <= 0 {
		return 0, "", false
	}
	if cmd, _, found = strings.Cut(rest, "\n"); !found {
		return 0, "", false
	}
	return pid, cmd, true
}
