package onnxgrad

// Layout operators: Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Concat,
// Slice, Pad, Gather, Expand, Split, Tile, DepthToSpace, SpaceToDepth, and
// the shape arithmetic PyTorch emits around them (Shape, Size, Constant,
// ConstantOfShape, Range), whose integer values are tracked so that Reshape
// and Expand targets built from Shape sub-graphs are known.

import (
	"math"
	"slices"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// gradReshapeBack serves every operator that only rearranges elements
// without reordering them (Flatten, Reshape, Squeeze, Unsqueeze): the
// gradient is gY reshaped to the input's layout.
func gradReshapeBack(c *gradCtx) error {
	c.setGrad(0, c.reshapeLike(c.gy[0], c.input(0)))
	return nil
}

// product multiplies dims: a known value, the dim itself when there is only
// one, or an unknown dim.
func product(ds []Dim) Dim {
	if len(ds) == 1 {
		return ds[0]
	}
	p, syms := productDims(ds)
	if len(syms) == 0 {
		return known(p)
	}
	return unknownDim
}

// https://onnx.ai/onnx/operators/onnx__Flatten.html
func inferFlatten(c *nodeCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		c.err = nil
		c.setOut(0, &tensorInfo{elem: c.elem(), shape: Shape{unknownDim, unknownDim}, hasShape: true})
		return nil
	}
	a := c.attrInt("axis", 1)
	if a < 0 {
		a += int64(len(x))
	}
	if a < 0 || a > int64(len(x)) {
		return c.errorf("axis %d out of range for rank %d", c.attrInt("axis", 1), len(x))
	}
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: Shape{product(x[:a]), product(x[a:])}, hasShape: true})
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Reshape.html
func inferReshape(c *nodeCtx) error {
	t := c.in(1)
	if t == nil || !t.hasShape || len(t.shape) != 1 || !t.shape[0].Known() {
		c.setOut(0, &tensorInfo{elem: c.elem()})
		return nil
	}
	r := int(t.shape[0].Value)
	out := make(Shape, r)
	for i := range out {
		out[i] = unknownDim
	}
	x := c.in(0)
	if t.value != nil && x != nil && x.hasShape {
		infer := -1
		for i, d := range t.value {
			switch {
			case d.Known() && d.Value == 0 && c.attrInt("allowzero", 0) == 0:
				if i < len(x.shape) {
					out[i] = x.shape[i]
				}
			case d.Known() && d.Value == -1:
				infer = i
			default:
				out[i] = d
			}
		}
		if infer >= 0 {
			others := slices.Delete(slices.Clone(out), infer, infer+1)
			out[infer] = divideDims(x.shape, others)
		}
	}
	info := &tensorInfo{elem: c.elem(), shape: out, hasShape: true}
	if x != nil && x.value != nil {
		info.value = x.value
	}
	c.setOut(0, info)
	return nil
}

// axesOf returns the axes of a Squeeze/Unsqueeze/Reduce node: from the
// "axes" attribute before opset fromOpset, from input 1 after.
func axesOf(c *nodeCtx, fromOpset int64) ([]int64, bool) {
	if c.gr.opset < fromOpset {
		a := c.attrInts("axes", nil)
		return a, a != nil
	}
	if c.input(1) == "" {
		return nil, false
	}
	return c.intsIn(1), true
}

// https://onnx.ai/onnx/operators/onnx__Squeeze.html
func inferSqueeze(c *nodeCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		c.err = nil
		return nil
	}
	axes, given := axesOf(c, 13)
	drop := map[int]bool{}
	for _, a := range axes {
		i, err := normAxis(a, len(x))
		if err != nil {
			return c.errorf("%v", err)
		}
		drop[i] = true
	}
	var out Shape
	for i, d := range x {
		if drop[i] || (!given && d.Known() && d.Value == 1) {
			continue
		}
		out = append(out, d)
	}
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: out, hasShape: true, value: c.in(0).value})
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Unsqueeze.html
func inferUnsqueeze(c *nodeCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		c.err = nil
		return nil
	}
	axes, _ := axesOf(c, 13)
	r := len(x) + len(axes)
	ins := map[int]bool{}
	for _, a := range axes {
		i, err := normAxis(a, r)
		if err != nil {
			return c.errorf("%v", err)
		}
		ins[i] = true
	}
	out := make(Shape, 0, r)
	j := 0
	for i := range r {
		if ins[i] {
			out = append(out, known(1))
		} else if j < len(x) {
			out = append(out, x[j])
			j++
		}
	}
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: out, hasShape: true, value: c.in(0).value})
	return nil
}

// transposePerm returns the node's permutation (reversed axes by default).
func transposePerm(c *nodeCtx, r int) []int64 {
	perm := c.attrInts("perm", nil)
	if perm == nil {
		for i := r - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	return perm
}

// https://onnx.ai/onnx/operators/onnx__Transpose.html
func inferTranspose(c *nodeCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		c.err = nil
		return nil
	}
	perm := transposePerm(c, len(x))
	if len(perm) != len(x) {
		return c.errorf("perm %v does not match rank %d", perm, len(x))
	}
	out := make(Shape, len(x))
	for i, p := range perm {
		if p < 0 || int(p) >= len(x) {
			return c.errorf("perm %v out of range", perm)
		}
		out[i] = x[p]
	}
	info := &tensorInfo{elem: c.elem(), shape: out, hasShape: true}
	if v := c.in(0).value; v != nil {
		inDims, ok1 := x.Static()
		outDims, ok2 := out.Static()
		if ok1 && ok2 {
			info.value = mapValues(v, inDims, outDims, func(j, i []int64) {
				for a, p := range perm {
					i[p] = j[a]
				}
			})
		}
	}
	c.setOut(0, info)
	return nil
}

// gradTranspose applies the inverse permutation.
func gradTranspose(c *gradCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	perm := transposePerm(&c.nodeCtx, len(x))
	inv := make([]int64, len(perm)+c.off())
	for i, p := range perm {
		inv[int(p)+c.off()] = int64(i + c.off())
	}
	c.setGrad(0, c.op("Transpose", []string{c.gy[0]}, attrInts("perm", inv)))
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Concat.html
func inferConcat(c *nodeCtx) error {
	var out Shape
	var vals []Dim
	tracked := true
	for i := range c.n.GetInput() {
		t := c.in(i)
		if t == nil || !t.hasShape {
			c.setOut(0, &tensorInfo{elem: c.elem()})
			return nil
		}
		if t.value == nil {
			tracked = false
		}
		vals = append(vals, t.value...)
		if out == nil {
			out = slices.Clone(t.shape)
			continue
		}
		a, err := normAxis(c.attrInt("axis", 0), len(out))
		if err != nil || len(t.shape) != len(out) {
			return c.errorf("inputs of ranks %d and %d cannot be concatenated on axis %d", len(out), len(t.shape), c.attrInt("axis", 0))
		}
		if out[a].Known() && t.shape[a].Known() {
			out[a] = known(out[a].Value + t.shape[a].Value)
		} else {
			out[a] = unknownDim
		}
	}
	info := &tensorInfo{elem: c.elem(), shape: out, hasShape: true}
	if a, err := normAxis(c.attrInt("axis", 0), len(out)); tracked && err == nil && a == 0 {
		info.value = vals // C order: concatenating on axis 0 appends
	}
	c.setOut(0, info)
	return nil
}

// gradConcat splits gY back into the inputs' extents along the axis, read
// at run time so that symbolic sizes work.
func gradConcat(c *gradCtx) error {
	y := c.shapeOut(0)
	if c.err != nil {
		return c.err
	}
	a, err := normAxis(c.attrInt("axis", 0), len(y))
	if err != nil {
		return c.errorf("%v", err)
	}
	var sizes []string
	for _, in := range c.n.GetInput() {
		sizes = append(sizes, c.op("Slice", []string{c.op("Shape", []string{in}), c.gr.ints(int64(a)), c.gr.ints(int64(a + 1))}))
	}
	split := c.op("Concat", sizes, attrInt("axis", 0))
	parts := c.gr.opN("Split", len(sizes), []string{c.gy[0], split}, attrInt("axis", int64(a+c.off())))
	for i, p := range parts {
		c.setGrad(i, p)
	}
	return nil
}

// sliceSpec is a Slice node's starts/ends/axes/steps resolved against the
// input shape, per input axis: the first index taken, the step, and the
// number of elements taken (-1 for a whole axis of symbolic size).
type sliceSpec struct {
	start, step, count []int64
}

// readSlice resolves a Slice node (opset ≥ 10: inputs starts, ends, axes,
// steps) against x, following the clamping rules of the specification.
// Symbolic dims are allowed on axes taken whole.
func readSlice(c *nodeCtx, x Shape) (*sliceSpec, error) {
	starts, ends := c.intsIn(1), c.intsIn(2)
	var axes, steps []int64
	if c.input(3) != "" {
		axes = c.intsIn(3)
	}
	if c.input(4) != "" {
		steps = c.intsIn(4)
	}
	if c.err != nil {
		return nil, c.err
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	if steps == nil {
		steps = make([]int64, len(starts))
		for i := range steps {
			steps[i] = 1
		}
	}
	if len(starts) != len(ends) || len(axes) != len(starts) || len(steps) != len(starts) {
		return nil, c.errorf("starts, ends, axes and steps differ in length")
	}
	sp := &sliceSpec{start: make([]int64, len(x)), step: make([]int64, len(x)), count: make([]int64, len(x))}
	for i, d := range x {
		sp.step[i], sp.count[i] = 1, d.Value
		if !d.Known() {
			sp.count[i] = -1
		}
	}
	for i, a64 := range axes {
		a, err := normAxis(a64, len(x))
		if err != nil {
			return nil, c.errorf("%v", err)
		}
		st := steps[i]
		if st == 0 {
			return nil, c.errorf("Slice step 0")
		}
		if !x[a].Known() {
			if st == 1 && starts[i] == 0 && ends[i] >= math.MaxInt32 {
				continue
			}
			return nil, c.errorf("Slice of axis %d of symbolic size %s", a, x[a])
		}
		dim := x[a].Value
		s, e := starts[i], ends[i]
		if s < 0 {
			s += dim
		}
		if e < 0 {
			e += dim
		}
		var n int64
		if st > 0 {
			s, e = min(max(s, 0), dim), min(max(e, 0), dim)
			n = (e - s + st - 1) / st
		} else {
			s, e = min(max(s, 0), dim-1), min(max(e, -1), dim-1)
			n = (s - e - st - 1) / -st
		}
		sp.start[a], sp.step[a], sp.count[a] = s, st, max(n, 0)
	}
	return sp, nil
}

// https://onnx.ai/onnx/operators/onnx__Slice.html
func inferSlice(c *nodeCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		c.err = nil
		return nil
	}
	if c.gr.opset < 10 {
		return c.errorf("Slice before opset 10 is not supported")
	}
	sp, err := readSlice(c, x)
	if err != nil {
		// unknown or unsupported slicing: the rank is still known
		c.err = nil
		out := make(Shape, len(x))
		for i := range out {
			out[i] = unknownDim
		}
		c.setOut(0, &tensorInfo{elem: c.elem(), shape: out, hasShape: true})
		return nil
	}
	out := make(Shape, len(x))
	for i, d := range x {
		if sp.count[i] < 0 {
			out[i] = d
		} else {
			out[i] = known(sp.count[i])
		}
	}
	info := &tensorInfo{elem: c.elem(), shape: out, hasShape: true}
	if v := c.in(0).value; v != nil {
		if dims, ok := x.Static(); ok {
			info.value = mapValues(v, dims, sp.count, func(j, i []int64) {
				for a := range j {
					i[a] = sp.start[a] + j[a]*sp.step[a]
				}
			})
		}
	}
	c.setOut(0, info)
	return nil
}

// gradSlice puts gY back into zeros of the input's extent. An axis taken
// with a step other than 1 is first brought to unit stride: a negative step
// (torch.flip exports step −1) by reversing gY along the axis, a stride
// s > 1 by interleaving s − 1 zeros after each element (dilate). One Pad
// then places the block at its offset on every axis; unit steps need only
// that Pad.
func gradSlice(c *gradCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	sp, err := readSlice(&c.nodeCtx, x)
	if err != nil {
		return err
	}
	off := c.off()
	g := c.gy[0]
	// extent and first index of the block g covers, per input axis
	extent, first := slices.Clone(sp.count), slices.Clone(sp.start)
	for a := range x {
		st, n := sp.step[a], sp.count[a]
		if st == 1 || n <= 0 {
			continue
		}
		if st < 0 {
			ax := int64(a + off)
			g = c.op("Slice", []string{g, c.gr.ints(-1), c.gr.ints(math.MinInt64), c.gr.ints(ax), c.gr.ints(-1)})
			st = -st
			first[a] = sp.start[a] - (n-1)*st
		}
		if st > 1 && n > 1 {
			if g, err = c.dilate(g, a, st, extent, x[a].Value-first[a]); err != nil {
				return err
			}
		}
	}
	r := len(x) + off
	pads := make([]int64, 2*r)
	for i := range x {
		if extent[i] < 0 {
			continue
		}
		pads[off+i] = first[i]
		pads[r+off+i] = x[i].Value - first[i] - extent[i]
	}
	c.setGrad(0, c.op("Pad", []string{g, c.gr.ints(pads...)}))
	return nil
}

// dilate spreads the extent[a] elements of g along input axis a to stride
// s: Unsqueeze a new axis after a, Pad it with s − 1 zeros and merge the
// two, cropped to at most room elements. It updates extent[a]. The merging
// Reshape copies the leading dims and needs the trailing extents (one may
// be symbolic).
func (c *gradCtx) dilate(g string, a int, s int64, extent []int64, room int64) (string, error) {
	off := c.off()
	n := extent[a]
	g = c.op("Unsqueeze", []string{g, c.gr.ints(int64(a + off + 1))})
	r := len(extent) + off + 1
	pads := make([]int64, 2*r)
	pads[r+a+off+1] = s - 1
	g = c.op("Pad", []string{g, c.gr.ints(pads...)})
	target := make([]int64, a+off, r-1)
	target = append(target, n*s)
	for _, e := range extent[a+1:] {
		if e < 0 && slices.Contains(target, -1) {
			return "", c.errorf("the gradient of a Slice with step %d needs static sizes on all but one of the axes after axis %d", s, a)
		}
		target = append(target, e)
	}
	g = c.op("Reshape", []string{g, c.gr.ints(target...)})
	extent[a] = n * s
	if extent[a] > room {
		extent[a] = (n-1)*s + 1
		g = c.op("Slice", []string{g, c.gr.ints(0), c.gr.ints(extent[a]), c.gr.ints(int64(a + off))})
	}
	return g, nil
}

// mapValues builds the tracked values of a tensor of shape outDims from an
// input of shape inDims: src fills in the input index i of output index j.
// It serves Slice and Transpose on constant shape tensors.
func mapValues(vals []Dim, inDims, outDims []int64, src func(j, i []int64)) []Dim {
	n, err := numElements(outDims)
	if err != nil || n > maxTrackedValues || int64(len(vals)) != mustElements(inDims) {
		return nil
	}
	out := make([]Dim, 0, n)
	j := make([]int64, len(outDims))
	i := make([]int64, len(inDims))
	for range n {
		src(j, i)
		flat := int64(0)
		for a := range i {
			flat = flat*inDims[a] + i[a]
		}
		out = append(out, vals[flat])
		for a := len(j) - 1; a >= 0; a-- {
			j[a]++
			if j[a] < outDims[a] {
				break
			}
			j[a] = 0
		}
	}
	return out
}

func mustElements(dims []int64) int64 {
	n, err := numElements(dims)
	if err != nil {
		return -1
	}
	return n
}

// readPads returns a constant-mode Pad node's pads (opset ≥ 11: input 1;
// opset 18 adds an optional axes input).
func readPads(c *nodeCtx, r int) []int64 {
	if c.gr.opset < 11 {
		c.fail("Pad before opset 11 is not supported")
		return nil
	}
	if mode := c.attrString("mode", "constant"); mode != "constant" {
		c.fail("Pad mode %q is not supported (only constant)", mode)
		return nil
	}
	pads := c.intsIn(1)
	if c.err != nil {
		return nil
	}
	if c.input(3) != "" {
		axes := c.intsIn(3)
		full := make([]int64, 2*r)
		for i, a := range axes {
			ax, err := normAxis(a, r)
			if err != nil {
				c.fail("%v", err)
				return nil
			}
			full[ax], full[r+ax] = pads[i], pads[len(axes)+i]
		}
		pads = full
	}
	if len(pads) != 2*r {
		c.fail("pads %v do not match rank %d", pads, r)
		return nil
	}
	return pads
}

// https://onnx.ai/onnx/operators/onnx__Pad.html
func inferPad(c *nodeCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		c.err = nil
		return nil
	}
	pads := readPads(c, len(x))
	if c.err != nil {
		c.err = nil
		c.setOut(0, &tensorInfo{elem: c.elem()})
		return nil
	}
	out := make(Shape, len(x))
	for i, d := range x {
		out[i] = d
		if d.Known() {
			out[i] = known(d.Value + pads[i] + pads[len(x)+i])
		} else if pads[i]+pads[len(x)+i] != 0 {
			out[i] = unknownDim
		}
	}
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: out, hasShape: true})
	return nil
}

// gradPad slices gY back to the unpadded region: [pad_begin, pad_begin +
// dim) on every axis, the dims read at run time.
func gradPad(c *gradCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	pads := readPads(&c.nodeCtx, len(x))
	if c.err != nil {
		return c.err
	}
	r := len(x)
	begin := pads[:r]
	axes := make([]int64, r)
	for i := range axes {
		axes[i] = int64(i + c.off())
		if pads[i] < 0 || pads[r+i] < 0 {
			return c.errorf("negative pads (cropping) are not supported")
		}
	}
	starts := c.gr.ints(begin...)
	ends := c.op("Add", []string{starts, c.op("Shape", []string{c.input(0)})})
	c.setGrad(0, c.op("Slice", []string{c.gy[0], starts, ends, c.gr.ints(axes...)}))
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Gather.html
func inferGather(c *nodeCtx) error {
	x, idx := c.in(0), c.in(1)
	if x == nil || idx == nil || !x.hasShape || !idx.hasShape {
		c.setOut(0, &tensorInfo{elem: c.elem()})
		return nil
	}
	a, err := normAxis(c.attrInt("axis", 0), len(x.shape))
	if err != nil {
		return c.errorf("%v", err)
	}
	out := slices.Concat(x.shape[:a], idx.shape, x.shape[a+1:])
	info := &tensorInfo{elem: c.elem(), shape: out, hasShape: true}
	if x.value != nil && idx.value != nil && len(x.shape) == 1 {
		for _, i := range idx.value {
			if !i.Known() || i.Value < -int64(len(x.value)) || i.Value >= int64(len(x.value)) {
				info.value = nil
				break
			}
			j := i.Value
			if j < 0 {
				j += int64(len(x.value))
			}
			info.value = append(info.value, x.value[j])
		}
	}
	c.setOut(0, info)
	return nil
}

// gradGather, for constant indices: gX is gY contracted with the one-hot
// matrix S[j, indices[j]] = 1 along the gathered axis (repeated indices
// accumulate).
func gradGather(c *gradCtx) error {
	x := c.shapeIn(0)
	idx := c.intsIn(1)
	idxShape := c.shapeIn(1)
	if c.err != nil {
		return c.err
	}
	a, err := normAxis(c.attrInt("axis", 0), len(x))
	if err != nil || !x[a].Known() {
		return c.errorf("Gather needs a static size on the gathered axis")
	}
	dim := x[a].Value
	// Collapse the index axes of gY into one axis of len(idx) at position a.
	g := c.gy[0]
	yShape := c.shapeOut(0)
	target := []int64{}
	if c.lead {
		target = append(target, 0)
	}
	for range x[:a] {
		target = append(target, 0)
	}
	target = append(target, int64(len(idx)))
	for _, d := range yShape[a+len(idxShape):] {
		if !d.Known() {
			return c.errorf("Gather needs static trailing dims")
		}
		target = append(target, d.Value)
	}
	g = c.op("Reshape", []string{g, c.gr.ints(target...)})
	if tooLarge(int64(len(idx)), dim) {
		return c.errorf("gathered axis too large")
	}
	onehot := make([]float64, int64(len(idx))*dim)
	for j, i := range idx {
		if i < 0 {
			i += dim
		}
		if i < 0 || i >= dim {
			return c.errorf("index %d out of range for axis of size %d", idx[j], dim)
		}
		onehot[int64(j)*dim+i] = 1
	}
	c.setGrad(0, c.contractAxis(g, a+c.off(), len(x)+c.off(), onehot, int64(len(idx)), dim))
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Expand.html
func inferExpand(c *nodeCtx) error {
	x, t := c.in(0), c.in(1)
	if x == nil || !x.hasShape || t == nil || t.value == nil {
		c.setOut(0, &tensorInfo{elem: c.elem()})
		return nil
	}
	s, err := broadcastShapes(x.shape, Shape(t.value))
	if err != nil {
		return c.errorf("%v", err)
	}
	info := &tensorInfo{elem: c.elem(), shape: s, hasShape: true}
	inDims, ok1 := x.shape.Static()
	outDims, ok2 := s.Static()
	if x.value != nil && ok1 && ok2 {
		lead := len(outDims) - len(inDims)
		info.value = mapValues(x.value, inDims, outDims, func(j, i []int64) {
			for a := range i {
				i[a] = min(j[a+lead], inDims[a]-1) // 0 on broadcast axes
			}
		})
	}
	c.setOut(0, info)
	return nil
}

// gradExpand sums gY back over the broadcast axes.
func gradExpand(c *gradCtx) error {
	c.setGrad(0, c.unbroadcast(c.gy[0], c.shapeOut(0), 0))
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Shape.html (start/end from opset 15)
func inferShape(c *nodeCtx) error {
	x := c.in(0)
	info := &tensorInfo{elem: onnxpb.TensorProto_INT64, hasShape: true, shape: Shape{unknownDim}}
	if x != nil && x.hasShape {
		r := int64(len(x.shape))
		clamp := func(v int64) int64 {
			if v < 0 {
				v += r
			}
			return min(max(v, 0), r)
		}
		start, end := clamp(c.attrInt("start", 0)), clamp(c.attrInt("end", r))
		end = max(end, start)
		info.value = slices.Clone(x.shape[start:end])
		info.shape = Shape{known(end - start)}
	}
	c.setOut(0, info)
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Size.html
func inferSize(c *nodeCtx) error {
	info := &tensorInfo{elem: onnxpb.TensorProto_INT64, hasShape: true, shape: Shape{}}
	if x := c.in(0); x != nil && x.hasShape {
		info.value = []Dim{product(x.shape)}
	}
	c.setOut(0, info)
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Constant.html
func inferConstant(c *nodeCtx) error {
	t, ok := constantValue(c)
	if !ok {
		return nil // sparse or string constants: left unknown
	}
	if t == nil {
		return c.errorf("attribute \"value\" holds no tensor")
	}
	if err := checkTensorData(t); err != nil {
		return c.errorf("value: %v", err)
	}
	c.setOut(0, infoFromTensor(t))
	return nil
}

// constantValue returns the value of Constant node c as a tensor, from
// whichever value attribute it has (nil when "value" holds none); ok is
// false for sparse and string values, which are not read.
func constantValue(c *nodeCtx) (t *onnxpb.TensorProto, ok bool) {
	switch {
	case c.has("value"):
		return c.attr("value").GetT(), true
	case c.has("value_int"):
		return newTensorInt64("", nil, []int64{c.attrInt("value_int", 0)}), true
	case c.has("value_ints"):
		v := c.attrInts("value_ints", nil)
		return newTensorInt64("", []int64{int64(len(v))}, v), true
	case c.has("value_float"):
		return newTensorFloat("", onnxpb.TensorProto_FLOAT, nil, []float64{float64(c.attrFloat("value_float", 0))}), true
	case c.has("value_floats"):
		a := c.attr("value_floats").GetFloats()
		v := make([]float64, len(a))
		for i, f := range a {
			v[i] = float64(f)
		}
		return newTensorFloat("", onnxpb.TensorProto_FLOAT, []int64{int64(len(v))}, v), true
	}
	return nil, false
}

// https://onnx.ai/onnx/operators/onnx__ConstantOfShape.html
func inferConstantOfShape(c *nodeCtx) error {
	t := c.in(0)
	elem := onnxpb.TensorProto_FLOAT
	if v := c.attr("value"); v != nil && v.GetT() != nil {
		elem = onnxpb.TensorProto_DataType(v.GetT().GetDataType())
	}
	info := &tensorInfo{elem: elem}
	if t != nil && t.value != nil {
		info.shape, info.hasShape = Shape(slices.Clone(t.value)), true
		fill := []Dim{known(0)}
		if v := c.attr("value"); v != nil && v.GetT() != nil {
			fill = infoFromTensor(v.GetT()).value
		}
		if dims, ok := info.shape.Static(); ok && len(fill) == 1 && !isFloatType(int32(elem)) {
			if n, err := numElements(dims); err == nil && n <= maxTrackedValues {
				info.value = slices.Repeat(fill, int(n))
			}
		}
	}
	c.setOut(0, info)
	return nil
}

// splitSizes returns the axis and the output sizes of a Split node over x:
// from the split input (opset 13; an attribute before), from num_outputs
// (opset 18: chunks of ⌈d/n⌉, the last one smaller), or equal parts, one
// per output. Sizes are unknown where they depend on a symbolic dim.
func splitSizes(c *nodeCtx, x Shape) (int, []Dim, error) {
	a, err := normAxis(c.attrInt("axis", 0), len(x))
	if err != nil {
		return 0, nil, c.errorf("%v", err)
	}
	d := x[a]
	n := len(c.n.GetOutput())
	var split []int64
	switch {
	case c.gr.opset < 13 && c.has("split"):
		split = c.attrInts("split", nil)
	case c.gr.opset >= 13 && c.input(1) != "":
		split = c.intsIn(1)
	case c.has("num_outputs"):
		if k := c.attrInt("num_outputs", 0); k != int64(n) {
			return 0, nil, c.errorf("num_outputs %d but %d outputs", k, n)
		}
		if d.Known() {
			chunk := (d.Value + int64(n) - 1) / int64(n)
			for i := range n {
				split = append(split, max(min(chunk, d.Value-int64(i)*chunk), 0))
			}
		}
	case d.Known():
		if d.Value%int64(n) != 0 {
			return 0, nil, c.errorf("axis %d of size %d cannot be split into %d equal parts", a, d.Value, n)
		}
		for range n {
			split = append(split, d.Value/int64(n))
		}
	}
	if c.err != nil {
		return 0, nil, c.err
	}
	sizes := make([]Dim, n)
	for i := range sizes {
		sizes[i] = unknownDim
	}
	if split != nil {
		if len(split) != n {
			return 0, nil, c.errorf("%d split sizes for %d outputs", len(split), n)
		}
		for i, s := range split {
			sizes[i] = known(s)
		}
	}
	return a, sizes, nil
}

// https://onnx.ai/onnx/operators/onnx__Split.html
func inferSplit(c *nodeCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		c.err = nil
		return nil
	}
	a, sizes, err := splitSizes(c, x)
	if err != nil {
		return err
	}
	for i, s := range sizes {
		out := slices.Clone(x)
		out[a] = s
		c.setOut(i, &tensorInfo{elem: c.elem(), shape: out, hasShape: true})
	}
	return nil
}

// gradSplit concatenates the outputs' gradients along the axis, with
// zeros for outputs that have none.
func gradSplit(c *gradCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	a, _, err := splitSizes(&c.nodeCtx, x)
	if err != nil {
		return err
	}
	ref := c.gy[slices.IndexFunc(c.gy, func(g string) bool { return g != "" })]
	parts := make([]string, len(c.gy))
	for i, g := range c.gy {
		if parts[i] = g; g == "" {
			parts[i] = c.zerosGrad(c.output(i), ref)
		}
	}
	c.setGrad(0, c.op("Concat", parts, attrInt("axis", int64(a+c.off()))))
	return nil
}

// zerosGrad returns a zero gradient for forward tensor x; in Jacobian mode
// its class axis is read from the gradient ref.
func (c *gradCtx) zerosGrad(x, ref string) string {
	s := c.op("Shape", []string{x})
	if c.lead {
		l := c.op("Slice", []string{c.op("Shape", []string{ref}), c.gr.ints(0), c.gr.ints(1)})
		s = c.op("Concat", []string{l, s}, attrInt("axis", 0))
	}
	zero := newTensorFloat("", c.gradElem(), []int64{1}, []float64{0})
	return c.op("ConstantOfShape", []string{s}, attrTensor("value", zero))
}

// spaceDepth describes DepthToSpace and SpaceToDepth over x = [N, C, H, W]
// as their specifications do: Reshape to six dims, Transpose by perm,
// Reshape to the output. It returns the six dims and perm.
func spaceDepth(c *nodeCtx, x Shape) (Shape, []int64, error) {
	if len(x) != 4 {
		return nil, nil, c.errorf("input of rank %d, want 4 (N, C, H, W)", len(x))
	}
	b := c.attrInt("blocksize", 0)
	if b <= 0 {
		return nil, nil, c.errorf("blocksize %d, want a positive value", b)
	}
	n, ch, h, w := x[0], x[1], x[2], x[3]
	if c.n.GetOpType() == "SpaceToDepth" {
		return Shape{n, ch, divDim(h, b), known(b), divDim(w, b), known(b)}, []int64{0, 3, 5, 1, 2, 4}, nil
	}
	cb := divDim(ch, b*b)
	switch mode := c.attrString("mode", "DCR"); mode {
	case "DCR":
		return Shape{n, known(b), known(b), cb, h, w}, []int64{0, 3, 4, 1, 5, 2}, nil
	case "CRD":
		return Shape{n, cb, known(b), known(b), h, w}, []int64{0, 1, 4, 2, 5, 3}, nil
	default:
		return nil, nil, c.errorf("mode %q, want DCR or CRD", mode)
	}
}

// divDim and mulDim scale a dim by a constant; a symbol gives an unknown.
func divDim(d Dim, k int64) Dim {
	if d.Known() && d.Value%k == 0 {
		return known(d.Value / k)
	}
	return unknownDim
}

func mulDim(d Dim, k int64) Dim {
	switch {
	case k == 1:
		return d
	case d.Known():
		return known(d.Value * k)
	}
	return unknownDim
}

// https://onnx.ai/onnx/operators/onnx__DepthToSpace.html and
// https://onnx.ai/onnx/operators/onnx__SpaceToDepth.html
func inferSpaceDepth(c *nodeCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		c.err = nil
		return nil
	}
	six, perm, err := spaceDepth(c, x)
	if err != nil {
		return err
	}
	t := make(Shape, 6)
	for i, p := range perm {
		t[i] = six[p]
	}
	out := Shape{t[0], product(t[1:4]), t[4], t[5]}
	if c.n.GetOpType() == "DepthToSpace" {
		out = Shape{t[0], t[1], product(t[2:4]), product(t[4:6])}
	}
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: out, hasShape: true})
	return nil
}

// gradSpaceDepth runs the forward chain backwards: gY reshaped to the
// transposed six dims (the leading batch and class axes copied), the
// inverse Transpose, and a Reshape to x's layout.
func gradSpaceDepth(c *gradCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	six, perm, err := spaceDepth(&c.nodeCtx, x)
	if err != nil {
		return err
	}
	off := c.off()
	target := make([]int64, off+1, off+6)
	inv := make([]int64, off+6)
	for i := range off {
		inv[i] = int64(i)
	}
	for i, p := range perm {
		if i > 0 {
			if !six[p].Known() {
				return c.errorf("needs static C, H and W, got input shape %v; set the input shape explicitly", x)
			}
			target = append(target, six[p].Value)
		}
		inv[int(p)+off] = int64(i + off)
	}
	g := c.op("Reshape", []string{c.gy[0], c.gr.ints(target...)})
	g = c.op("Transpose", []string{g}, attrInts("perm", inv))
	c.setGrad(0, c.reshapeLike(g, c.input(0)))
	return nil
}

// tileRepeats returns a Tile node's repeats, one per axis of x.
func tileRepeats(c *nodeCtx, x Shape) ([]int64, error) {
	reps := c.intsIn(1)
	if c.err != nil {
		return nil, c.err
	}
	if len(reps) != len(x) {
		return nil, c.errorf("%d repeats for rank %d", len(reps), len(x))
	}
	for _, r := range reps {
		if r < 0 {
			return nil, c.errorf("negative repeats %v", reps)
		}
	}
	return reps, nil
}

// https://onnx.ai/onnx/operators/onnx__Tile.html; tracked values are tiled
// too.
func inferTile(c *nodeCtx) error {
	x := c.shapeIn(0)
	if c.err != nil || c.in(1) == nil || c.in(1).value == nil {
		c.err = nil
		c.setOut(0, &tensorInfo{elem: c.elem()})
		return nil
	}
	reps, err := tileRepeats(c, x)
	if err != nil {
		return err
	}
	out := make(Shape, len(x))
	for i, d := range x {
		out[i] = mulDim(d, reps[i])
	}
	info := &tensorInfo{elem: c.elem(), shape: out, hasShape: true}
	inDims, ok1 := x.Static()
	outDims, ok2 := out.Static()
	if v := c.in(0).value; v != nil && ok1 && ok2 {
		info.value = mapValues(v, inDims, outDims, func(j, i []int64) {
			for a := range j {
				i[a] = j[a] % inDims[a]
			}
		})
	}
	c.setOut(0, info)
	return nil
}

// gradTile sums the copies: gY, whose axis a holds repeats[a] copies of
// x's axis a one after the other, is reshaped to [r₀, d₀, r₁, d₁, …]
// (axes not repeated stay single) and summed over the r axes. Symbolic
// dims are read from Shape(x) at run time.
func gradTile(c *gradCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	reps, err := tileRepeats(&c.nodeCtx, x)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(reps, func(r int64) bool { return r != 1 }) {
		c.setGrad(0, c.gy[0])
		return nil
	}
	var parts []string
	var run, sumAxes []int64
	flush := func() {
		if len(run) > 0 {
			parts = append(parts, c.gr.ints(run...))
			run = nil
		}
	}
	pos := int64(0)
	if c.lead {
		run, pos = append(run, -1), 1
	}
	for a, d := range x {
		if reps[a] != 1 {
			run = append(run, reps[a])
			sumAxes = append(sumAxes, pos)
			pos++
		}
		if d.Known() {
			run = append(run, d.Value)
		} else {
			flush()
			parts = append(parts, c.op("Gather", []string{c.op("Shape", []string{c.input(0)}), c.gr.ints(int64(a))}, attrInt("axis", 0)))
		}
		pos++
	}
	flush()
	target := parts[0]
	if len(parts) > 1 {
		target = c.op("Concat", parts, attrInt("axis", 0))
	}
	g := c.op("Reshape", []string{c.gy[0], target})
	c.setGrad(0, c.op("ReduceSum", []string{g, c.gr.ints(sumAxes...)}, attrInt("keepdims", 0)))
	return nil
}

// https://onnx.ai/onnx/operators/onnx__Range.html: a 1-D tensor of
// max(⌈(limit − start)/delta⌉, 0) elements, tracked when the inputs are.
func inferRange(c *nodeCtx) error {
	info := &tensorInfo{elem: c.elem(), shape: Shape{unknownDim}, hasShape: true}
	var v [3]int64
	for i := range v {
		t := c.in(i)
		if t == nil || len(t.value) != 1 || !t.value[0].Known() {
			c.setOut(0, info)
			return nil
		}
		v[i] = t.value[0].Value
	}
	start, limit, delta := v[0], v[1], v[2]
	if delta == 0 {
		return c.errorf("delta is 0")
	}
	q := limit - start
	n := q / delta // truncated; rounded up below when q and delta agree in sign
	if q%delta != 0 && (q > 0) == (delta > 0) {
		n++
	}
	n = max(n, 0)
	info.shape = Shape{known(n)}
	if n <= maxTrackedValues {
		info.value = make([]Dim, n)
		for i := range info.value {
			info.value[i] = known(start + int64(i)*delta)
		}
	}
	c.setOut(0, info)
	return nil
}
