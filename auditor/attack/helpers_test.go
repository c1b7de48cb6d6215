package attack

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/internal/testmodels"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// TestMain runs only the tests that need no onnxruntime (TestPure…) when it
// is missing outside CI, since the examples cannot skip themselves. In CI
// every test runs, and those needing onnxruntime fail.
func TestMain(m *testing.M) {
	flag.Parse()
	if err := ort.Init(); err != nil && !orttest.InCI() {
		fmt.Fprintf(os.Stderr, "onnxruntime is not available, running only TestPure*: %v\n", err)
		if err := flag.Set("test.run", "^TestPure"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

const modelsDir = "../../testdata/models"

// fixture loads testdata/models/NAME.onnx and its inputs NAME.x.npy.
func fixture(t testing.TB, name string) (*onnxpb.ModelProto, *npy.Array) {
	t.Helper()
	return testmodels.Fixture(t, modelsDir, name)
}

// tile returns n images: copies of the images in x (of d pixels each) in
// turn, each but the first copies plus Gaussian noise of standard deviation
// sigma, clipped to [0, 1].
func tile(x []float32, d, n int, sigma float64, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]float32, n*d)
	m := len(x) / d
	for i := range n {
		src := x[(i%m)*d : (i%m+1)*d]
		for j, v := range src {
			if i >= m {
				v += float32(sigma * rng.NormFloat64())
			}
			out[i*d+j] = min(max(v, 0), 1)
		}
	}
	return out
}

func newClassifier(t testing.TB, m *onnxpb.ModelProto, opt Options) *Classifier {
	t.Helper()
	orttest.Require(t)
	c, err := NewClassifier(m, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Graph-building helpers for models made in the tests.

func valueInfo(name string, dims ...any) *onnxpb.ValueInfoProto {
	tt := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT))}
	if dims != nil {
		tt.Shape = &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			switch d := d.(type) {
			case int:
				tt.Shape.Dim = append(tt.Shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
			case string:
				tt.Shape.Dim = append(tt.Shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
			}
		}
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}}}
}

func node(op string, in []string, out string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{Name: proto.String(out + "/" + op), OpType: proto.String(op), Input: in, Output: []string{out}, Attribute: attrs}
}

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func model(g *onnxpb.GraphProto) *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		Graph:       g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
	}
}

// linear is a linear classifier f(x) = W·x + b, W [K, D].
type linear struct {
	k, d int
	w, b []float64
}

func newLinear(rng *rand.Rand, k, d int) *linear {
	l := &linear{k: k, d: d, w: make([]float64, k*d), b: make([]float64, k)}
	for i := range l.w {
		// Round to float32 so the model holds exactly these weights.
		l.w[i] = float64(float32(rng.NormFloat64()))
	}
	for i := range l.b {
		l.b[i] = float64(float32(rng.NormFloat64()))
	}
	return l
}

// model returns the ONNX model: one Gemm (transB=1) from input [N, D] to
// logits [N, K].
func (l *linear) model() *onnxpb.ModelProto {
	return model(&onnxpb.GraphProto{
		Name:        proto.String("linear"),
		Input:       []*onnxpb.ValueInfoProto{valueInfo("x", "N", l.d)},
		Output:      []*onnxpb.ValueInfoProto{valueInfo("logits", "N", l.k)},
		Initializer: []*onnxpb.TensorProto{onnxgrad.NewTensorFloat32("W", []int64{int64(l.k), int64(l.d)}, f32(l.w)), onnxgrad.NewTensorFloat32("b", []int64{int64(l.k)}, f32(l.b))},
		Node:        []*onnxpb.NodeProto{node("Gemm", []string{"x", "W", "b"}, "logits", attrInt("transB", 1))},
	})
}

// logits returns f(x) in float64.
func (l *linear) logits(x []float32) []float64 {
	f := make([]float64, l.k)
	for k := range l.k {
		f[k] = l.b[k]
		for i, v := range x {
			f[k] += l.w[k*l.d+i] * float64(v)
		}
	}
	return f
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// runtimeMem samples the bytes the Go heap has allocated so far.
type runtimeMem struct{ bytes uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.bytes = s.TotalAlloc
}

// sameDeepFool fails t where two runs of DeepFool on twin models (the same
// network in two forms) disagree: in a prediction, the step count or
// success, or in a margin or refined margin by more than tol relative. It
// returns the largest relative margin difference, for the log.
func sameDeepFool(t *testing.T, what string, got, want []DeepFoolResult, tol float64) float64 {
	t.Helper()
	var worst float64
	rel := func(a, b float64) float64 {
		if a == b { // both 0, or both +Inf on failure
			return 0
		}
		return math.Abs(a-b) / math.Abs(b)
	}
	for i, r := range got {
		w := want[i]
		d := rel(r.Margin, w.Margin)
		worst = max(worst, d)
		if r.Pred != w.Pred || r.AdvPred != w.AdvPred || r.Iterations != w.Iterations || r.Success != w.Success || d > tol {
			t.Errorf("%s, image %d: %+v; the twin gives %+v", what, i, r, w)
		}
	}
	return worst
}
