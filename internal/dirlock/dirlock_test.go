package dirlock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/marginaudit/marginaudit/internal/dirlock"
)

// TestMain lets a test run a lock holder in a child process (the test
// binary itself, with DIRLOCK_TEST_HOLD=DIR): it locks DIR, says "locked"
// on stdout and waits to be killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("DIRLOCK_TEST_HOLD"); dir != "" {
		l, err := dirlock.TryLock(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("locked")
		// Sleep rather than block forever: the runtime ends a process whose
		// goroutines all block ("all goroutines are asleep"). Using l after
		// the sleep keeps its file from the garbage collector, whose
		// finalizer would close it and drop the lock.
		time.Sleep(time.Hour)
		l.Close()
	}
	os.Exit(m.Run())
}

// heldBy returns the *HeldError of err, or fails the test.
func heldBy(t *testing.T, err error) *dirlock.HeldError {
	t.Helper()
	var held *dirlock.HeldError
	if !errors.As(err, &held) {
		t.Fatalf("got error %v, want a *HeldError", err)
	}
	return held
}

// Two locks of one folder exclude each other even in one process, since
// each opens the lock file anew; the refusal names the holder; Close
// removes the lock file and the folders that locking created.
func TestTryLockExcludes(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b")
	l, err := dirlock.TryLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dirlock.TryLock(dir)
	held := heldBy(t, err)
	if held.Dir != dir || held.PID != os.Getpid() || !strings.HasPrefix(held.Command, filepath.Base(os.Args[0])) {
		t.Errorf("refusal %+v, want folder %s, PID %d and this test's command", held, dir, os.Getpid())
	}
	want := fmt.Sprintf("%s is in use by process %d (%s", dir, os.Getpid(), filepath.Base(os.Args[0]))
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q, want it to start with %q", err, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the folders that locking created are still there after Close: %v", err)
	}
	l, err = dirlock.TryLock(dir)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	defer l.Close()
}

// A folder that existed stays, with what else it holds; only the lock
// file goes.
func TestCloseKeepsWhatWasThere(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "a", "margins.csv")
	if err := os.MkdirAll(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := dirlock.TryLock(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", dirlock.FileName)); err != nil {
		t.Errorf("no lock file while locked: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "a"))
	if len(ents) != 1 || ents[0].Name() != "margins.csv" {
		t.Errorf("after Close the folder holds %v, want margins.csv alone", ents)
	}
	var nilLock *dirlock.Lock
	if err := nilLock.Close(); err != nil {
		t.Errorf("Close of a nil *Lock: %v", err)
	}
}

// A lock file that no process holds, whatever it says, is no lock.
func TestLeftoverFileIsNoLock(t *testing.T) {
	for name, content := range map[string]string{
		"record of a dead process": "999999\nmarginaudit train --out x\n",
		"empty":                    "",
		"garbage":                  "\x00\xff not a record",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, dirlock.FileName), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := dirlock.TryLock(dir)
			if err != nil {
				t.Fatalf("locking over a leftover lock file: %v", err)
			}
			_, err = dirlock.TryLock(dir)
			if held := heldBy(t, err); held.PID != os.Getpid() {
				t.Errorf("the lock file names process %d, want this one (%d)", held.PID, os.Getpid())
			}
			l.Close()
		})
	}
}

// Wait returns the lock once its holder closes it, and gives up when its
// context is done.
func TestWait(t *testing.T) {
	dir := t.TempDir()
	holder, err := dirlock.TryLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := dirlock.Wait(ctx, dir); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled context: %v, want context.Canceled", err)
	}

	closed := make(chan struct{})
	go func() {
		time.Sleep(3 * time.Millisecond) // let Wait find the folder held
		close(closed)
		holder.Close()
	}()
	l, err := dirlock.Wait(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	default:
		t.Error("Wait returned while the holder held the lock")
	}
	l.Close()
}

// Locks taken and released in a tight loop from several goroutines, each
// with descriptors of its own, on a folder that every release removes,
// never overlap: a lock on a lock file that a release removed meanwhile is
// given up, not held.
func TestContention(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	const workers, rounds = 4, 50
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < rounds; {
				l, err := dirlock.TryLock(dir)
				var held *dirlock.HeldError
				if errors.As(err, &held) {
					runtime.Gosched()
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				runtime.Gosched()
				inside.Add(-1)
				if err := l.Close(); err != nil {
					t.Error(err)
				}
				done++
			}
		}()
	}
	wg.Wait()
	if n := overlaps.Load(); n > 0 {
		t.Errorf("%d of %d locks overlapped another", n, workers*rounds)
	}
	if _, err := os.Stat(filepath.Join(dir, dirlock.FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a lock file is left after every lock was closed: %v", err)
	}
}

// A holder killed with SIGKILL leaves its lock file, which is no lock: the
// next TryLock takes it at once. Before the kill, the refusal names the
// holder's PID.
func TestKilledHolderLeavesNoLock(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DIRLOCK_TEST_HOLD="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "locked\n" {
		t.Fatalf("the holder said %q (%v), want locked", line, err)
	}
	_, err = dirlock.TryLock(dir)
	if held := heldBy(t, err); held.PID != cmd.Process.Pid {
		t.Errorf("refusal names process %d, want the holder %d", held.PID, cmd.Process.Pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	rec, err := os.ReadFile(filepath.Join(dir, dirlock.FileName))
	if err != nil || !strings.HasPrefix(string(rec), strconv.Itoa(cmd.Process.Pid)+"\n") {
		t.Fatalf("the killed holder's lock file: %q, %v; want its record left behind", rec, err)
	}
	l, err := dirlock.TryLock(dir)
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l.Close()
}

func ExampleTryLock() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	l, err := dirlock.TryLock(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	// A second writer of the folder is refused, even in this process.
	_, err = dirlock.TryLock(dir)
	var held *dirlock.HeldError
	if errors.As(err, &held) {
		fmt.Println("refused; held by this process:", held.PID == os.Getpid())
	}
	// Output: refused; held by this process: true
}
