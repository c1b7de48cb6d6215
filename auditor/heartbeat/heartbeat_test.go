package heartbeat

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that a test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// inode returns the file info of the heartbeat in dir: a rewrite renames
// another file into place, which os.SameFile tells apart.
func inode(t *testing.T, dir string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func readBeat(t *testing.T, dir string) *Beat {
	t.Helper()
	b, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The callbacks never write: the file is written when the writer starts,
// at each tick, and at Finish, and holds the state at that time.
func TestWriterThrottlesAndRecords(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	ticks := make(chan time.Time)
	w := start(dir, Options{}, clock.now, ticks)
	first := inode(t, dir)
	b := readBeat(t, dir)
	host, _ := os.Hostname()
	if b.State != Running || b.PID != os.Getpid() || b.Host != host || !b.Start.Equal(t0) || !b.Written.Equal(t0) {
		t.Errorf("first beat %+v, want running, pid %d, host %s, started and written at %v", b, os.Getpid(), host, t0)
	}

	w.Checkpoints(3)
	w.CheckpointDone()
	w.Checkpoint("epoch-003.onnx")
	w.Stage("test", "l2", 500)
	for range 10000 { // a storm of callbacks
		w.Done(1)
	}
	w.Stage("test", "linf", 500)
	clock.add(3 * time.Second)
	for range 340 {
		w.Done(1)
	}
	if !os.SameFile(first, inode(t, dir)) {
		t.Fatal("progress callbacks rewrote the heartbeat between ticks")
	}

	clock.add(7 * time.Second)
	ticks <- clock.now()
	ticks <- clock.now() // the first tick's write is over once the second is taken
	b = readBeat(t, dir)
	want := Beat{State: Running, Host: host, PID: os.Getpid(), Start: t0, Written: t0.Add(10 * time.Second), Progress: t0.Add(3 * time.Second),
		Checkpoint: "epoch-003.onnx", CheckpointsDone: 1, Checkpoints: 3, Split: "test", Step: "linf", Done: 340, Images: 500}
	if *b != want {
		t.Errorf("beat after a tick\n%+v, want\n%+v", *b, want)
	}
	if got, want := b.Describe(t0.Add(14*time.Second), DefaultStale), "running on "+host+" (pid "+strconv.Itoa(os.Getpid())+"): epoch-003.onnx test linf 340/500, 4 s ago"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}

	w.Finish(errors.New("checkpoint epoch-003.onnx: boom\nand more"))
	w.Finish(nil) // does nothing
	b = readBeat(t, dir)
	if b.State != Failed || b.Error != "checkpoint epoch-003.onnx: boom\nand more" || b.Step != "" {
		t.Errorf("beat after Finish(err) = %+v, want failed with the error, no step", b)
	}
	if w.Err() != nil {
		t.Errorf("Err() = %v", w.Err())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the folder holds %v, want the heartbeat only", ents)
	}
}

// A write that fails is reported once, and writing goes on: the writer
// recovers when the cause goes away.
func TestWriterReportsFailureOnce(t *testing.T) {
	dir := t.TempDir()
	block := filepath.Join(dir, FileName)
	if err := os.MkdirAll(filepath.Join(block, "x"), 0o755); err != nil { // a folder where the file goes
		t.Fatal(err)
	}
	var reported []error
	ticks := make(chan time.Time)
	w := start(dir, Options{OnError: func(err error) { reported = append(reported, err) }}, time.Now, ticks)
	ticks <- time.Now()
	ticks <- time.Now()
	if len(reported) != 1 || w.Err() == nil || !strings.Contains(reported[0].Error(), FileName) {
		t.Fatalf("reported %v, Err %v; want one error naming %s", reported, w.Err(), FileName)
	}
	if err := os.RemoveAll(block); err != nil {
		t.Fatal(err)
	}
	w.Finish(nil)
	if b := readBeat(t, dir); b.State != Finished {
		t.Errorf("state %s after the cause went away, want finished", b.State)
	}
	if len(reported) != 1 {
		t.Errorf("reported %d errors, want 1", len(reported))
	}
}

func TestRemove(t *testing.T) {
	dir := t.TempDir()
	w := Start(dir, Options{Every: time.Hour})
	if err := w.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read after Remove: %v, want fs.ErrNotExist", err)
	}
	w.Finish(nil) // does nothing
	if _, err := Read(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Finish after Remove wrote the heartbeat again")
	}
}

func TestDescribe(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	running := Beat{State: Running, Host: "node7", PID: 4242, Checkpoint: "epoch-003.onnx", Split: "test", Step: "l2", Done: 340, Images: 500}
	with := func(fn func(b *Beat)) Beat { b := running; fn(&b); return b }
	for _, tc := range []struct {
		name string
		beat Beat
		want string
	}{
		{"fresh", with(func(b *Beat) { b.Written, b.Progress = ago(4*time.Second), ago(5*time.Second) }),
			"running on node7 (pid 4242): epoch-003.onnx test l2 340/500, 4 s ago"},
		{"loading", with(func(b *Beat) { b.Step, b.Written, b.Progress = "", ago(90*time.Second), ago(90*time.Second) }),
			"running on node7 (pid 4242): epoch-003.onnx loading, 1 min ago"},
		{"starting", Beat{State: Running, Host: "node7", PID: 1, Written: now, Progress: now}, "running on node7 (pid 1): starting, 0 s ago"},
		{"clock ahead", with(func(b *Beat) { b.Written, b.Progress = now.Add(time.Minute), now }),
			"running on node7 (pid 4242): epoch-003.onnx test l2 340/500, 0 s ago"},
		{"stuck", with(func(b *Beat) { b.Written, b.Progress = ago(time.Second), ago(3*time.Hour) }),
			"running on node7 (pid 4242): epoch-003.onnx test l2 340/500, 1 s ago, last progress 3 h ago"},
		{"at the threshold", with(func(b *Beat) { b.Written, b.Progress = ago(10*time.Minute), ago(10*time.Minute) }),
			"running on node7 (pid 4242): epoch-003.onnx test l2 340/500, 10 min ago"},
		{"stale", with(func(b *Beat) { b.Written, b.Progress = ago(2*time.Hour), ago(2*time.Hour) }), "stopped? last heartbeat 2 h ago on node7"},
		{"long stale", with(func(b *Beat) { b.Written = ago(75 * time.Hour) }), "stopped? last heartbeat 3 days ago on node7"},
		{"failed", Beat{State: Failed, Error: "checkpoint a.onnx: bad\ncheckpoint b.onnx: worse", Written: ago(time.Hour)},
			"failed: checkpoint a.onnx: bad checkpoint b.onnx: worse"},
		{"finished", Beat{State: Finished, Written: ago(100 * time.Hour)}, "finished"},
	} {
		if got := tc.beat.Describe(now, DefaultStale); got != tc.want {
			t.Errorf("%s: Describe = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, data := range []string{"", "{", `{"state":"sleeping"}`, `{"state":"running","pid":"x"}`, "[]"} {
		if _, err := Parse([]byte(data)); !errors.Is(err, ErrFormat) {
			t.Errorf("Parse(%q) = %v, want ErrFormat", data, err)
		}
	}
}

// FuzzParse checks that Parse never panics, nor Describe on what it
// accepts.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"state":"running","host":"n","pid":1,"written":"2026-12-02T06:00:00Z","step":"l2","done":3,"images":5}`))
	f.Add([]byte(`{"state":"failed","error":"x"}`))
	f.Add([]byte(`{"state":"finished"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse(data)
		if err != nil {
			return
		}
		_ = b.Describe(time.Now(), DefaultStale)
	})
}

// BenchmarkWrite measures one rewrite of the heartbeat (temporary file,
// fsync, rename, folder fsync), which a running audit pays every
// DefaultEvery, and BenchmarkDone one progress callback, which it pays
// per batch of images.
func BenchmarkWrite(b *testing.B) {
	w := start(b.TempDir(), Options{}, time.Now, nil)
	w.Stage("test", "l2", 500)
	b.ReportAllocs()
	for b.Loop() {
		w.write()
	}
	w.Finish(nil)
}

func BenchmarkDone(b *testing.B) {
	w := start(b.TempDir(), Options{}, time.Now, nil)
	b.ReportAllocs()
	for b.Loop() {
		w.Done(1)
	}
	w.Finish(nil)
}
