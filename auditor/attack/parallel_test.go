package attack

import (
	"context"
	"reflect"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
)

func TestPureOptionsSplit(t *testing.T) {
	cpus := runtime.NumCPU()
	for _, tc := range []struct {
		threads, workers    int
		perRun, wantWorkers int
	}{
		{0, 0, 1, cpus},
		{1, 0, 1, 1},
		{4, 0, 1, 4},
		{4, 1, 4, 1},
		{4, 2, 2, 2},
		{5, 2, 2, 2},
		{2, 4, 1, 4},
		{0, 1, cpus, 1},
	} {
		opt := Options{Threads: tc.threads, Workers: tc.workers}
		perRun, workers := opt.split()
		if perRun != tc.perRun || workers != tc.wantWorkers {
			t.Errorf("Threads %d, Workers %d: %d threads per run and %d workers; want %d and %d",
				tc.threads, tc.workers, perRun, workers, tc.perRun, tc.wantWorkers)
		}
	}
}

// TestWorkersSameResults runs every attack and Logits with one worker and
// with three: each image is attacked on its own, so the results must be
// equal bit for bit, progress must count every image, and DeepFool's
// retries (whose noise each image draws from its own generator) and PGD's
// random starts (drawn image after image before the workers start) must
// not depend on which worker took which image.
func TestWorkersSameResults(t *testing.T) {
	m, xa := fixture(t, "cnn")
	const n = 37
	type results struct {
		logits []float32
		df     map[Norm][]DeepFoolResult
		fmn    map[Norm][]RefineResult
		pgd    map[Norm][]float32
		robust map[Norm][]bool
	}
	run := func(workers int) results {
		c := newClassifier(t, m, Options{Name: "cnn.onnx", Threads: workers, Workers: workers})
		x := tile(xa.Data, c.SampleSize(), n, 0.05, 9)
		labels := make([]int, n)
		for i := range labels {
			labels[i] = i % c.NumClasses()
		}
		var r results
		var err error
		if r.logits, err = c.Logits(x, n); err != nil {
			t.Fatal(err)
		}
		r.df, r.fmn, r.pgd, r.robust = map[Norm][]DeepFoolResult{}, map[Norm][]RefineResult{}, map[Norm][]float32{}, map[Norm][]bool{}
		for _, norm := range []Norm{L2, LInf} {
			var count atomic.Int64
			progress := ProgressFunc(func(k int) { count.Add(int64(k)) })
			df := DefaultDeepFoolOptions(norm)
			df.MaxIter, df.Retries, df.BatchSize, df.KeepPerturbation, df.Progress = 4, 2, 5, true, progress
			if norm == LInf {
				df.MaxIter = 2 // L∞ DeepFool takes fewer steps
			}
			if r.df[norm], err = DeepFool(context.Background(), c, x, labels, df); err != nil {
				t.Fatal(err)
			}
			retried := 0
			for _, res := range r.df[norm] {
				retried += min(res.Retries, 1)
			}
			if retried == 0 {
				t.Fatalf("%s: no image was retried; the test needs retries", norm)
			}
			fo := DefaultFMNOptions(norm)
			fo.Steps, fo.BatchSize, fo.Progress = 10, 6, progress
			f, err := NewFMN(c, fo)
			if err != nil {
				t.Fatal(err)
			}
			if r.fmn[norm], err = f.Refine(context.Background(), x, r.df[norm]); err != nil {
				t.Fatal(err)
			}
			eps := map[Norm]float64{L2: 0.5, LInf: 0.03}[norm]
			po := DefaultPGDOptions(norm, eps)
			po.Steps, po.BatchSize, po.Progress = 5, 6, progress
			p, err := NewPGD(c, po)
			if err != nil {
				t.Fatal(err)
			}
			r.pgd[norm], r.robust[norm] = make([]float32, len(x)), make([]bool, n)
			if err := p.Attack(context.Background(), r.pgd[norm], x, labels, r.robust[norm]); err != nil {
				t.Fatal(err)
			}
			if got := count.Load(); got != 3*n {
				t.Errorf("%s: progress counted %d images; want %d", norm, got, 3*n)
			}
		}
		return r
	}
	one, three := run(1), run(3)
	if !reflect.DeepEqual(one, three) {
		t.Error("the results with one worker and with three differ")
		if !slices.Equal(one.logits, three.logits) {
			t.Error("logits differ")
		}
		for _, norm := range []Norm{L2, LInf} {
			for name, eq := range map[string]bool{
				"DeepFool": reflect.DeepEqual(one.df[norm], three.df[norm]),
				"FMN":      reflect.DeepEqual(one.fmn[norm], three.fmn[norm]),
				"PGD":      slices.Equal(one.pgd[norm], three.pgd[norm]) && slices.Equal(one.robust[norm], three.robust[norm]),
			} {
				if !eq {
					t.Errorf("%s %s results differ", norm, name)
				}
			}
		}
	}
}
