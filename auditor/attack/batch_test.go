package attack

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/internal/testmodels"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// TestClassifierFixedBatch audits fixtures exported with a fixed batch:
// rewritten to a symbolic batch (B = 1 and B = 3), or fed B images per run
// where the flattening merges the batch with the pixels (B = 2). On 7
// images (no multiple of 2 or 3, so a last run is padded) each must give
// what its dynamic twin gives: the scores and the Jacobian to float32
// rounding (1e-5 of the largest), the same DeepFool steps with margins to
// 1e-4 relative (the same computation; only the summation order of
// batched kernels differs), and the same PGD counts.
func TestClassifierFixedBatch(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fixture string
		fixed   func(*onnxpb.ModelProto, int64) *onnxpb.ModelProto
		b       int
		want    string
	}{
		{"cnn", "cnn", testmodels.FixBatch, 1, "batch fixed at 1: rewritten to symbolic"},
		{"view", "mlp_view", testmodels.FixBatch, 1, "batch fixed at 1: rewritten to symbolic"},
		{"cnn batch 3", "cnn", testmodels.FixBatch, 3, "batch fixed at 3: rewritten to symbolic"},
		{"merged batch 2", "mlp", testmodels.MergeBatch, 2, "batch fixed at 2: fed 2 images per run"},
		// As the ONNX model zoo's CNTK MNIST model: opset 8, IR version 3,
		// initializers listed as inputs, batch 1.
		{"cnn opset 8 IR 3", "cnn", func(m *onnxpb.ModelProto, b int64) *onnxpb.ModelProto {
			return testmodels.Legacy(testmodels.FixBatch(m, b))
		}, 1, "batch fixed at 1: rewritten to symbolic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, xa := fixture(t, tc.fixture)
			twin := newClassifier(t, m, Options{Name: tc.fixture, Threads: 1})
			c := newClassifier(t, tc.fixed(m, int64(tc.b)), Options{Name: tc.name, Threads: 1})
			if got := c.Batch().String(); got != tc.want {
				t.Errorf("batch %q, want %q", got, tc.want)
			}
			if fb := c.Batch(); !fb.Rewritten && fb.Reason == "" {
				t.Error("fed per batch without a reason")
			}
			if (twin.Batch() != FixedBatch{}) {
				t.Errorf("the dynamic twin's batch: %+v", twin.Batch())
			}
			const n = 7
			x := tile(xa.Data, c.SampleSize(), n, 0.05, 6)
			labels := make([]int, n)
			for i := range labels {
				labels[i] = i % c.NumClasses()
			}

			wantScores, wantJac, err := twin.Jacobian(x, n)
			if err != nil {
				t.Fatal(err)
			}
			scores, jac, err := c.Jacobian(x, n)
			if err != nil {
				t.Fatal(err)
			}
			logits, err := c.Logits(x, n)
			if err != nil {
				t.Fatal(err)
			}
			for what, v := range map[string][2][]float32{"scores": {scores, wantScores}, "logits": {logits, wantScores}, "Jacobian": {jac, wantJac}} {
				if e := maxRelDiff(v[0], v[1]); e > 1e-5 {
					t.Errorf("%s differ from the twin's by %.2g of the largest", what, e)
				}
			}

			for _, norm := range []Norm{L2, LInf} {
				opt := DefaultDeepFoolOptions(norm)
				opt.BatchSize = 4
				want, err := DeepFool(context.Background(), twin, x, labels, opt)
				if err != nil {
					t.Fatal(err)
				}
				got, err := DeepFool(context.Background(), c, x, labels, opt)
				if err != nil {
					t.Fatal(err)
				}
				sameDeepFool(t, norm.String(), got, want, 1e-4)
			}
			po := PGDOptions{Norm: LInf, Eps: 0.05, PGDParams: PGDParams{Step: 0.02, Steps: 5, RandomStart: true}, Seed: 2, BatchSize: 5}
			want, err := RobustAccuracy(context.Background(), twin, x, labels, po)
			if err != nil {
				t.Fatal(err)
			}
			got, err := RobustAccuracy(context.Background(), c, x, labels, po)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("PGD %+v; the twin gives %+v", got, want)
			}
		})
	}
}

// maxRelDiff returns max |a − b| / max |b|.
func maxRelDiff(a, b []float32) float64 {
	var top, diff float64
	for i, v := range b {
		top = max(top, math.Abs(float64(v)))
		diff = max(diff, math.Abs(float64(a[i])-float64(v)))
	}
	return diff / top
}

// TestSymbolicBatchReason checks what SymbolicBatch says when it keeps a
// model as it is: nothing for a symbolic batch, the mismatch for a merged
// one; and that it checks its options as NewClassifier does.
func TestSymbolicBatchReason(t *testing.T) {
	m, _ := fixture(t, "mlp")
	got, fb, err := SymbolicBatch(m, Options{Threads: 1})
	if err != nil || got != m || (fb != FixedBatch{}) {
		t.Errorf("dynamic model: %+v, %v; want itself, no fixed batch", fb, err)
	}
	merged := testmodels.MergeBatch(m, 2)
	got, fb, err = SymbolicBatch(merged, Options{Threads: 1})
	if err != nil || got != merged || fb.Size != 2 || fb.Rewritten || !strings.Contains(fb.Reason, "the rewritten model") {
		t.Errorf("merged batch: %+v, %v; want itself, fed 2 per run because the rewritten model fails", fb, err)
	}
	if _, _, err := SymbolicBatch(m, Options{Name: "m", Threads: -1}); err == nil || !strings.Contains(err.Error(), "-1 threads") {
		t.Errorf("bad options: %v", err)
	}
}

// TestClassifierConcurrentFixedBatch runs a classifier that feeds its fixed
// batch per run from several goroutines at once: each call pads its own
// last run, so all get what one call alone gets, bit for bit.
func TestClassifierConcurrentFixedBatch(t *testing.T) {
	m, xa := fixture(t, "mlp")
	c := newClassifier(t, testmodels.MergeBatch(m, 2), Options{Threads: 1})
	x := tile(xa.Data, c.SampleSize(), 5, 0.05, 8)
	wantScores, wantJac, err := c.Jacobian(x, 5)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			scores, jac, err := c.Jacobian(x, 5)
			if err == nil && (!slices.Equal(scores, wantScores) || !slices.Equal(jac, wantJac)) {
				err = errors.New("a concurrent call got other results")
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
