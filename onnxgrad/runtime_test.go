package onnxgrad

import (
	"testing"

	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// testTensor is a tensor in float64, whatever the model's element type.
type testTensor struct {
	shape []int64
	data  []float64
}

// testRuntime runs models in onnxruntime for the tests, converting between
// float64 test tensors and the models' element types.
type testRuntime struct{}

// newTestRuntime loads onnxruntime. Without it the tests fail under CI
// (which installs it) and skip elsewhere.
func newTestRuntime(t testing.TB) *testRuntime {
	t.Helper()
	orttest.Require(t)
	return &testRuntime{}
}

// run evaluates m on feeds and returns the named outputs.
func (*testRuntime) run(t testing.TB, m *onnxpb.ModelProto, feeds map[string]*testTensor, want []string) map[string]*testTensor {
	t.Helper()
	data, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewSession(data, ort.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatalf("creating session: %v", err)
	}
	defer s.Close()
	var in []ort.Value
	for _, info := range s.Inputs() {
		f, ok := feeds[info.Name]
		if !ok {
			t.Fatalf("no feed for input %q", info.Name)
		}
		switch info.Type {
		case ort.Float32:
			v := make([]float32, len(f.data))
			for i, x := range f.data {
				v[i] = float32(x)
			}
			in = append(in, ort.NewValue(v, f.shape...))
		case ort.Float64:
			in = append(in, ort.NewValue(f.data, f.shape...))
		default:
			t.Fatalf("input %q has type %v", info.Name, info.Type)
		}
	}
	out := make([]ort.Value, len(s.Outputs()))
	if err := s.Run(in, out); err != nil {
		t.Fatalf("run: %v", err)
	}
	res := map[string]*testTensor{}
	for i, info := range s.Outputs() {
		tt := &testTensor{shape: out[i].Shape}
		switch d := out[i].Data.(type) {
		case []float32:
			tt.data = make([]float64, len(d))
			for j, x := range d {
				tt.data[j] = float64(x)
			}
		case []float64:
			tt.data = d
		case []int64:
			tt.data = make([]float64, len(d))
			for j, x := range d {
				tt.data[j] = float64(x)
			}
		}
		res[info.Name] = tt
	}
	for _, w := range want {
		if res[w] == nil {
			t.Fatalf("model has no output %q", w)
		}
	}
	return res
}
