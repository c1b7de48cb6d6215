package attack

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/internal/testmodels"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

func TestPureParseLayout(t *testing.T) {
	for in, want := range map[string]Layout{"": LayoutAuto, "auto": LayoutAuto, "nchw": NCHW, "NHWC": NHWC} {
		if got, err := ParseLayout(in); err != nil || got != want {
			t.Errorf("ParseLayout(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseLayout("chw"); err == nil || !strings.Contains(err.Error(), "want auto, nchw or nhwc") {
		t.Errorf("ParseLayout(chw): %v", err)
	}
}

// ConvertLayout puts x[n, c, h, w] at y[n, h, w, c] and back.
func TestPureConvertLayout(t *testing.T) {
	const n, c, h, w = 2, 3, 4, 5
	x := make([]float32, n*c*h*w)
	for i := range x {
		x[i] = float32(i)
	}
	y, shape := ConvertLayout(x, []int64{c, h, w}, NCHW, NHWC)
	if !slices.Equal(shape, []int64{h, w, c}) {
		t.Fatalf("NHWC shape %v", shape)
	}
	for i := range n {
		for ch := range c {
			for r := range h {
				for col := range w {
					if got, want := y[((i*h+r)*w+col)*c+ch], x[((i*c+ch)*h+r)*w+col]; got != want {
						t.Fatalf("y[%d, %d, %d, %d] = %v, want x[%d, %d, %d, %d] = %v", i, r, col, ch, got, i, ch, r, col, want)
					}
				}
			}
		}
	}
	back, shape := ConvertLayout(y, shape, NHWC, NCHW)
	if !slices.Equal(shape, []int64{c, h, w}) || !slices.Equal(back, x) {
		t.Errorf("NCHW → NHWC → NCHW gives %v %v", shape, back)
	}
	if z, shape := ConvertLayout(x, []int64{c * h * w}, NCHW, NHWC); &z[0] != &x[0] || shape[0] != c*h*w {
		t.Errorf("flat images were converted")
	}
}

// inputLayout detects NHWC only when every reader of a rank-4 input is a
// Transpose with perm [0, 3, 1, 2].
func TestPureInputLayout(t *testing.T) {
	perm := func(p ...int64) *onnxpb.AttributeProto {
		return &onnxpb.AttributeProto{Name: proto.String("perm"), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: p}
	}
	toNCHW := node("Transpose", []string{"x"}, "t", perm(0, 3, 1, 2))
	tests := []struct {
		name  string
		in    *onnxpb.ValueInfoProto
		fixed []int64
		nodes []*onnxpb.NodeProto
		want  Layout
	}{
		{"transposed", valueInfo("x", "N", 28, 28, 1), nil, []*onnxpb.NodeProto{toNCHW}, NHWC},
		{"transposed twice", valueInfo("x", "N", 28, 28, 1), nil, []*onnxpb.NodeProto{toNCHW, node("Transpose", []string{"x"}, "u", perm(0, 3, 1, 2))}, NHWC},
		{"undeclared, fixed", valueInfo("x"), []int64{28, 28, 1}, []*onnxpb.NodeProto{toNCHW}, NHWC},
		{"other perm", valueInfo("x", "N", 28, 28, 1), nil, []*onnxpb.NodeProto{node("Transpose", []string{"x"}, "t", perm(0, 2, 3, 1))}, NCHW},
		{"no perm", valueInfo("x", "N", 28, 28, 1), nil, []*onnxpb.NodeProto{node("Transpose", []string{"x"}, "t")}, NCHW},
		{"another reader", valueInfo("x", "N", 28, 28, 1), nil, []*onnxpb.NodeProto{toNCHW, node("Relu", []string{"x"}, "r")}, NCHW},
		{"plain", valueInfo("x", "N", 1, 28, 28), nil, []*onnxpb.NodeProto{node("Relu", []string{"x"}, "r")}, NCHW},
		{"rank 3", valueInfo("x", "N", 28, 28), nil, []*onnxpb.NodeProto{node("Transpose", []string{"x"}, "t", perm(0, 2, 1))}, NCHW},
		{"unread", valueInfo("x", "N", 28, 28, 1), nil, nil, NCHW},
	}
	for _, tt := range tests {
		g := &onnxpb.GraphProto{Input: []*onnxpb.ValueInfoProto{tt.in}, Node: tt.nodes}
		for _, want := range []Layout{LayoutAuto, NCHW, NHWC} {
			got, err := inputLayout(g, tt.in, tt.fixed, want)
			if want == LayoutAuto {
				want = tt.want
			}
			if err != nil || got != want {
				t.Errorf("%s: %v, %v; want %v", tt.name, got, err, want)
			}
		}
	}
}

// TestClassifierNHWC checks that a model taking NHWC images (the resnet
// fixture behind a Transpose) is detected as NHWC, normalised per channel
// on its last axis, and scored and attacked like the NCHW model on the same
// images transposed.
func TestClassifierNHWC(t *testing.T) {
	m, xa := fixture(t, "resnet_small")
	nhwc := testmodels.NHWC(m)
	mean, std := []float32{0.49, 0.48, 0.45}, []float32{0.25, 0.24, 0.26} // CIFAR-10's, rounded
	cn := newClassifier(t, m, Options{Name: "nchw.onnx", Mean: mean, Std: std, Threads: 1})
	ch := newClassifier(t, nhwc, Options{Name: "nhwc.onnx", Mean: mean, Std: std, Threads: 1})
	if cn.Layout() != NCHW || ch.Layout() != NHWC || !slices.Equal(ch.InputShape(), []int64{16, 16, 3}) {
		t.Fatalf("layouts %v and %v, NHWC input %v", cn.Layout(), ch.Layout(), ch.InputShape())
	}
	const n = 12
	x := tile(xa.Data, cn.SampleSize(), n, 0.05, 3)
	xh, _ := ConvertLayout(x, cn.InputShape(), NCHW, NHWC)
	sn, err := cn.Logits(x, n)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := ch.Logits(xh, n)
	if err != nil {
		t.Fatal(err)
	}
	// The same float32 operations on the same values: only the order of
	// the normalisation's broadcast differs, which does not round.
	if !slices.Equal(sn, sh) {
		t.Errorf("scores differ: %v NCHW, %v NHWC", sn, sh)
	}
	for _, norm := range []Norm{L2, LInf} {
		opt := DefaultDeepFoolOptions(norm)
		rn, err := DeepFool(context.Background(), cn, x, nil, opt)
		if err != nil {
			t.Fatal(err)
		}
		rh, err := DeepFool(context.Background(), ch, xh, nil, opt)
		if err != nil {
			t.Fatal(err)
		}
		// The scores and gradients are the same numbers in another order;
		// only the attack's float64 sums over the pixels run in another
		// order, which changes a margin by float64 rounding (3e-16 seen).
		// 1e-6 would still catch a wrong channel axis by a wide margin.
		for i, r := range rn {
			if !r.Success {
				t.Fatalf("%v image %d: no margin: %+v", norm, i, r)
			}
		}
		t.Logf("%v: max relative margin difference %.3g", norm, sameDeepFool(t, "NHWC "+norm.String(), rh, rn, 1e-6))
	}

	// Told NCHW, the NHWC model's channels are its 16 rows.
	_, err = NewClassifier(nhwc, Options{Name: "nhwc.onnx", Mean: mean, Std: std, Layout: NCHW})
	var ne *NormalisationError
	if !errors.As(err, &ne) || ne.Channels != 16 || ne.Axis != 0 || ne.Layout != NCHW ||
		!strings.Contains(err.Error(), "nhwc.onnx: normalisation: 3 mean values; want 1, or one per channel: 16 on axis 1 of the input [N, 16, 16, 3] (NCHW)") {
		t.Errorf("NHWC model told NCHW: %v", err)
	}
	// Told NHWC, the NCHW model's channels are its 16 columns.
	_, err = NewClassifier(m, Options{Name: "nchw.onnx", Mean: mean, Std: std, Layout: NHWC})
	if !errors.As(err, &ne) || ne.Channels != 16 || ne.Axis != 2 || !strings.Contains(err.Error(), "16 on axis 3 of the input [N, 3, 16, 16] (NHWC)") {
		t.Errorf("NCHW model told NHWC: %v", err)
	}

	// A symbolic image size is asked for in the input's layout.
	sym := proto.Clone(nhwc).(*onnxpb.ModelProto)
	sym.Graph.Input[0] = valueInfo(sym.Graph.Input[0].GetName(), "N", "H", "W", 3)
	_, err = NewClassifier(sym, Options{Name: "sym.onnx"})
	var se *ImageSizeError
	if !errors.As(err, &se) || se.Layout != NHWC || !slices.Equal(se.Declared, []int64{0, 0, 3}) || se.Given != nil {
		t.Errorf("symbolic NHWC model: %v", err)
	}
	if c := newClassifier(t, sym, Options{Name: "sym.onnx", InputShape: []int64{16, 16, 3}}); c.Layout() != NHWC {
		t.Errorf("symbolic NHWC model with its image size: layout %v", c.Layout())
	}
}
