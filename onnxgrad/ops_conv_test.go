package onnxgrad

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// stridedConv is a one-Conv case with a constant kernel for the input
// gradient of strided convolutions: x [2, c, h, w], kernel [m, c, kh, kw].
type stridedConv struct {
	name       string
	c, m, h, w int64
	kh, kw     int64
	strides    []int64
	pads       []int64 // nil: none
	dilations  []int64 // nil: ones
	group      int64   // 0: 1
	// phases says whether the input gradient can be the stride-phase Conv
	// (convInputGradByPhases): it is with phasesPay set to alwaysPhases.
	phases bool
}

func (sc stridedConv) ruleCase() ruleCase {
	attrs := []*onnxpb.AttributeProto{attrInts("strides", sc.strides)}
	if sc.pads != nil {
		attrs = append(attrs, attrInts("pads", sc.pads))
	}
	if sc.dilations != nil {
		attrs = append(attrs, attrInts("dilations", sc.dilations))
	}
	group := max(sc.group, 1)
	if group > 1 {
		attrs = append(attrs, attrInt("group", group))
	}
	return ruleCase{name: sc.name, op: "Conv", attrs: attrs, float32: true,
		inputs: []caseInput{f(2, sc.c, sc.h, sc.w), fixed(sc.m, sc.c/group, sc.kh, sc.kw)}}
}

// stridedConvs covers the stride-phase input gradient (strides 2 and 3;
// kernels 1, 2, 3, 4 and 7; zero, symmetric and asymmetric pads; odd and
// even input sizes, sizes that are not multiples of the stride;
// dilations; 1 to 16 channels) and the convolutions that keep the
// ConvTranspose.
var stridedConvs = []stridedConv{
	{name: "k1 s2", c: 4, m: 6, h: 8, w: 8, kh: 1, kw: 1, strides: []int64{2, 2}, phases: true},
	{name: "k1 s2 odd", c: 3, m: 5, h: 7, w: 9, kh: 1, kw: 1, strides: []int64{2, 2}, phases: true},
	{name: "k2 s2", c: 2, m: 3, h: 6, w: 8, kh: 2, kw: 2, strides: []int64{2, 2}, phases: true},
	{name: "k2 s2 odd pads 1", c: 5, m: 4, h: 7, w: 5, kh: 2, kw: 2, strides: []int64{2, 2}, pads: []int64{1, 1, 1, 1}, phases: true},
	{name: "k3 s2 p1", c: 8, m: 16, h: 8, w: 8, kh: 3, kw: 3, strides: []int64{2, 2}, pads: []int64{1, 1, 1, 1}, phases: true},
	{name: "k3 s2 p1 input 2x2", c: 6, m: 8, h: 2, w: 2, kh: 3, kw: 3, strides: []int64{2, 2}, pads: []int64{1, 1, 1, 1}, phases: true},
	{name: "k3 s2 p0 odd", c: 3, m: 4, h: 9, w: 7, kh: 3, kw: 3, strides: []int64{2, 2}, phases: true},
	{name: "k3 s2 asymmetric", c: 4, m: 3, h: 7, w: 6, kh: 3, kw: 2, strides: []int64{2, 2}, pads: []int64{0, 1, 2, 0}, phases: true},
	{name: "k3x1 s2 pads end", c: 2, m: 2, h: 6, w: 5, kh: 3, kw: 1, strides: []int64{2, 2}, pads: []int64{0, 0, 2, 1}, phases: true},
	{name: "k4 s2 p1", c: 3, m: 4, h: 8, w: 9, kh: 4, kw: 4, strides: []int64{2, 2}, pads: []int64{1, 1, 1, 1}, phases: true},
	{name: "k7 s2 p3 stem", c: 3, m: 8, h: 12, w: 11, kh: 7, kw: 7, strides: []int64{2, 2}, pads: []int64{3, 3, 3, 3}, phases: true},
	{name: "k7 s2 p3 stem 1 channel", c: 1, m: 4, h: 10, w: 10, kh: 7, kw: 7, strides: []int64{2, 2}, pads: []int64{3, 3, 3, 3}, phases: true},
	{name: "k2 s3 gaps", c: 3, m: 2, h: 8, w: 7, kh: 2, kw: 2, strides: []int64{3, 3}, phases: true},
	{name: "k3 s3", c: 4, m: 5, h: 9, w: 10, kh: 3, kw: 3, strides: []int64{3, 3}, phases: true},
	{name: "k4 s3 asymmetric", c: 2, m: 3, h: 11, w: 8, kh: 4, kw: 4, strides: []int64{3, 3}, pads: []int64{2, 0, 1, 3}, phases: true},
	{name: "k7 s3 p3", c: 16, m: 4, h: 13, w: 14, kh: 7, kw: 7, strides: []int64{3, 3}, pads: []int64{3, 3, 3, 3}, phases: true},
	{name: "k3 s2 pads beyond the kernel", c: 2, m: 3, h: 5, w: 6, kh: 3, kw: 3, strides: []int64{2, 2}, pads: []int64{4, 3, 1, 5}, phases: true},
	// These keep the ConvTranspose.
	{name: "unequal strides", c: 4, m: 3, h: 7, w: 8, kh: 3, kw: 3, strides: []int64{2, 1}, pads: []int64{1, 1, 1, 1}},
	{name: "grouped", c: 4, m: 6, h: 7, w: 8, kh: 3, kw: 3, strides: []int64{2, 2}, pads: []int64{1, 1, 1, 1}, group: 2},
	{name: "k3 s2 dilated 2", c: 4, m: 3, h: 9, w: 8, kh: 3, kw: 3, strides: []int64{2, 2}, dilations: []int64{2, 2}, pads: []int64{2, 1, 1, 2}, phases: true},
	{name: "k3 s2 dilated 3", c: 3, m: 3, h: 10, w: 9, kh: 3, kw: 2, strides: []int64{2, 2}, dilations: []int64{3, 1}, pads: []int64{1, 0, 3, 2}, phases: true},
	{name: "k2 s3 dilated 2", c: 2, m: 3, h: 9, w: 11, kh: 2, kw: 2, strides: []int64{3, 3}, dilations: []int64{2, 2}, pads: []int64{1, 1, 1, 1}, phases: true},
	{name: "stride 1 few channels", c: 2, m: 3, h: 6, w: 6, kh: 3, kw: 3, strides: []int64{1, 1}, pads: []int64{1, 1, 1, 1}},
}

// phaseOps counts the ops that tell the two forms of a Conv's input
// gradient apart in a gradient model.
func phaseOps(m *onnxpb.ModelProto) (depthToSpace, convTranspose int) {
	h := opHistogram(m.GetGraph())
	return h["DepthToSpace"], h["ConvTranspose"]
}

// alwaysPhases makes gradConv take the stride-phase form wherever it can,
// whatever phasesPay would say, until the test ends.
func alwaysPhases(tb testing.TB) {
	pay := phasesPay
	phasesPay = func(*window, []*phaseAxis, int64) bool { return true }
	tb.Cleanup(func() { phasesPay = pay })
}

// TestConvInputGradByPhases checks the input gradient of strided
// convolutions with constant kernels, in the stride-phase form wherever it
// applies, against central finite differences and, exactly (to float32
// rounding), against the ConvTranspose it replaces, and checks which form
// each case takes.
func TestConvInputGradByPhases(t *testing.T) {
	rt := newTestRuntime(t)
	alwaysPhases(t)
	for _, sc := range stridedConvs {
		t.Run(sc.name, func(t *testing.T) {
			c := sc.ruleCase()
			m, diff := caseModel(c, onnxpb.TensorProto_FLOAT)
			res, err := Build(m, Options{Mode: VJP, WRT: diff, File: c.name})
			if err != nil {
				t.Fatal(err)
			}
			d2s, ct := phaseOps(res.Model)
			if got := d2s == 1 && ct == 0; got != sc.phases {
				t.Errorf("%d DepthToSpace and %d ConvTranspose nodes; want the phase form %v", d2s, ct, sc.phases)
			}
			feeds := caseFeeds(c)
			y := rt.run(t, m, feeds, []string{"y"})["y"]
			rng := rand.New(rand.NewPCG(11, uint64(len(sc.name))))
			gy := &testTensor{shape: y.shape, data: randn(rng, len(y.data))}
			feeds[res.Seed] = gy
			got := rt.run(t, res.Model, feeds, res.Grads)[res.Grads[0]]
			want := rt.run(t, sc.convTranspose(c, y.shape), map[string]*testTensor{"gy": gy}, []string{"gx"})["gx"]
			if fmt.Sprint(got.shape) != fmt.Sprint(want.shape) {
				t.Fatalf("gradient of shape %v; the ConvTranspose gives %v", got.shape, want.shape)
			}
			var scale, worst float64
			for i := range want.data {
				scale = max(scale, math.Abs(want.data[i]))
				worst = max(worst, math.Abs(got.data[i]-want.data[i]))
			}
			// float32 sums of at most C·k·k ≈ 800 products of magnitude ≲ 3:
			// rounding stays far below 1e-5 of the largest element.
			if worst > 1e-5*scale {
				t.Errorf("differs from the ConvTranspose by %.3g (largest element %.3g)", worst, scale)
			}
			delete(feeds, res.Seed)
			checkFiniteDifferences(t, rt, m, diff, feeds, tolF32, hF32)
		})
	}
}

// convTranspose is the reference input gradient of case c's Conv: a
// ConvTranspose of gY [N, M, Ho, Wo] with the case's kernel and geometry,
// output_padding recovering the input size (../shared/onnxgrad-notes.md).
func (sc stridedConv) convTranspose(c ruleCase, yShape []int64) *onnxpb.ModelProto {
	pads := sc.pads
	if pads == nil {
		pads = make([]int64, 4)
	}
	dil := sc.dilations
	if dil == nil {
		dil = []int64{1, 1}
	}
	in, k := []int64{sc.h, sc.w}, []int64{sc.kh, sc.kw}
	outPad := make([]int64, 2)
	for i := range outPad {
		outPad[i] = (in[i] + pads[i] + pads[2+i] - dil[i]*(k[i]-1) - 1) % sc.strides[i]
	}
	kernel := c.inputs[1]
	g := &onnxpb.GraphProto{
		Name:        proto.String("reference"),
		Input:       []*onnxpb.ValueInfoProto{tensorValueInfo("gy", onnxpb.TensorProto_FLOAT, shapeOf(yShape))},
		Initializer: []*onnxpb.TensorProto{newTensorFloat("w", onnxpb.TensorProto_FLOAT, kernel.shape, caseValues(c, kernel, 1))},
		Node: []*onnxpb.NodeProto{{OpType: proto.String("ConvTranspose"), Input: []string{"gy", "w"}, Output: []string{"gx"},
			Attribute: []*onnxpb.AttributeProto{attrInts("strides", sc.strides), attrInts("pads", pads), attrInts("dilations", dil),
				attrInts("output_padding", outPad), attrInt("group", max(sc.group, 1))}}},
		Output: []*onnxpb.ValueInfoProto{tensorValueInfo("gx", onnxpb.TensorProto_FLOAT, nil)},
	}
	return &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}}}
}

// TestConvInputGradKeepsConvTranspose checks that the strided convolutions
// the stride-phase form does not serve keep the ConvTranspose: a kernel fed
// at run time (nothing to fold), 1-D and 3-D convolutions (DepthToSpace is
// 2-D). Their gradients are checked by the finite-difference cases of
// ruleCases ("Conv stride 2 asymmetric pads", "Conv 1-D", "Conv 3-D stride 2").
func TestConvInputGradKeepsConvTranspose(t *testing.T) {
	for _, c := range []ruleCase{
		{name: "runtime kernel", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2, 2})}, inputs: []caseInput{f(2, 4, 7, 6), f(3, 4, 3, 3)}},
		{name: "1-D", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2})}, inputs: []caseInput{f(2, 4, 9), fixed(3, 4, 3)}},
		{name: "3-D", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2, 2, 2})}, inputs: []caseInput{f(2, 4, 5, 5, 5), fixed(3, 4, 3, 3, 3)}},
	} {
		m, _ := caseModel(c, onnxpb.TensorProto_FLOAT)
		res, err := Build(m, Options{Mode: VJP, WRT: []string{"in0"}, File: c.name})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if d2s, ct := phaseOps(res.Model); d2s != 0 || ct != 1 {
			t.Errorf("%s: %d DepthToSpace and %d ConvTranspose nodes; want the ConvTranspose", c.name, d2s, ct)
		}
	}
}

// TestPhasesPay checks which form the speed rule gives the input gradients
// of torchvision ResNet-18's strided convolutions on 3×32×32 images (with
// the batch of 2 images of the test models; the rule depends on the
// geometry alone): the stride-phase Conv where gY is 2×2 or 1×1, the
// ConvTranspose for the stem, the 1×1 downsampling convolutions and gY of
// 4×4 (see phasesPay and BenchmarkConvInputGrad).
func TestPhasesPay(t *testing.T) {
	for _, sc := range []stridedConv{
		{name: "stem", c: 3, m: 64, h: 32, w: 32, kh: 7, kw: 7, strides: []int64{2, 2}, pads: []int64{3, 3, 3, 3}},
		{name: "layer2.0.conv1", c: 64, m: 128, h: 8, w: 8, kh: 3, kw: 3, strides: []int64{2, 2}, pads: []int64{1, 1, 1, 1}},
		{name: "layer2.0.downsample", c: 64, m: 128, h: 8, w: 8, kh: 1, kw: 1, strides: []int64{2, 2}},
		{name: "layer3.0.conv1", c: 128, m: 256, h: 4, w: 4, kh: 3, kw: 3, strides: []int64{2, 2}, pads: []int64{1, 1, 1, 1}, phases: true},
		{name: "layer3.0.downsample", c: 128, m: 256, h: 4, w: 4, kh: 1, kw: 1, strides: []int64{2, 2}},
		{name: "layer4.0.conv1", c: 256, m: 512, h: 2, w: 2, kh: 3, kw: 3, strides: []int64{2, 2}, pads: []int64{1, 1, 1, 1}, phases: true},
		{name: "layer4.0.downsample", c: 256, m: 512, h: 2, w: 2, kh: 1, kw: 1, strides: []int64{2, 2}},
		{name: "4 channels", c: 4, m: 8, h: 4, w: 4, kh: 3, kw: 3, strides: []int64{2, 2}, pads: []int64{1, 1, 1, 1}},
		{name: "dilated", c: 16, m: 8, h: 4, w: 4, kh: 3, kw: 3, strides: []int64{2, 2}, dilations: []int64{2, 2}, pads: []int64{2, 2, 2, 2}},
	} {
		m, diff := caseModel(sc.ruleCase(), onnxpb.TensorProto_FLOAT)
		res, err := Build(m, Options{Mode: VJP, WRT: diff, File: sc.name})
		if err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		if d2s, ct := phaseOps(res.Model); (d2s == 1 && ct == 0) != sc.phases {
			t.Errorf("%s: %d DepthToSpace and %d ConvTranspose nodes; want the phase form %v", sc.name, d2s, ct, sc.phases)
		}
	}
}
