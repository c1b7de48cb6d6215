package heartbeat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/marginaudit/marginaudit/internal/atomicfile"
)

// FileName is the name of the heartbeat file inside an audit folder, beside
// the folder's lock file (internal/dirlock's .marginaudit.lock).
const FileName = ".marginaudit.progress.json"

const (
	// DefaultEvery is how often a running audit rewrites its heartbeat:
	// often enough that a stopped audit shows within minutes, rarely
	// enough that a thousand shards on a shared file system make a
	// hundred small writes a second in all.
	DefaultEvery = 10 * time.Second
	// DefaultStale is how old a running audit's last heartbeat may be
	// before [Beat.Describe] calls it stopped: sixty missed beats, which
	// a loaded file system does not delay, while a killed or preempted
	// job shows within minutes.
	DefaultStale = 10 * time.Minute
)

// State is what a heartbeat says of its run.
type State string

// The states of a run.
const (
	Running  State = "running"  // the run was alive when it last wrote
	Finished State = "finished" // the run ended normally
	Failed   State = "failed"   // the run ended with an error (Beat.Error)
)

// Beat is the content of a heartbeat file, as JSON.
type Beat struct {
	State State     `json:"state"`
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Start time.Time `json:"start"`
	// Written is when the file was written; Progress when the audit last
	// reported progress. A running audit whose Written is recent but whose
	// Progress is old is alive in one long step (PGD reports a split's
	// images only when it has attacked them all), or stuck in it.
	Written  time.Time `json:"written"`
	Progress time.Time `json:"progress"`
	// Checkpoint is the checkpoint being audited, and CheckpointsDone of
	// Checkpoints those this run has finished (audited or found finished
	// before); Checkpoints is 0 until the run audits its first one.
	Checkpoint      string `json:"checkpoint,omitempty"`
	CheckpointsDone int    `json:"checkpoints_done"`
	Checkpoints     int    `json:"checkpoints"`
	// Split and Step are the attack under way on the checkpoint, such as
	// "test" and "l2" (see Writer.Stage), and Done of Images the images it
	// has finished.
	Split  string `json:"split,omitempty"`
	Step   string `json:"step,omitempty"`
	Done   int    `json:"done"`
	Images int    `json:"images"`
	// Error is the error of a failed run.
	Error string `json:"error,omitempty"`
}

// Read reads the heartbeat in the audit folder dir. Its error wraps
// fs.ErrNotExist when there is none.
func Read(dir string) (*Beat, error) {
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	b, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %s: %w", path, err)
	}
	return b, nil
}

// ErrFormat is the error of Parse on data that is no heartbeat.
var ErrFormat = errors.New("not a heartbeat")

// Parse decodes a heartbeat file's data.
func Parse(data []byte) (*Beat, error) {
	var b Beat
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	switch b.State {
	case Running, Finished, Failed:
	default:
		return nil, fmt.Errorf("%w: state %q, want %s, %s or %s", ErrFormat, b.State, Running, Finished, Failed)
	}
	return &b, nil
}

// Describe says in a line what the heartbeat b tells at the time now, for
// `marginaudit status`: "running on HOST (pid P): CHECKPOINT SPLIT STEP
// DONE/IMAGES, 4 s ago", or "stopped? last heartbeat 2 h ago on HOST" when
// a running audit has not written for longer than stale, "failed: ERROR",
// or "finished". Clocks of two machines differ a little: a heartbeat
// from the future counts as written now.
func (b *Beat) Describe(now time.Time, stale time.Duration) string {
	switch b.State {
	case Finished:
		return "finished"
	case Failed:
		return "failed: " + strings.Join(strings.Fields(b.Error), " ")
	}
	age := now.Sub(b.Written)
	if age > stale {
		return fmt.Sprintf("stopped? last heartbeat %s ago on %s", formatAge(age), b.Host)
	}
	doing := "starting"
	switch {
	case b.Step != "":
		doing = fmt.Sprintf("%s %s %s %d/%d", b.Checkpoint, b.Split, b.Step, b.Done, b.Images)
	case b.Checkpoint != "":
		doing = b.Checkpoint + " loading"
	}
	s := fmt.Sprintf("running on %s (pid %d): %s, %s ago", b.Host, b.PID, doing, formatAge(age))
	if idle := now.Sub(b.Progress); idle > stale {
		s += fmt.Sprintf(", last progress %s ago", formatAge(idle))
	}
	return s
}

// formatAge writes d coarsely, in its largest unit: "4 s", "12 min",
// "2 h", "3 days". A negative d is 0 s.
func formatAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", max(0, int(d/time.Second)))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

// Options are a Writer's settings.
type Options struct {
	// Every is how often the file is rewritten; 0 means DefaultEvery.
	Every time.Duration
	// OnError, when set, hears of the first write that fails, once; the
	// writer goes on trying.
	OnError func(error)
}

// Writer keeps the heartbeat of one run in its audit folder. Its methods
// may be called from several goroutines.
type Writer struct {
	path    string
	onError func(error)
	now     func() time.Time

	mu     sync.Mutex
	beat   Beat
	err    error // the first write error
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// Start writes the heartbeat of a run that starts now into the audit
// folder dir, which must exist, and rewrites it every opt.Every until
// Finish.
func Start(dir string, opt Options) *Writer {
	every := opt.Every
	if every <= 0 {
		every = DefaultEvery
	}
	t := time.NewTicker(every)
	w := start(dir, opt, time.Now, t.C)
	go func() {
		<-w.done
		t.Stop()
	}()
	return w
}

// start is Start with a clock and ticks of the caller's.
func start(dir string, opt Options, now func() time.Time, ticks <-chan time.Time) *Writer {
	host, err := os.Hostname()
	if err != nil {
		host = "?"
	}
	t := now()
	w := &Writer{path: filepath.Join(dir, FileName), onError: opt.OnError, now: now,
		beat: Beat{State: Running, Host: host, PID: os.Getpid(), Start: t, Progress: t},
		stop: make(chan struct{}), done: make(chan struct{})}
	w.write()
	go w.tick(ticks)
	return w
}

// tick writes the heartbeat at every tick until Finish.
func (w *Writer) tick(ticks <-chan time.Time) {
	for {
		select {
		case <-w.stop:
			close(w.done)
			return
		case <-ticks:
			w.write()
		}
	}
}

// update changes the beat with fn and notes progress now.
func (w *Writer) update(fn func(b *Beat)) {
	w.mu.Lock()
	fn(&w.beat)
	w.beat.Progress = w.now()
	w.mu.Unlock()
}

// Checkpoints sets how many checkpoints the run holds.
func (w *Writer) Checkpoints(n int) {
	w.update(func(b *Beat) { b.Checkpoints = n })
}

// Checkpoint notes that the audit of the checkpoint named name begins.
func (w *Writer) Checkpoint(name string) {
	w.update(func(b *Beat) { b.Checkpoint, b.Split, b.Step, b.Done, b.Images = name, "", "", 0, 0 })
}

// Stage notes that an attack step (such as "l2") over images images of
// split begins on the current checkpoint.
func (w *Writer) Stage(split, step string, images int) {
	w.update(func(b *Beat) { b.Split, b.Step, b.Done, b.Images = split, step, 0, images })
}

// Done counts n images of the current step finished.
func (w *Writer) Done(n int) {
	w.update(func(b *Beat) { b.Done += n })
}

// CheckpointDone counts a checkpoint finished, audited or found done.
func (w *Writer) CheckpointDone() {
	w.update(func(b *Beat) { b.CheckpointsDone++ })
}

// Finish stops the rewriting and writes the heartbeat once more, marked
// finished when err is nil, failed with err otherwise. Later calls do
// nothing.
func (w *Writer) Finish(err error) {
	if !w.halt() {
		return
	}
	w.update(func(b *Beat) {
		b.State, b.Split, b.Step, b.Done, b.Images = Finished, "", "", 0, 0
		if err != nil {
			b.State, b.Error = Failed, err.Error()
		}
	})
	w.write()
}

// Remove finishes the writer (as Finish(nil) without the write) and
// removes its file: for a run that leaves nothing else behind.
func (w *Writer) Remove() error {
	w.halt()
	if err := os.Remove(w.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// halt stops the ticker's writes and reports whether this was the first
// call; later calls do nothing.
func (w *Writer) halt() bool {
	w.mu.Lock()
	first := !w.closed
	w.closed = true
	w.mu.Unlock()
	if first {
		close(w.stop)
		<-w.done
	}
	return first
}

// Err returns the first write error, or nil.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// write writes the beat as it is now. Only one goroutine writes at a time:
// the ticker's, or after it stopped Start's or Finish's caller. A write
// that fails is tried once more at once, as the audit's store clears the
// folder of temporary files when it opens, the heartbeat's among them.
func (w *Writer) write() {
	w.mu.Lock()
	w.beat.Written = w.now()
	data, err := json.MarshalIndent(&w.beat, "", "  ")
	w.mu.Unlock()
	if err != nil {
		panic(err) // a Beat always encodes
	}
	data = append(data, '\n')
	if err = atomicfile.WriteFile(w.path, data, 0o644); err != nil {
		err = atomicfile.WriteFile(w.path, data, 0o644)
	}
	if err == nil {
		return
	}
	w.mu.Lock()
	first := w.err == nil
	if first {
		w.err = fmt.Errorf("heartbeat: %w", err)
	}
	w.mu.Unlock()
	if first && w.onError != nil {
		w.onError(w.Err())
	}
}
