package auditor

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/internal/testmodels"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// fitImages feeds images of the model's shape as they are, rearranges data
// set images where their order is unambiguous, and refuses the rest with
// both shapes.
func TestFitImages(t *testing.T) {
	x := make([]float32, 2*3*2*2)
	for i := range x {
		x[i] = float32(i)
	}
	xh, _ := attack.ConvertLayout(x, []int64{3, 2, 2}, attack.NCHW, attack.NHWC)
	tests := []struct {
		name   string
		shape  []int64
		layout attack.Layout // of the images
		want   []int64       // the model's
		model  attack.Layout
		x      []float32 // what the model gets; nil for an error
		err    string
	}{
		{"same", []int64{3, 2, 2}, attack.LayoutAuto, []int64{3, 2, 2}, attack.NCHW, x, ""},
		{"unchecked", nil, attack.LayoutAuto, []int64{12}, attack.NCHW, x, ""},
		{"data set to NHWC", []int64{3, 2, 2}, attack.NCHW, []int64{2, 2, 3}, attack.NHWC, xh, ""},
		{"data set flattened", []int64{3, 2, 2}, attack.NCHW, []int64{12}, attack.NCHW, x, ""},
		{"data set flattened NHWC", []int64{3, 2, 2}, attack.NCHW, []int64{12}, attack.NHWC, xh, ""},
		{"one channel", []int64{1, 4, 3}, attack.NCHW, []int64{4, 3}, attack.NCHW, x, ""},
		{"array to NHWC", []int64{3, 2, 2}, attack.LayoutAuto, []int64{2, 2, 3}, attack.NHWC, nil,
			"x.npy: images are [3, 2, 2] but model m.onnx takes [2, 2, 3] (NHWC)"},
		{"flat array", []int64{12}, attack.LayoutAuto, []int64{3, 2, 2}, attack.NCHW, nil,
			"x.npy: images are [12] but model m.onnx takes [3, 2, 2] (NCHW)"},
		{"data set, channels squeezed", []int64{3, 2, 2}, attack.NCHW, []int64{6, 2}, attack.NCHW, nil,
			"x.npy: images are [3, 2, 2] but model m.onnx takes [6, 2]"},
		{"data set, other size", []int64{3, 2, 2}, attack.NCHW, []int64{3, 4, 4}, attack.NCHW, nil,
			"takes [3, 4, 4] (NCHW)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := &Images{X: x, Labels: []int{0, 1}, Index: []int{0, 1}, Shape: tt.shape, Layout: tt.layout, Name: "x.npy"}
			got, err := fitImages(im, tt.want, tt.model, "m.onnx")
			var se *ImageShapeError
			switch {
			case tt.x == nil && (!errors.As(err, &se) || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("error %v, want an *ImageShapeError %q", err, tt.err)
			case tt.x == nil:
			case err != nil:
				t.Fatal(err)
			case !slices.Equal(got.X, tt.x) || (tt.shape != nil && !slices.Equal(got.Shape, tt.want)):
				t.Errorf("images %v %v, want %v %v", got.Shape, got.X, tt.want, tt.x)
			}
		})
	}
}

// TestRunNHWC audits the resnet fixture and its NHWC twin (the same network
// behind a Transpose) with per-channel normalisation: given the data set
// images (NCHW), the twin is detected as NHWC, gets them transposed and
// normalised on its channel axis, and has the same margins; so does it
// given an NHWC array, and so does a twin whose image size is symbolic,
// which takes it from the images. The NHWC array given to the NCHW model is
// refused with both shapes.
func TestRunNHWC(t *testing.T) {
	orttest.Require(t)
	m, err := onnxgrad.Load("../testdata/models/resnet_small.onnx")
	if err != nil {
		t.Fatal(err)
	}
	x, err := npy.ReadFile("../testdata/models/resnet_small.x.npy")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	nchw, nhwc, sym := filepath.Join(dir, "nchw"), filepath.Join(dir, "nhwc"), filepath.Join(dir, "sym")
	for _, d := range []string{nchw, nhwc, sym} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := onnxgrad.Save(filepath.Join(nchw, "epoch-000.onnx"), m); err != nil {
		t.Fatal(err)
	}
	mh := testmodels.NHWC(m)
	if err := onnxgrad.Save(filepath.Join(nhwc, "epoch-000.onnx"), mh); err != nil {
		t.Fatal(err)
	}
	for _, vi := range mh.GetGraph().GetInput() {
		if vi.GetName() == "input_nhwc" {
			dims := vi.GetType().GetTensorType().GetShape().GetDim()
			dims[1].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "H"}
			dims[2].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "W"}
		}
	}
	if err := onnxgrad.Save(filepath.Join(sym, "epoch-000.onnx"), mh); err != nil {
		t.Fatal(err)
	}
	var ise *attack.ImageSizeError
	if _, err := attack.NewClassifier(mh, attack.Options{}); !errors.As(err, &ise) {
		t.Fatalf("the symbolic twin needs no image size: %v", err)
	}
	dataset := &Images{X: x.Data, Labels: []int{3, 1, 4, 1}, Index: []int{0, 1, 2, 3}, Shape: []int64{3, 16, 16}, Layout: attack.NCHW, Name: "resnet test"}
	xh, sh := attack.ConvertLayout(x.Data, dataset.Shape, attack.NCHW, attack.NHWC)
	array := &Images{X: xh, Labels: dataset.Labels, Index: dataset.Index, Shape: sh, Name: "x_nhwc.npy"}
	audit := func(ckpts string, im *Images) (string, error) {
		out := filepath.Join(t.TempDir(), "audit")
		cfg := Config{Checkpoints: []string{ckpts}, Out: out, Threads: 1, Data: map[Split]*Images{Test: im},
			Settings: Settings{Data: "resnet", Splits: []Split{Test}, N: 4, Sample: "first", Seed: 1,
				Mean: []float64{0.49, 0.48, 0.45}, Std: []float64{0.25, 0.24, 0.26},
				Norms: []Norm{L2, LInf}, DeepFoolParams: attack.DeepFoolParams{Overshoot: 0.02, MaxIter: 50, Retries: 2}, RefineParams: attack.DefaultRefineParams()}}
		_, err := Run(context.Background(), cfg, nil)
		return filepath.Join(out, MarginsFile), err
	}
	ref, err := audit(nchw, dataset)
	if err != nil {
		t.Fatal(err)
	}
	want, err := readRecordsFile(t, ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ckpts string
		im          *Images
	}{{"data set", nhwc, dataset}, {"NHWC array", nhwc, array}, {"symbolic size", sym, dataset}} {
		path, err := audit(tc.ckpts, tc.im)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := readRecordsFile(t, path)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || len(got) != 8 {
			t.Fatalf("%s: %d records, want %d", tc.name, len(got), len(want))
		}
		// The same numbers in another order (see TestClassifierNHWC).
		for i, r := range got {
			w := want[i]
			if r.Pred != w.Pred || !r.Success || math.Abs(r.Margin-w.Margin) > 1e-6*w.Margin || math.Abs(r.MarginRefined-w.MarginRefined) > 1e-6*w.MarginRefined {
				t.Errorf("%s: record %d: %+v, want %+v", tc.name, i, r, w)
			}
		}
	}

	_, err = audit(nchw, array)
	var se *ImageShapeError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "x_nhwc.npy: images are [16, 16, 3] but model epoch-000.onnx takes [3, 16, 16] (NCHW)") {
		t.Errorf("NHWC array to the NCHW model: %v", err)
	}
}
