package onnxgrad

// Resizing: Resize (opsets 10–19) and Upsample (opsets 7–9).
//
// With constant scales or sizes, resizing is linear in the data and
// separable: along each resized axis the output is an [out, in]
// interpolation matrix times the input. The matrices are computed here, in
// float32 arithmetic as onnxruntime's CPU kernel computes its coefficients
// (upsamplebase.h, upsample.cc; TestResizeMatchesOnnxruntime checks them
// against its output), and the gradient contracts gY with each matrix.
//
// What torch.onnx.export (torch 1.13) writes for F.interpolate and
// nn.Upsample, each covered by a finite-difference case:
//
//	call                                  opset  node       attributes
//	mode="nearest", scale_factor or size  9      Upsample   mode=nearest (scales input)
//	mode="nearest"                        10     Resize-10  mode=nearest (scales input)
//	mode="nearest"                        11–17  Resize     nearest, asymmetric, nearest_mode=floor
//	mode="bilinear", align_corners=False  9, 10  Upsample,  mode=linear
//	                                             Resize-10
//	mode="bilinear", align_corners=False  11–17  Resize     linear, half_pixel (other exporters
//	                                                        write pytorch_half_pixel, also covered)
//	mode="bilinear", align_corners=True   11–17  Resize     linear, align_corners
//	mode="bicubic", align_corners=False   11–17  Resize     cubic, half_pixel, cubic_coeff_a=-0.75
//
// scale_factor gives constant scales; size gives sizes built by
// Shape → Slice → Concat, constant once the input shape is known. At opsets
// 11 and 12 the unused roi and scales inputs are empty tensors, from 13 on
// empty names. Upsample and Resize-10 are rewritten into Resize-13 when a
// model is upgraded to opset 13 (upgradeResize).

import (
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// resizeSpec is a Resize or Upsample node resolved against its input shape.
type resizeSpec struct {
	mode    string // nearest, linear or cubic
	coord   string // coordinate_transformation_mode
	nearest string // nearest_mode; "" for opsets before 11 (see nearestIndex)
	cubicA  float32
	exclude bool // exclude_outside
	// Per axis: the input and output sizes, and the scale the coordinate
	// transformation divides by. Axes with scale 1 are copied unchanged and
	// may have symbolic sizes.
	in, out Shape
	scales  []float32
}

// readResize reads a Resize or Upsample node in any of its versions and
// resolves it against its input shape x: Upsample-7 (scales attribute),
// Upsample-9 and Resize-10 (scales input 1), Resize-11+ (roi, scales and
// sizes inputs 1–3; opset 18 adds axes and keep_aspect_ratio_policy).
func readResize(c *nodeCtx, x Shape) (*resizeSpec, error) {
	s := &resizeSpec{mode: c.attrString("mode", "nearest"), coord: "asymmetric", cubicA: -0.75}
	r := len(x)
	old := c.n.GetOpType() == "Upsample" || c.gr.opset < 11
	if !old {
		s.coord = c.attrString("coordinate_transformation_mode", "half_pixel")
		s.nearest = c.attrString("nearest_mode", "round_prefer_floor")
		s.cubicA = c.attrFloat("cubic_coeff_a", -0.75)
		s.exclude = c.attrInt("exclude_outside", 0) != 0
	}
	switch {
	case c.err != nil:
		return nil, c.err
	case !slices.Contains([]string{"nearest", "linear", "cubic"}, s.mode):
		return nil, c.errorf("mode %q is not supported (only nearest, linear and cubic)", s.mode)
	case c.attrInt("antialias", 0) != 0:
		return nil, c.errorf("antialias=1 is not supported; export the model without antialiasing")
	case s.coord == "tf_crop_and_resize":
		return nil, c.errorf("coordinate_transformation_mode \"tf_crop_and_resize\" is not supported")
	case !slices.Contains([]string{"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn"}, s.coord):
		return nil, c.errorf("unknown coordinate_transformation_mode %q", s.coord)
	case !old && !slices.Contains([]string{"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}, s.nearest):
		return nil, c.errorf("unknown nearest_mode %q", s.nearest)
	}
	axes := make([]int, r)
	for i := range axes {
		axes[i] = i
	}
	if a := c.attrInts("axes", nil); a != nil && c.gr.opset >= 18 {
		axes = axes[:0]
		for _, v := range a {
			ax, err := normAxis(v, r)
			if err != nil {
				return nil, c.errorf("axes: %v", err)
			}
			axes = append(axes, ax)
		}
	}
	scales, sizes, err := resizeTargets(c)
	if err != nil {
		return nil, err
	}
	s.in, s.out, s.scales = x, slices.Clone(x), make([]float32, r)
	for i := range s.scales {
		s.scales[i] = 1
	}
	switch {
	case len(scales) > 0:
		if len(scales) != len(axes) {
			return nil, c.errorf("%d scales for %d axes", len(scales), len(axes))
		}
		for j, a := range axes {
			s.scales[a] = scales[j]
			if scales[j] <= 0 {
				return nil, c.errorf("scale %g is not positive", scales[j])
			}
			if scales[j] == 1 {
				continue
			}
			if !x[a].Known() {
				return nil, c.errorf("resized axis %d has symbolic size %s; give the model input a static shape (--input-shape)", a, x[a])
			}
			// As onnxruntime: the float32 product, truncated.
			s.out[a] = known(int64(scales[j] * float32(x[a].Value)))
		}
	case len(sizes) > 0:
		if len(sizes) != len(axes) {
			return nil, c.errorf("%d sizes for %d axes", len(sizes), len(axes))
		}
		for j, a := range axes {
			s.out[a] = sizes[j]
			switch {
			case sameDim(sizes[j], x[a]):
			case !sizes[j].Known() || !x[a].Known():
				return nil, c.errorf("size %s of axis %d (input size %s) is not static; give the model input a static shape (--input-shape)", sizes[j], a, x[a])
			default:
				s.scales[a] = float32(sizes[j].Value) / float32(x[a].Value)
			}
		}
		if err := s.keepAspectRatio(c, axes); err != nil {
			return nil, err
		}
	default:
		return nil, c.errorf("neither scales nor sizes are given")
	}
	return s, nil
}

// resizeTargets returns the node's constant scales or sizes (one of them is
// empty): Upsample-7's scales attribute, or the scales input (1 before
// opset 11, else 2) and the sizes input 3. Empty tensors and empty names
// both mean absent.
func resizeTargets(c *nodeCtx) ([]float32, []Dim, error) {
	if c.n.GetOpType() == "Upsample" && c.input(1) == "" {
		a := c.attr("scales")
		if a == nil {
			return nil, nil, c.errorf("attribute \"scales\" is missing")
		}
		return a.GetFloats(), nil, nil
	}
	si := 2
	if c.n.GetOpType() == "Upsample" || c.gr.opset < 11 {
		si = 1
	}
	var scales []float32
	if name := c.input(si); name != "" {
		v, ok := c.gr.constFloats(name)
		if !ok {
			return nil, nil, c.errorf("the scales input %q is not a constant; onnxgrad differentiates Resize only with constant scales or sizes", name)
		}
		scales = v
	}
	var sizes []Dim
	if name := c.input(3); name != "" && si == 2 {
		t := c.in(3)
		if t == nil || t.value == nil {
			return nil, nil, c.errorf("the sizes input %q is not a constant; onnxgrad differentiates Resize only with constant scales or sizes", name)
		}
		sizes = t.value
	}
	if len(scales) > 0 && len(sizes) > 0 {
		return nil, nil, c.errorf("both scales and sizes are given")
	}
	return scales, sizes, nil
}

// keepAspectRatio applies opset 18's keep_aspect_ratio_policy to sizes: one
// scale for all axes, the smallest (not_larger) or largest (not_smaller) of
// their size ratios, and output sizes rounded from it.
func (s *resizeSpec) keepAspectRatio(c *nodeCtx, axes []int) error {
	policy := "stretch"
	if c.gr.opset >= 18 {
		policy = c.attrString("keep_aspect_ratio_policy", "stretch")
	}
	if c.err != nil {
		return c.err
	}
	var scale float32
	switch policy {
	case "stretch":
		return nil
	case "not_larger":
		scale = math.MaxFloat32
	case "not_smaller":
		scale = 0
	default:
		return c.errorf("unknown keep_aspect_ratio_policy %q", policy)
	}
	for _, a := range axes {
		if !s.in[a].Known() || !s.out[a].Known() {
			return c.errorf("keep_aspect_ratio_policy %q needs static sizes on axis %d", policy, a)
		}
		if policy == "not_larger" {
			scale = min(scale, s.scales[a])
		} else {
			scale = max(scale, s.scales[a])
		}
	}
	for _, a := range axes {
		s.scales[a] = scale
		s.out[a] = known(int64(math.Round(float64(scale * float32(s.in[a].Value)))))
	}
	return nil
}

// constFloats returns the values of a FLOAT tensor that a run cannot
// change: an initializer that is not a graph input, or a Constant node's.
func (gr *graph) constFloats(name string) ([]float32, bool) {
	if !gr.isConst(name) {
		return nil, false
	}
	for _, t := range gr.g.GetInitializer() {
		if t.GetName() == name {
			v, err := TensorFloat32(t)
			return v, err == nil
		}
	}
	for _, n := range gr.g.GetNode() {
		if n.GetOpType() != "Constant" || !slices.Contains(n.GetOutput(), name) {
			continue
		}
		if t, ok := constantValue(&nodeCtx{gr: gr, n: n}); ok && t != nil {
			v, err := TensorFloat32(t)
			return v, err == nil
		}
	}
	return nil, false
}

// identity reports whether the node copies its input: all output sizes
// equal the input sizes (onnxruntime then copies, whatever the scales).
func (s *resizeSpec) identity() bool {
	for i := range s.in {
		if !sameDim(s.in[i], s.out[i]) {
			return false
		}
	}
	return true
}

// matrix returns the [out, in] interpolation matrix of axis a (row-major),
// or nil when the axis is copied unchanged: its scale is 1 (onnxruntime
// then copies it in every mode) or no axis changes size.
func (s *resizeSpec) matrix(a int) []float64 {
	if s.scales[a] == 1 || s.identity() {
		return nil
	}
	in, out := s.in[a].Value, s.out[a].Value
	m := make([]float64, out*in)
	for o := range out {
		x := s.sourceCoordinate(a, float32(o))
		row := m[o*in : (o+1)*in]
		switch s.mode {
		case "nearest":
			row[min(max(s.nearestIndex(x, s.scales[a] < 1), 0), in-1)] = 1
		case "linear":
			x = max(0, min(x, float32(in-1)))
			i1 := min(int64(x), in-1)
			i2 := min(i1+1, in-1)
			d1, d2 := float32(math.Abs(float64(x-float32(i1)))), float32(math.Abs(float64(x-float32(i2))))
			if i1 == i2 {
				d1, d2 = 0.5, 0.5
			}
			row[i1] += float64(d2)
			row[i2] += float64(d1)
		case "cubic":
			base := int64(math.Floor(float64(x)))
			coeffs := cubicCoeffs(x-float32(base), s.cubicA)
			sum := float32(1)
			if s.exclude {
				sum = 0
				for j := range coeffs {
					if p := base - 1 + int64(j); p < 0 || p >= in {
						coeffs[j] = 0
					}
					sum += coeffs[j]
				}
			}
			for j, cf := range coeffs {
				row[min(max(base-1+int64(j), 0), in-1)] += float64(cf / sum)
			}
		}
	}
	return m
}

// sourceCoordinate maps output index x of axis a to a coordinate in the
// input, by coordinate_transformation_mode. The explicit float32
// conversions keep each operation rounded as in onnxruntime's float code.
func (s *resizeSpec) sourceCoordinate(a int, x float32) float32 {
	scale := s.scales[a]
	lenIn, lenOut := float32(s.in[a].Value), float32(s.out[a].Value)
	switch s.coord {
	case "asymmetric":
		return x / scale
	case "pytorch_half_pixel":
		if lenOut > 1 {
			return (x+0.5)/scale - 0.5
		}
		return 0
	case "tf_half_pixel_for_nn":
		return (x + 0.5) / scale
	case "align_corners":
		if lenOut == 1 {
			return 0
		}
		return float32(x*(lenIn-1)) / (lenOut - 1)
	case "half_pixel_symmetric":
		adjustment := lenOut / float32(scale*lenIn)
		offset := float32((lenIn / 2) * (1 - adjustment))
		return float32(float64(offset) + (float64(x)+0.5)/float64(scale) - 0.5)
	}
	return (x+0.5)/scale - 0.5 // half_pixel
}

// nearestIndex rounds a source coordinate by nearest_mode. Before opset 11
// onnxruntime truncates when enlarging and rounds up when shrinking. The
// round_prefer modes take coordinates within tieTolerance of a half as
// halves, as onnxruntime 1.30 does (measured: a coordinate 4 float32 ulps
// below 6.5, 9.5e-7, is a tie; 1.9e-6 below 24.5 is not), so that ties
// the float32 division misses, such as 7/2 computed as 3.4999998, round
// the way the exact value would.
func (s *resizeSpec) nearestIndex(x float32, shrinking bool) int64 {
	floor, ceil := int64(math.Floor(float64(x))), int64(math.Ceil(float64(x)))
	tie := math.Abs(float64(x-float32(floor)-0.5)) <= tieTolerance
	switch s.nearest {
	case "":
		if shrinking {
			return ceil
		}
		return int64(x)
	case "floor":
		return floor
	case "ceil":
		return ceil
	case "round_prefer_ceil":
		if tie {
			return floor + 1
		}
	case "round_prefer_floor":
		if tie {
			return floor
		}
	}
	return int64(math.Round(float64(x)))
}

// tieTolerance is how far from a half onnxruntime still rounds a nearest
// coordinate as a tie.
const tieTolerance = 1e-6

// cubicCoeffs are Keys' cubic convolution weights of the four neighbours
// floor(x)−1 … floor(x)+2 for fractional part t, with coefficient a:
// ((a·s − 5a)·s + 8a)·s − 4a at distances s in [1, 2] and
// ((a+2)·s − (a+3))·s·s + 1 at distances s in [0, 1], evaluated in
// onnxruntime's order with every operation rounded to float32.
func cubicCoeffs(t, a float32) [4]float32 {
	at := float32(math.Abs(float64(t)))
	a4, a5, a8 := float32(4*a), float32(5*a), float32(8*a)
	outer := func(s float32) float32 {
		v := float32(a*s) - a5
		v = float32(v*s) + a8
		return float32(v*s) - a4
	}
	inner := func(s float32) float32 {
		v := float32((a+2)*s) - (a + 3)
		v = float32(v * s)
		return float32(v*s) + 1
	}
	return [4]float32{outer(at + 1), inner(at), inner(1 - at), outer(2 - at)}
}

// https://onnx.ai/onnx/operators/onnx__Resize.html and
// https://onnx.ai/onnx/operators/onnx__Upsample.html
func inferResize(c *nodeCtx) error {
	x := c.in(0)
	if x == nil || !x.hasShape {
		c.setOut(0, &tensorInfo{elem: c.elem()})
		return nil
	}
	s, err := readResize(c, x.shape)
	if err != nil {
		return err
	}
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: s.out, hasShape: true})
	return nil
}

// gradResize contracts gY with the interpolation matrix of every resized
// axis. Only the data input is differentiated: roi, scales and sizes are
// constants (Build refuses a request for their gradient).
func gradResize(c *gradCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	s, err := readResize(&c.nodeCtx, x)
	if err != nil {
		return err
	}
	g := c.gy[0]
	for a := range x {
		in, out := s.in[a].Value, s.out[a].Value
		if s.scales[a] != 1 && tooLarge(out, in) {
			return c.errorf("the interpolation matrix of axis %d (%d×%d) is too large", a, out, in)
		}
		if m := s.matrix(a); m != nil {
			g = c.contractAxis(g, a+c.off(), len(x)+c.off(), m, out, in)
		}
	}
	c.setGrad(0, g)
	return nil
}

// upgradeResize rewrites Upsample (opsets 7–9) and Resize-10 as Resize-13:
// the scales move to input 2 (an initializer for Upsample-7's attribute),
// and the attributes spell out what these versions did implicitly,
// asymmetric coordinates and, in nearest mode, the source coordinate
// truncated when enlarging and rounded up when shrinking (onnxruntime's
// rule), which is nearest_mode floor or ceil when all resized axes agree.
func (c *nodeCtx) upgradeResize() ([]*onnxpb.NodeProto, error) {
	n := c.n
	scales, _, err := resizeTargets(c)
	if err != nil {
		return nil, err
	}
	mode := c.attrString("mode", "nearest")
	attrs := []*onnxpb.AttributeProto{attrString("mode", mode), attrString("coordinate_transformation_mode", "asymmetric")}
	if mode == "nearest" {
		up, down := false, false
		for _, s := range scales {
			up, down = up || s > 1, down || s < 1
		}
		if up && down {
			return nil, c.errorf("nearest %s enlarging some axes and shrinking others cannot be upgraded to opset 13; re-export the model with opset 11 or newer", n.GetOpType())
		}
		nearest := "floor"
		if down {
			nearest = "ceil"
		}
		attrs = append(attrs, attrString("nearest_mode", nearest))
	}
	name := c.input(1)
	if name == "" {
		name = c.gr.addInitializer(fmt.Sprintf("%s_scales", n.GetName()), NewTensorFloat32("", []int64{int64(len(scales))}, scales))
	}
	n.OpType = proto.String("Resize")
	n.Input = []string{c.input(0), "", name}
	n.Attribute = attrs
	return []*onnxpb.NodeProto{n}, c.err
}
