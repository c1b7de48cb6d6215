package ort_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
)

// newSession returns a session on model, closed at the end of the test.
func newSession(tb testing.TB, model []byte, opts ort.SessionOptions) *ort.Session {
	tb.Helper()
	orttest.Require(tb)
	s, err := ort.NewSession(model, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// ramp returns 0, 1, …, n-1 shifted by off, as float32.
func ramp(n int, off float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i) + off
	}
	return x
}

func TestSessionInfo(t *testing.T) {
	s := newSession(t, affineModel(t, onnxFloat, true, false), ort.SessionOptions{})
	got := fmt.Sprint(s.Inputs(), s.Outputs())
	if want := "[X float32[-1 3]] [Y float32[-1 3] S float32[]]"; got != want {
		t.Errorf("Inputs(), Outputs() = %s; want %s", got, want)
	}
	// The results are copies.
	s.Inputs()[0].Shape[1] = 7
	if got := s.Inputs()[0].Shape[1]; got != 3 {
		t.Errorf("modifying Inputs() changed the session: shape[1] = %d", got)
	}
}

func TestRunFloat32(t *testing.T) {
	for _, threads := range []int{0, 1, 2} {
		s := newSession(t, affineModel(t, onnxFloat, false, false), ort.SessionOptions{Threads: threads})
		for _, n := range []int64{1, 5, 0} {
			t.Run(fmt.Sprintf("threads=%d/batch=%d", threads, n), func(t *testing.T) {
				x := ramp(int(3*n), -2.5)
				want := affine(x)

				// Output allocated by the run.
				out := []ort.Value{{}}
				if err := s.Run([]ort.Value{ort.NewValue(x, n, 3)}, out); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(out[0].Shape, []int64{n, 3}) || !slices.Equal(out[0].Float32s(), want) {
					t.Errorf("allocated output = %v %v; want [%d 3] %v", out[0].Shape, out[0].Float32s(), n, want)
				}

				// Pre-allocated output, written in place.
				y := make([]float32, 3*n)
				out = []ort.Value{ort.NewValue(y, n, 3)}
				if err := s.Run([]ort.Value{ort.NewValue(x, n, 3)}, out); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(y, want) {
					t.Errorf("pre-allocated output = %v; want %v", y, want)
				}

				// Inputs are read in place: changing x changes the next result.
				for i := range x {
					x[i] = 1
				}
				if err := s.Run([]ort.Value{ort.NewValue(x, n, 3)}, out); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(y, affine(x)) {
					t.Errorf("after changing the input, output = %v; want %v", y, affine(x))
				}
			})
		}
	}
}

func TestRunFloat64Int64(t *testing.T) {
	x64 := []float64{-1.5, 0, 0.25, 1e300, 3, 4}
	s := newSession(t, affineModel(t, onnxDouble, false, false), ort.SessionOptions{Threads: 1})
	out := []ort.Value{{}}
	if err := s.Run([]ort.Value{ort.NewValue(x64, 2, 3)}, out); err != nil {
		t.Fatal(err)
	}
	if want := []float64{-2, 1, 1.5, 2e300 + 1, 7, 9}; !slices.Equal(out[0].Float64s(), want) {
		t.Errorf("float64 output = %v; want %v", out[0].Float64s(), want)
	}

	xi := []int64{-3, 0, 1 << 40}
	s = newSession(t, affineModel(t, onnxInt64, false, false), ort.SessionOptions{Threads: 1})
	yi := make([]int64, 3)
	if err := s.Run([]ort.Value{ort.NewValue(xi, 1, 3)}, []ort.Value{ort.NewValue(yi, 1, 3)}); err != nil {
		t.Fatal(err)
	}
	if want := []int64{-5, 1, 1<<41 + 1}; !slices.Equal(yi, want) {
		t.Errorf("int64 output = %v; want %v", yi, want)
	}
}

func TestRunScalarOutput(t *testing.T) {
	s := newSession(t, affineModel(t, onnxFloat, true, false), ort.SessionOptions{Threads: 1})
	x := ramp(6, 0)
	want := float32(0)
	for _, v := range affine(x) {
		want += v
	}

	// Both outputs allocated: the 0-d one in Go by Run.
	out := make([]ort.Value, 2)
	if err := s.Run([]ort.Value{ort.NewValue(x, 2, 3)}, out); err != nil {
		t.Fatal(err)
	}
	if got := out[1]; len(got.Shape) != 0 || !slices.Equal(got.Float32s(), []float32{want}) {
		t.Errorf("S = %v %v; want [] [%v]", got.Shape, got.Float32s(), want)
	}

	// The filled outputs can be reused, now written in place.
	x[0] = 100
	want += 2 * 100
	sum := out[1].Float32s()
	if err := s.Run([]ort.Value{ort.NewValue(x, 2, 3)}, out); err != nil {
		t.Fatal(err)
	}
	if sum[0] != want {
		t.Errorf("reused S = %v; want %v", sum[0], want)
	}
}

// An output declared without a shape gets the one onnxruntime infers, and
// can still be allocated by the run.
func TestRunUndeclaredShapeOutput(t *testing.T) {
	s := newSession(t, affineModel(t, onnxFloat, false, true), ort.SessionOptions{Threads: 1})
	t.Logf("outputs: %v", s.Outputs())
	x := ramp(6, 0)
	out := []ort.Value{{}}
	if err := s.Run([]ort.Value{ort.NewValue(x, 2, 3)}, out); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out[0].Shape, []int64{2, 3}) || !slices.Equal(out[0].Float32s(), affine(x)) {
		t.Errorf("output = %v; want [2 3] %v", out[0], affine(x))
	}
}

func TestRunErrors(t *testing.T) {
	s := newSession(t, affineModel(t, onnxFloat, false, false), ort.SessionOptions{Threads: 1})
	x := ramp(6, 0)
	for _, tc := range []struct {
		name            string
		inputs, outputs []ort.Value
		want            string // in the error message
	}{
		{"no inputs", nil, []ort.Value{{}}, "got 0 inputs and 1 outputs, the model has 1 (X) and 1 (Y)"},
		{"extra output", []ort.Value{ort.NewValue(x, 2, 3)}, make([]ort.Value, 2), "got 1 inputs and 2 outputs"},
		{"wrong type", []ort.Value{ort.NewValue([]float64{1, 2, 3}, 1, 3)}, []ort.Value{{}}, `input "X": got float64 data, the model wants float32`},
		{"unsupported type", []ort.Value{{Shape: []int64{1, 3}, Data: []int32{1, 2, 3}}}, []ort.Value{{}}, `input "X": data of type []int32`},
		{"nil input", []ort.Value{{Shape: []int64{1, 3}}}, []ort.Value{{}}, `input "X": no data`},
		{"short data", []ort.Value{ort.NewValue(x, 3, 3)}, []ort.Value{{}}, "shape [3 3] needs 9 elements, data has 6"},
		{"negative dim", []ort.Value{ort.NewValue(x, -2, 3)}, []ort.Value{{}}, "dimension 0 is negative"},
		{"wrong rank", []ort.Value{ort.NewValue(x, 6)}, []ort.Value{{}}, "Invalid rank for input: X"},
		{"wrong dim", []ort.Value{ort.NewValue(x, 3, 2)}, []ort.Value{{}}, "Got invalid dimensions for input: X"},
		{"wrong output shape", []ort.Value{ort.NewValue(x, 2, 3)}, []ort.Value{ort.NewValue(make([]float32, 6), 3, 2)}, "ort: run:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Run(tc.inputs, tc.outputs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run error = %v; want one containing %q", err, tc.want)
			}
		})
	}
}

func TestNewSessionErrors(t *testing.T) {
	orttest.Require(t)
	for _, tc := range []struct {
		name  string
		model []byte
		opts  ort.SessionOptions
		want  string
	}{
		{"empty", nil, ort.SessionOptions{}, "empty model"},
		{"garbage", []byte("not an onnx model"), ort.SessionOptions{}, "ort: new session: "},
		{"threads", affineModel(t, onnxFloat, false, false), ort.SessionOptions{Threads: -1}, "negative thread count -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ort.NewSession(tc.model, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewSession error = %v; want one containing %q", err, tc.want)
			}
			if s != nil {
				t.Errorf("NewSession returned a session with an error")
			}
		})
	}
	if _, err := ort.OpenSession(filepath.Join(t.TempDir(), "missing.onnx"), ort.SessionOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenSession(missing file) error = %v; want ErrNotExist", err)
	}
}

func TestOpenSession(t *testing.T) {
	orttest.Require(t)
	s, err := ort.OpenSession(filepath.Join("testdata", "affine.onnx"), ort.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := []ort.Value{{}}
	if err := s.Run([]ort.Value{ort.NewValue([]float32{1, 2, 3}, 1, 3)}, out); err != nil {
		t.Fatal(err)
	}
	if want := []float32{3, 5, 7}; !slices.Equal(out[0].Float32s(), want) {
		t.Errorf("output = %v; want %v", out[0].Float32s(), want)
	}
}

func TestClose(t *testing.T) {
	orttest.Require(t)
	s, err := ort.NewSession(affineModel(t, onnxFloat, false, false), ort.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close call %d: %v", i+1, err)
		}
	}
	err = s.Run([]ort.Value{ort.NewValue([]float32{1, 2, 3}, 1, 3)}, []ort.Value{{}})
	if !errors.Is(err, ort.ErrClosed) {
		t.Errorf("Run after Close: error = %v; want ErrClosed", err)
	}
	var nilSession *ort.Session
	if err := nilSession.Close(); err != nil {
		t.Errorf("Close on a nil session: %v", err)
	}
	if err := nilSession.Run(nil, nil); !errors.Is(err, ort.ErrClosed) {
		t.Errorf("Run on a nil session: error = %v; want ErrClosed", err)
	}
}

func TestRunConcurrent(t *testing.T) {
	s := newSession(t, affineModel(t, onnxFloat, false, false), ort.SessionOptions{Threads: 1})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				n := int64(1 + (g+i)%7)
				x := ramp(int(3*n), float32(g))
				out := []ort.Value{{}}
				if err := s.Run([]ort.Value{ort.NewValue(x, n, 3)}, out); err != nil {
					t.Error(err)
					return
				}
				if !slices.Equal(out[0].Float32s(), affine(x)) {
					t.Errorf("goroutine %d run %d: wrong output", g, i)
					return
				}
			}
		})
	}
	wg.Wait()
}

// rss returns the resident set size of this process in bytes, from
// /proc/self/statm (Linux).
func rss(tb testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		tb.Skipf("no resident-memory figure: %v", err)
	}
	fields := strings.Fields(string(b))
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		tb.Fatalf("/proc/self/statm %q: %v", b, err)
	}
	return pages * int64(os.Getpagesize())
}

// TestRunNoLeak runs a session many times and checks that neither goroutines
// nor memory grow. The batch is large enough (24 KB a tensor) that leaking one
// tensor per run would add 120 MB over the 5000 runs of each kind, far above
// the bounds, which leave room for allocator noise.
func TestRunNoLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode")
	}
	const (
		runs    = 5000
		batch   = 2000
		maxHeap = 4 << 20  // Go heap growth, bytes
		maxRSS  = 32 << 20 // resident memory growth, bytes
	)
	s := newSession(t, affineModel(t, onnxFloat, false, false), ort.SessionOptions{Threads: 1})
	x := ramp(3*batch, 0)
	in := []ort.Value{ort.NewValue(x, batch, 3)}
	y := make([]float32, 3*batch)
	run := func(allocate bool) {
		out := []ort.Value{ort.NewValue(y, batch, 3)}
		if allocate {
			out[0] = ort.Value{}
		}
		if err := s.Run(in, out); err != nil {
			t.Fatal(err)
		}
		if got := out[0].Float32s(); got[len(got)-1] != 2*x[len(x)-1]+1 {
			t.Fatalf("wrong output %v", got[len(got)-1])
		}
	}
	measure := func() (goroutines int, heap uint64, resident int64) {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapAlloc, rss(t)
	}

	for i := range 200 { // warm up onnxruntime's arena and Go's heap
		run(i%2 == 0)
	}
	g0, heap0, rss0 := measure()
	for i := range 2 * runs {
		run(i%2 == 0)
	}
	g1, heap1, rss1 := measure()
	t.Logf("after %d runs: goroutines %d -> %d, Go heap %d -> %d KiB, RSS %d -> %d KiB",
		2*runs, g0, g1, heap0>>10, heap1>>10, rss0>>10, rss1>>10)
	if g1 > g0 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if heap1 > heap0+maxHeap {
		t.Errorf("Go heap grew by %d KiB, more than %d KiB", (heap1-heap0)>>10, maxHeap>>10)
	}
	if rss1 > rss0+maxRSS {
		t.Errorf("resident memory grew by %d KiB, more than %d KiB", (rss1-rss0)>>10, maxRSS>>10)
	}
}

// BenchmarkRun measures one run of the affine model on pre-allocated
// outputs, and with an output allocated by the run.
func BenchmarkRun(b *testing.B) {
	s := newSession(b, affineModel(b, onnxFloat, false, false), ort.SessionOptions{Threads: 1})
	for _, batch := range []int64{1, 64, 1024} {
		x := ramp(int(3*batch), 0)
		in := []ort.Value{ort.NewValue(x, batch, 3)}
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			out := []ort.Value{ort.NewValue(make([]float32, 3*batch), batch, 3)}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Run(in, out); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("batch=%d/allocated", batch), func(b *testing.B) {
			out := make([]ort.Value, 1)
			b.ReportAllocs()
			for b.Loop() {
				out[0] = ort.Value{}
				if err := s.Run(in, out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestNoSpinning checks that NoSpinning sets onnxruntime's spinning entry,
// that the default leaves it unset (onnxruntime then spins), and that a
// session without spinning runs.
func TestNoSpinning(t *testing.T) {
	orttest.Require(t)
	const key = "session.intra_op.allow_spinning"
	for _, tc := range []struct {
		opts ort.SessionOptions
		want string
		set  bool
	}{
		{ort.SessionOptions{Threads: 2}, "", false},
		{ort.SessionOptions{Threads: 2, NoSpinning: true}, "0", true},
	} {
		got, set, err := ort.SessionConfigEntry(tc.opts, key)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want || set != tc.set {
			t.Errorf("%+v: %s = %q (set %v); want %q (set %v)", tc.opts, key, got, set, tc.want, tc.set)
		}
	}
	s := newSession(t, affineModel(t, onnxFloat, false, false), ort.SessionOptions{Threads: 2, NoSpinning: true})
	x := ramp(3000, -2.5)
	out := []ort.Value{{}}
	if err := s.Run([]ort.Value{ort.NewValue(x, 1000, 3)}, out); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out[0].Float32s(), affine(x)) {
		t.Error("wrong output without spinning")
	}
}

// TestProfilePrefix checks that a session with ProfilePrefix writes a
// Chrome trace with one event per node run when it is closed.
func TestProfilePrefix(t *testing.T) {
	orttest.Require(t)
	prefix := filepath.Join(t.TempDir(), "affine")
	s, err := ort.NewSession(affineModel(t, onnxFloat, false, false), ort.SessionOptions{Threads: 1, ProfilePrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	const runs = 3
	for range runs {
		if err := s.Run([]ort.Value{ort.NewValue(ramp(6, 0), 2, 3)}, []ort.Value{{}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(prefix + "_*.json")
	if err != nil || len(files) != 1 {
		t.Fatalf("profile files %v (%v); want one %s_*.json", files, err, prefix)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var events []struct {
		Cat  string `json:"cat"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(data, &events); err != nil {
		t.Fatalf("%s: %v", files[0], err)
	}
	var modelRuns, nodeRuns int
	for _, e := range events {
		switch {
		case e.Cat == "Session" && e.Name == "model_run":
			modelRuns++
		case e.Cat == "Node" && strings.HasSuffix(e.Name, "_kernel_time"):
			nodeRuns++
		}
	}
	if modelRuns != runs || nodeRuns < runs {
		t.Errorf("profile has %d model_run and %d node events; want %d and at least %d", modelRuns, nodeRuns, runs, runs)
	}
}
