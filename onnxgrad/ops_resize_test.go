package onnxgrad

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// resizeCase is a one-node Resize or Upsample model.
type resizeCase struct {
	op     string // "Resize" or "Upsample"
	opset  int64
	attrs  []*onnxpb.AttributeProto
	shape  []int64
	scales []float32 // nil when absent
	sizes  []int64   // nil when absent
}

func (rc resizeCase) String() string {
	s := fmt.Sprintf("%s-%d %v", rc.op, rc.opset, rc.shape)
	if rc.scales != nil {
		s += fmt.Sprintf(" scales %v", rc.scales)
	}
	if rc.sizes != nil {
		s += fmt.Sprintf(" sizes %v", rc.sizes)
	}
	for _, a := range rc.attrs {
		switch a.GetType() {
		case onnxpb.AttributeProto_STRING:
			s += fmt.Sprintf(" %s=%s", a.GetName(), a.GetS())
		case onnxpb.AttributeProto_INT:
			s += fmt.Sprintf(" %s=%d", a.GetName(), a.GetI())
		case onnxpb.AttributeProto_FLOAT:
			s += fmt.Sprintf(" %s=%g", a.GetName(), a.GetF())
		default:
			s += fmt.Sprintf(" %s=%v", a.GetName(), a.GetInts())
		}
	}
	return s
}

// model lays the inputs out as each version expects: Upsample-7 takes
// its scales as an attribute, Upsample-9 and Resize-10 as input 1;
// Resize-11 and 12 take empty tensors for the unused roi and scales, and
// from 13 on empty names.
func (rc resizeCase) model() *onnxpb.ModelProto {
	g := &onnxpb.GraphProto{Name: proto.String("resize"), Input: []*onnxpb.ValueInfoProto{tensorValueInfo("x", onnxpb.TensorProto_FLOAT, shapeOf(rc.shape))},
		Output: []*onnxpb.ValueInfoProto{tensorValueInfo("y", onnxpb.TensorProto_FLOAT, nil)}}
	floats := func(name string, v []float32) string {
		g.Initializer = append(g.Initializer, NewTensorFloat32(name, []int64{int64(len(v))}, v))
		return name
	}
	node := &onnxpb.NodeProto{Name: proto.String("resize"), OpType: proto.String(rc.op), Input: []string{"x"}, Output: []string{"y"}, Attribute: rc.attrs}
	switch {
	case rc.op == "Upsample" && rc.opset < 9:
		node.Attribute = append(node.Attribute, attrFloats("scales", rc.scales...))
	case rc.op == "Upsample" || rc.opset < 11:
		node.Input = append(node.Input, floats("scales", rc.scales))
	default:
		roi, scales := "", ""
		switch {
		case rc.scales != nil:
			scales = floats("scales", rc.scales)
		case rc.opset < 13:
			scales = floats("scales", []float32{})
		}
		if rc.opset < 13 {
			roi = floats("roi", []float32{})
		}
		node.Input = append(node.Input, roi, scales)
		if rc.sizes != nil {
			g.Initializer = append(g.Initializer, newTensorInt64("sizes", []int64{int64(len(rc.sizes))}, rc.sizes))
			node.Input = append(node.Input, "sizes")
		}
	}
	g.Node = []*onnxpb.NodeProto{node}
	ir := int64(8)
	if rc.opset >= 19 {
		ir = 9
	}
	return &onnxpb.ModelProto{IrVersion: proto.Int64(ir), Graph: g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(rc.opset)}}}
}

// resizeCases crosses modes, coordinate transformations, nearest modes and
// targets (enlarging, shrinking, mixed, from sizes) over every version,
// within what onnxruntime's kernel accepts (linear: 2-D, 3-D, 5-D and 4-D
// NCHW or NHWC; cubic: 2-D and 4-D NCHW).
func resizeCases() []resizeCase {
	var cases []resizeCase
	str := attrString
	targets := []resizeCase{
		{shape: []int64{2, 3, 4, 5}, scales: []float32{1, 1, 2, 3}},
		{shape: []int64{2, 3, 5, 6}, scales: []float32{1, 1, 0.6, 1.7}},
		{shape: []int64{2, 3, 5, 4}, sizes: []int64{2, 3, 3, 7}},
		{shape: []int64{1, 2, 7, 3}, sizes: []int64{1, 2, 1, 4}},
	}
	coords := []string{"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn", "half_pixel_symmetric"}
	opsetFor := func(coord string) int64 {
		switch coord {
		case "tf_half_pixel_for_nn":
			return 11 // deprecated from 13
		case "half_pixel_symmetric":
			return 19
		}
		return 13
	}
	with := func(t resizeCase, opset int64, attrs ...*onnxpb.AttributeProto) resizeCase {
		t.op, t.opset, t.attrs = "Resize", opset, attrs
		return t
	}
	for _, coord := range coords {
		for _, t := range targets {
			for _, nm := range []string{"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"} {
				cases = append(cases, with(t, opsetFor(coord), str("mode", "nearest"), str("coordinate_transformation_mode", coord), str("nearest_mode", nm)))
			}
			if coord == "tf_half_pixel_for_nn" {
				continue // nearest only
			}
			cases = append(cases, with(t, opsetFor(coord), str("mode", "linear"), str("coordinate_transformation_mode", coord)))
			for _, a := range []float32{-0.75, -0.5} {
				for _, ex := range []int64{0, 1} {
					cases = append(cases, with(t, opsetFor(coord), str("mode", "cubic"), str("coordinate_transformation_mode", coord), attrFloat("cubic_coeff_a", a), attrInt("exclude_outside", ex)))
				}
			}
		}
	}
	for _, t := range []resizeCase{
		{shape: []int64{5, 4}, scales: []float32{1.5, 0.7}},
		{shape: []int64{3, 4, 5}, scales: []float32{2, 0.5, 1.5}},
		{shape: []int64{1, 4, 5, 2}, scales: []float32{1, 2, 1.5, 1}},
		{shape: []int64{1, 2, 3, 4, 2}, scales: []float32{1, 1, 2, 0.5, 1.5}},
	} {
		cases = append(cases, with(t, 13, str("mode", "linear"), str("coordinate_transformation_mode", "half_pixel")),
			with(t, 13, str("mode", "linear"), str("coordinate_transformation_mode", "align_corners")))
	}
	cases = append(cases, with(resizeCase{shape: []int64{5, 4}, scales: []float32{1.5, 0.7}}, 13, str("mode", "cubic")))
	// Coordinates a float32 rounding away from a half (7/2 as 3.4999998,
	// 20→6 at 14.499999) and one that is not a tie (24.499998, 30→9).
	for _, coord := range []string{"asymmetric", "half_pixel", "tf_half_pixel_for_nn"} {
		for _, nm := range []string{"round_prefer_ceil", "round_prefer_floor"} {
			for _, t := range []resizeCase{{shape: []int64{7}, sizes: []int64{2}}, {shape: []int64{20}, sizes: []int64{6}}, {shape: []int64{14}, sizes: []int64{19}}, {shape: []int64{30}, sizes: []int64{9}}} {
				cases = append(cases, with(t, opsetFor(coord), str("mode", "nearest"), str("coordinate_transformation_mode", coord), str("nearest_mode", nm)))
			}
		}
	}
	// Opset 18: axes, and keep_aspect_ratio_policy with sizes.
	for _, policy := range []string{"stretch", "not_larger", "not_smaller"} {
		cases = append(cases, with(resizeCase{shape: []int64{2, 3, 5, 4}, sizes: []int64{7, 3}}, 18, str("mode", "linear"), attrInts("axes", []int64{2, 3}), str("keep_aspect_ratio_policy", policy)),
			with(resizeCase{shape: []int64{2, 3, 5, 4}, sizes: []int64{2, 3, 7, 3}}, 18, str("mode", "nearest"), str("keep_aspect_ratio_policy", policy)))
	}
	cases = append(cases, with(resizeCase{shape: []int64{2, 3, 5, 4}, scales: []float32{0.5, 2}}, 18, str("mode", "nearest"), attrInts("axes", []int64{3, 2})))
	// The versions before opset 11: asymmetric coordinates, nearest rounds
	// down when enlarging and up when shrinking.
	cases = append(cases, []resizeCase{
		{op: "Resize", opset: 10, shape: []int64{2, 3, 4, 5}, scales: []float32{1, 1, 2, 3}, attrs: []*onnxpb.AttributeProto{str("mode", "nearest")}},
		{op: "Resize", opset: 10, shape: []int64{2, 3, 5, 6}, scales: []float32{1, 1, 0.5, 0.7}, attrs: []*onnxpb.AttributeProto{str("mode", "nearest")}},
		{op: "Resize", opset: 10, shape: []int64{2, 3, 4, 5}, scales: []float32{1, 1, 1.5, 0.6}, attrs: []*onnxpb.AttributeProto{str("mode", "linear")}},
		{op: "Upsample", opset: 9, shape: []int64{2, 3, 4, 5}, scales: []float32{1, 1, 2, 2}, attrs: []*onnxpb.AttributeProto{str("mode", "nearest")}},
		{op: "Upsample", opset: 9, shape: []int64{2, 3, 4, 5}, scales: []float32{1, 1, 1.5, 2.5}, attrs: []*onnxpb.AttributeProto{str("mode", "linear")}},
		{op: "Upsample", opset: 7, shape: []int64{2, 3, 4, 5}, scales: []float32{1, 1, 2, 3}, attrs: []*onnxpb.AttributeProto{str("mode", "nearest")}},
	}...)
	return cases
}

// TestResizeMatchesOnnxruntime checks the interpolation matrices and the
// inferred output shape against onnxruntime's Resize: applying the matrices
// of every axis to a random input must reproduce its output. Both compute
// in float32 (the matrices are applied here in float64), so they agree to
// rounding, 1e-5 relative. Models of opsets before 11 must also give the
// same output after upgradeResize rewrote them for opset 13.
func TestResizeMatchesOnnxruntime(t *testing.T) {
	rt := newTestRuntime(t)
	for i, rc := range resizeCases() {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			m := rc.model()
			rng := rand.New(rand.NewPCG(uint64(i), 3))
			x := &testTensor{shape: rc.shape, data: randn(rng, int(mustElements(rc.shape)))}
			y := rt.run(t, m, map[string]*testTensor{"x": x}, []string{"y"})["y"]

			gr := newGraph(m, "")
			gr.infer()
			for _, err := range gr.inferErr {
				t.Fatalf("%v: %v", rc, err)
			}
			if got, _ := gr.info["y"].shape.Static(); !slices.Equal(got, y.shape) {
				t.Fatalf("%v: inferred shape %v, onnxruntime's %v", rc, gr.info["y"].shape, y.shape)
			}
			s, err := readResize(&nodeCtx{gr: gr, n: m.GetGraph().GetNode()[0]}, gr.info["x"].shape)
			if err != nil {
				t.Fatal(err)
			}
			got, shape := x.data, slices.Clone(rc.shape)
			for a := range shape {
				if mat := s.matrix(a); mat != nil {
					got, shape = applyAxis(got, shape, a, mat, s.out[a].Value)
				}
			}
			for j := range got {
				if math.Abs(got[j]-y.data[j]) > 1e-5*(1+math.Abs(y.data[j])) {
					t.Fatalf("%v: element %d is %g, onnxruntime's %g", rc, j, got[j], y.data[j])
				}
			}

			if rc.opset >= 11 && rc.op == "Resize" {
				return
			}
			up := proto.Clone(m).(*onnxpb.ModelProto)
			ug := newGraph(up, "")
			ug.infer()
			if err := ug.upgradeTo13(); err != nil {
				t.Fatal(err)
			}
			y13 := rt.run(t, up, map[string]*testTensor{"x": x}, []string{"y"})["y"]
			if !slices.Equal(y13.data, y.data) {
				t.Fatalf("%v: the model upgraded to opset 13 computes something else", rc)
			}
		})
	}
}

// applyAxis multiplies axis a of data (shape dims) by the [out, in]
// matrix m: res[..., o, ...] = Σᵢ m[o, i]·data[..., i, ...].
func applyAxis(data []float64, dims []int64, a int, m []float64, out int64) ([]float64, []int64) {
	in := dims[a]
	inner := mustElements(dims[a+1:])
	outer := mustElements(dims[:a])
	res := make([]float64, outer*out*inner)
	for p := range outer {
		for o := range out {
			for i := range in {
				w := m[o*in+i]
				if w == 0 {
					continue
				}
				for q := range inner {
					res[(p*out+o)*inner+q] += w * data[(p*in+i)*inner+q]
				}
			}
		}
	}
	dims = slices.Clone(dims)
	dims[a] = out
	return res, dims
}

// TestResizeRefusals checks that the forms onnxgrad does not differentiate
// are errors naming the node and what is unsupported.
func TestResizeRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		rc   resizeCase
		edit func(m *onnxpb.ModelProto)
		want string
	}{
		{name: "antialias", rc: resizeCase{op: "Resize", opset: 18, shape: []int64{1, 1, 4, 4}, scales: []float32{1, 1, 0.5, 0.5}, attrs: []*onnxpb.AttributeProto{attrString("mode", "linear"), attrInt("antialias", 1)}}, want: "antialias"},
		{name: "tf_crop_and_resize", rc: resizeCase{op: "Resize", opset: 13, shape: []int64{1, 1, 4, 4}, scales: []float32{1, 1, 2, 2}, attrs: []*onnxpb.AttributeProto{attrString("coordinate_transformation_mode", "tf_crop_and_resize")}}, want: "tf_crop_and_resize"},
		{name: "scales fed at run time", rc: resizeCase{op: "Resize", opset: 13, shape: []int64{1, 1, 4, 4}, scales: []float32{1, 1, 2, 2}}, edit: func(m *onnxpb.ModelProto) {
			m.Graph.Input = append(m.Graph.Input, tensorValueInfo("scales", onnxpb.TensorProto_FLOAT, shapeOf([]int64{4})))
		}, want: "scales input \"scales\" is not a constant"},
		{name: "sizes computed at run time", rc: resizeCase{op: "Resize", opset: 13, shape: []int64{1, 1, 4, 4}, sizes: []int64{1, 1, 8, 8}}, edit: func(m *onnxpb.ModelProto) {
			// sizes = Cast(Constant float): values onnxgrad does not track.
			g := m.GetGraph()
			g.Initializer = g.Initializer[:0]
			g.Node = append([]*onnxpb.NodeProto{
				{OpType: proto.String("Constant"), Output: []string{"sizes_f"}, Attribute: []*onnxpb.AttributeProto{attrTensor("value", NewTensorFloat32("", []int64{4}, []float32{1, 1, 8, 8}))}},
				{OpType: proto.String("Cast"), Input: []string{"sizes_f"}, Output: []string{"sizes"}, Attribute: []*onnxpb.AttributeProto{attrInt("to", int64(onnxpb.TensorProto_INT64))}},
			}, g.Node...)
		}, want: "sizes input \"sizes\" is not a constant"},
		{name: "Resize-10 nearest enlarging and shrinking", rc: resizeCase{op: "Resize", opset: 10, shape: []int64{1, 1, 4, 4}, scales: []float32{1, 1, 2, 0.5}, attrs: []*onnxpb.AttributeProto{attrString("mode", "nearest")}}, want: "cannot be upgraded to opset 13"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.rc.model()
			if tc.edit != nil {
				tc.edit(m)
			}
			_, err := Build(m, Options{Mode: VJP, WRT: []string{"x"}})
			var ne *NodeError
			if !errors.As(err, &ne) || ne.Node != "resize" || !strings.Contains(ne.Msg, tc.want) {
				t.Fatalf("Build = %v; want a NodeError for node \"resize\" mentioning %q", err, tc.want)
			}
		})
	}
}

// torchResize is the attribute set torch.onnx.export (torch 1.13) writes
// for F.interpolate at opsets 11–17.
func torchResize(mode, coord string) []*onnxpb.AttributeProto {
	return []*onnxpb.AttributeProto{attrString("coordinate_transformation_mode", coord), attrFloat("cubic_coeff_a", -0.75),
		attrString("mode", mode), attrString("nearest_mode", "floor")}
}

func attrFloats(name string, v ...float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOATS.Enum(), Floats: v}
}

// TestResizeSizesFromShape differentiates the Resize PyTorch exports for
// F.interpolate(size=...) with a symbolic batch: sizes is
// Concat(Slice(Shape(x), 0, 2), [7, 9]), so its first element is the batch
// symbol. Resize is linear, so ⟨v, Resize(u)⟩ = ⟨VJP(v), u⟩ exactly (up to
// float32 rounding).
func TestResizeSizesFromShape(t *testing.T) {
	rt := newTestRuntime(t)
	for _, mode := range []string{"nearest", "linear"} {
		t.Run(mode, func(t *testing.T) {
			shape := Shape{{Param: "N"}, known(3), known(4), known(5)}
			node := func(op string, in []string, out string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
				return &onnxpb.NodeProto{Name: proto.String(out), OpType: proto.String(op), Input: in, Output: []string{out}, Attribute: attrs}
			}
			coord := "asymmetric"
			if mode == "linear" {
				coord = "pytorch_half_pixel"
			}
			g := &onnxpb.GraphProto{
				Name:  proto.String("interpolate"),
				Input: []*onnxpb.ValueInfoProto{tensorValueInfo("x", onnxpb.TensorProto_FLOAT, shape)},
				Initializer: []*onnxpb.TensorProto{newTensorInt64("zero", []int64{1}, []int64{0}), newTensorInt64("two", []int64{1}, []int64{2}),
					newTensorInt64("hw", []int64{2}, []int64{7, 9})},
				Node: []*onnxpb.NodeProto{
					node("Shape", []string{"x"}, "shape"),
					node("Slice", []string{"shape", "zero", "two"}, "nc"),
					node("Concat", []string{"nc", "hw"}, "sizes", attrInt("axis", 0)),
					node("Resize", []string{"x", "", "", "sizes"}, "y", torchResize(mode, coord)...),
				},
				Output: []*onnxpb.ValueInfoProto{tensorValueInfo("y", onnxpb.TensorProto_FLOAT, nil)},
			}
			m := &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}}}
			res, err := Build(m, Options{Mode: VJP})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(5, 6))
			u := &testTensor{shape: []int64{2, 3, 4, 5}, data: randn(rng, 120)}
			v := &testTensor{shape: []int64{2, 3, 7, 9}, data: randn(rng, 378)}
			out := rt.run(t, res.Model, map[string]*testTensor{"x": u, res.Seed: v}, []string{"y", res.Grads[0]})
			if !slices.Equal(out["y"].shape, v.shape) {
				t.Fatalf("output shape %v, want %v", out["y"].shape, v.shape)
			}
			lhs, rhs := dot(v.data, out["y"].data), dot(out[res.Grads[0]].data, u.data)
			if math.Abs(lhs-rhs) > 1e-4*(1+math.Abs(lhs)) {
				t.Fatalf("⟨v, Resize(u)⟩ = %g, ⟨VJP(v), u⟩ = %g", lhs, rhs)
			}
		})
	}
}
