package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/internal/dirlock"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/trainer/checkpoint"
	"github.com/marginaudit/marginaudit/trainer/checkpoint/checkpointtest"
)

// Every command that writes an output folder is refused, exit status 1,
// while another lock holds the folder (here one of this process, a
// descriptor of its own), before it writes there: the message names the
// folder and the holder, a hint names --wait.
func TestRefusedWhileHeld(t *testing.T) {
	images, labels := models+"/cnn.x.npy", arrays+"/y.npy"
	tests := []struct {
		cmd  string
		args []string
	}{
		{"train", []string{"--data", "mnist", "--arch", "mlp"}},
		{"audit", []string{models + "/cnn.onnx", "--images", images, "--labels", labels}},
		{"study", []string{"--data", "mnist"}},
		{"report", []string{"a=audit"}},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			out := t.TempDir()
			held, err := dirlock.TryLock(out)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			args := append([]string{tt.cmd, "--out", out}, tt.args...)
			stdout, stderr, code := runCLI(t, args...)
			want := fmt.Sprintf("%s: %s: %s is in use by process %d (", progName, tt.cmd, out, os.Getpid())
			if code != 1 || stdout != "" || !strings.HasPrefix(stderr, want) || !strings.HasSuffix(stderr, "\nhint: add --wait to start once that process is done\n") {
				t.Errorf("exit status %d, stdout %q, stderr %q; want 1, nothing, and a refusal starting %q with a hint", code, stdout, stderr, want)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 1 {
				t.Errorf("the refused command wrote in the folder: %v", ents)
			}
		})
	}
}

// A command waiting with --wait for a folder ends at Ctrl-C, or at the
// SIGTERM of a scheduler's time limit, with exit status 1, having written
// nothing.
func TestWaitInterrupted(t *testing.T) {
	for _, tt := range []struct {
		sig   syscall.Signal
		cause string
	}{
		{syscall.SIGINT, "interrupt signal received"},
		{syscall.SIGTERM, "terminated signal received"},
	} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			out := t.TempDir()
			held, err := dirlock.TryLock(out)
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			c := startCLI(t, "report", "a=audit", "--out", out, "--wait")
			c.stderr.waitFor(t, "waiting until it is done")
			c.signal(t, tt.sig)
			want := fmt.Sprintf("%s: report: waiting for %s: %s\n", progName, out, tt.cause)
			if code := c.wait(); code != 1 || !strings.HasSuffix(c.stderr.String(), want) {
				t.Errorf("stopped while waiting: exit status %d, stderr %q; want 1 and %q", code, c.stderr, want)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 1 {
				t.Errorf("the stopped command wrote in the folder: %v", ents)
			}
		})
	}
}

// A lockCase is a command that writes an output folder, tried by
// TestOneWriterPerFolder.
type lockCase struct {
	name string
	// args returns the command line writing to the folder out; run twice
	// into one folder, the second run must change nothing.
	args func(out string) []string
	// same reports how the folder got differs from the folder want of a
	// run alone.
	same func(t *testing.T, got, want string)
}

// TestOneWriterPerFolder runs train and audit into one folder from
// concurrent processes. While a first process holds the folder (stopped
// with SIGSTOP once its lock file names it), a second one is refused at
// once, naming the first's PID, and a third one with --wait waits until the
// first is done; the folder then equals a run alone. A first process killed
// with SIGKILL leaves its lock file behind, and a new run without --wait
// takes the folder at once and finishes the work, as a run alone would.
func TestOneWriterPerFolder(t *testing.T) {
	orttest.Require(t)
	requireMNIST(t)
	ckpts := filepath.Join(t.TempDir(), "ckpts")
	if err := os.MkdirAll(ckpts, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"epoch-000.onnx", "epoch-001.onnx"} {
		copyFile(t, models+"/mlp.onnx", filepath.Join(ckpts, name))
	}
	cases := []lockCase{{
		name: "train",
		args: func(out string) []string {
			return []string{"train", "--data", "mnist", "--arch", "mlp", "--hidden", "16", "--epochs", "1",
				"--train-limit", "500", "--test-limit", "100", "--threads", "1", "--resume", "--out", out}
		},
		same: sameTraining,
	}, {
		name: "audit",
		args: func(out string) []string {
			return []string{"audit", ckpts, "--data", "mnist", "--n", "30", "--threads", "1", "--out", out}
		},
		same: func(t *testing.T, got, want string) {
			t.Helper()
			sameFiles(t, got, want, auditor.MarginsFile, auditor.TransitionsFile, auditor.ConfidenceFile)
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			solo := filepath.Join(dir, "solo")
			if _, stderr, code := runCLI(t, append(tc.args(solo), "-q")...); code != 0 {
				t.Fatalf("run alone exited %d: %s", code, stderr)
			}
			t.Run("refused or waits", func(t *testing.T) { refusedOrWaits(t, tc, filepath.Join(dir, "shared"), solo) })
			t.Run("killed holder", func(t *testing.T) { killedHolder(t, tc, filepath.Join(dir, "killed"), solo) })
		})
	}
}

func refusedOrWaits(t *testing.T, tc lockCase, out, solo string) {
	first := startCLI(t, tc.args(out)...)
	first.holdsLock(t, out)
	first.signal(t, syscall.SIGSTOP)

	start := time.Now()
	second := startCLI(t, tc.args(out)...)
	code := second.wait()
	t.Logf("second process refused in %v", time.Since(start))
	if code != 1 {
		t.Fatalf("second run exited %d while the first held the folder, want 1; stderr:\n%s", code, second.stderr)
	}
	want := fmt.Sprintf("%s: %s: %s is in use by process %d (", progName, tc.name, out, first.pid())
	if msg := second.stderr.String(); !strings.HasPrefix(msg, want) || !strings.Contains(msg, "\nhint: add --wait") {
		t.Errorf("second run said %q, want a line starting %q and a hint to use --wait", msg, want)
	}

	third := startCLI(t, append(tc.args(out), "--wait")...)
	third.stderr.waitFor(t, fmt.Sprintf("in use by process %d", first.pid()))
	if !first.running() || !third.running() {
		t.Fatal("a process ended while the first was stopped")
	}
	first.signal(t, syscall.SIGCONT)
	if code := first.wait(); code != 0 {
		t.Fatalf("first run exited %d: %s", code, first.stderr)
	}
	if code := third.wait(); code != 0 {
		t.Fatalf("run with --wait exited %d: %s", code, third.stderr)
	}
	tc.same(t, out, solo)
	noLockLeft(t, out)
}

func killedHolder(t *testing.T, tc lockCase, out, solo string) {
	first := startCLI(t, tc.args(out)...)
	first.holdsLock(t, out)
	first.signal(t, syscall.SIGKILL)
	first.wait()
	if _, err := os.Stat(filepath.Join(out, dirlock.FileName)); err != nil {
		t.Errorf("the killed process left no lock file to try the next run on: %v", err)
	}
	if _, stderr, code := runCLI(t, append(tc.args(out), "-q")...); code != 0 {
		t.Fatalf("run after the holder was killed exited %d: %s", code, stderr)
	}
	tc.same(t, out, solo)
	noLockLeft(t, out)
}

// sameTraining compares two training folders: the checkpoints' weights and
// records, the optimizer states and train.csv, all but the wall-clock
// seconds.
func sameTraining(t *testing.T, got, want string) {
	t.Helper()
	epochs, err := checkpoint.Epochs(want)
	if err != nil || len(epochs) == 0 {
		t.Fatalf("no checkpoints in %s: %v", want, err)
	}
	if have, _ := checkpoint.Epochs(got); !slices.Equal(have, epochs) {
		t.Fatalf("%s has epochs %v, want %v", got, have, epochs)
	}
	checkpointtest.SameCheckpoints(t, got, want, epochs[len(epochs)-1])
	sameFiles(t, got, want, filepath.Base(checkpoint.StatePath(want, epochs[len(epochs)-1])))
	withoutSeconds := func(dir string) string {
		b, err := os.ReadFile(filepath.Join(dir, checkpoint.CSVName))
		if err != nil {
			t.Fatal(err)
		}
		var rows []string
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Split(line, ",")
			if len(f) > 6 {
				f = append(f[:6], f[7:]...) // the seconds column
			}
			rows = append(rows, strings.Join(f, ","))
		}
		return strings.Join(rows, "\n")
	}
	if g, w := withoutSeconds(got), withoutSeconds(want); g != w {
		t.Errorf("%s differs from the run alone's beyond the seconds:\n%s\nvs\n%s", checkpoint.CSVName, g, w)
	}
}

// sameFiles compares the files named in the folders got and want byte for
// byte.
func sameFiles(t *testing.T, got, want string, names ...string) {
	t.Helper()
	for _, name := range names {
		g, gerr := os.ReadFile(filepath.Join(got, name))
		w, werr := os.ReadFile(filepath.Join(want, name))
		if gerr != nil || werr != nil || len(w) == 0 || !bytes.Equal(g, w) {
			t.Errorf("%s differs from the run alone's (%d vs %d bytes; %v, %v)", name, len(g), len(w), gerr, werr)
		}
	}
}

func noLockLeft(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, dirlock.FileName)); !os.IsNotExist(err) {
		t.Errorf("the lock file is still in %s: %v", dir, err)
	}
}

// A child is the program run in a child process (the test binary, see
// TestMain).
type child struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

// startCLI starts the program with args in a child process; the test kills
// it at its end if it is still running.
func startCLI(t *testing.T, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), "MARGINAUDIT_RUN_MAIN=1")
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.cmd.Wait()
		c.code = c.cmd.ProcessState.ExitCode()
		close(c.done)
	}()
	t.Cleanup(func() {
		if c.running() {
			c.cmd.Process.Signal(syscall.SIGCONT)
			c.cmd.Process.Kill()
		}
		<-c.done
	})
	return c
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) running() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// wait waits for the child to end and returns its exit status (-1 when a
// signal ended it).
func (c *child) wait() int {
	<-c.done
	return c.code
}

func (c *child) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// lockWait bounds how long a test waits for a child to reach a state; the
// states take a second or two, unless the machine is very busy.
const lockWait = 2 * time.Minute

// holdsLock waits until the lock file of dir names the child: it holds the
// folder.
func (c *child) holdsLock(t *testing.T, dir string) {
	t.Helper()
	want := fmt.Sprintf("%d\n", c.pid())
	deadline := time.Now().Add(lockWait)
	for {
		rec, _ := os.ReadFile(filepath.Join(dir, dirlock.FileName))
		switch {
		case strings.HasPrefix(string(rec), want):
			return
		case !c.running():
			t.Fatalf("the process ended (status %d) before it was seen holding %s: %s", c.code, dir, c.stderr)
		case time.Now().After(deadline):
			t.Fatalf("the process did not lock %s in %v", dir, lockWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// A syncBuffer is a bytes.Buffer that a child writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer holds s.
func (b *syncBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(lockWait)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not said in %v; said:\n%s", s, lockWait, b.String())
		}
		time.Sleep(time.Millisecond)
	}
}
