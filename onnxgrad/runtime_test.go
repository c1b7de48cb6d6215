package onnxgrad

import (
	"fmt"
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
	s, err := newTestSession(m)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	res, err := s.run(feeds)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if res[w] == nil {
			t.Fatalf("model has no output %q", w)
		}
	}
	return res
}

// testSession is a model loaded into onnxruntime, for tests that run it
// many times.
type testSession struct {
	s *ort.Session
}

func newTestSession(m *onnxpb.ModelProto) (*testSession, error) {
	data, err := Encode(m)
	if err != nil {
		return nil, err
	}
	s, err := ort.NewSession(data, ort.SessionOptions{Threads: 1})
	if err != nil {
		return nil, fmt.Errorf("creating session: %w", err)
	}
	return &testSession{s: s}, nil
}

func (s *testSession) close() { s.s.Close() }

// run evaluates the model on feeds (converted to the inputs' element types)
// and returns all its outputs in float64.
func (s *testSession) run(feeds map[string]*testTensor) (map[string]*testTensor, error) {
	var in []ort.Value
	for _, info := range s.s.Inputs() {
		f, ok := feeds[info.Name]
		if !ok {
			return nil, fmt.Errorf("no feed for input %q", info.Name)
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
			return nil, fmt.Errorf("input %q has type %v", info.Name, info.Type)
		}
	}
	out := make([]ort.Value, len(s.s.Outputs()))
	if err := s.s.Run(in, out); err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	res := map[string]*testTensor{}
	for i, info := range s.s.Outputs() {
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
	return res, nil
}
