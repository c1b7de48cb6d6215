package onnxgrad

// Normalisation: BatchNormalization (inference), LayerNormalization,
// InstanceNormalization, GroupNormalization, LRN, Softmax, LogSoftmax.

import (
	"math"
	"slices"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// https://onnx.ai/onnx/operators/onnx__BatchNormalization.html
func inferBatchNorm(c *nodeCtx) error {
	if c.attrInt("training_mode", 0) != 0 || len(c.n.GetOutput()) > 1 && c.output(1) != "" {
		return c.errorf("BatchNormalization in training mode is not supported; export the model in eval mode")
	}
	c.setOut(0, c.sameAs(0))
	return nil
}

// gradBatchNorm: with inv = 1/√(var+ε) and Y = (X−mean)·inv·scale + B,
// gX = gY·scale·inv, gScale = Σ gY·(X−mean)·inv, gB = Σ gY,
// gMean = −gB·scale·inv, gVar = −½·Σ gY·(X−mean)·scale·inv³, the sums over
// every axis but the channel axis 1.
func gradBatchNorm(c *gradCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	r := len(x)
	if r < 2 {
		return c.errorf("input must be [N, C, ...], got %v", x)
	}
	// perChannel reshapes a [C] tensor to broadcast against [N, C, spatial...].
	chShape := []int64{-1}
	for range r - 2 {
		chShape = append(chShape, 1)
	}
	perChannel := func(t string) string { return c.op("Reshape", []string{t, c.gr.ints(chShape...)}) }
	eps := float64(c.attrFloat("epsilon", 1e-5))
	scale, mean, variance := c.input(1), c.input(3), c.input(4)
	inv := c.op("Reciprocal", []string{c.op("Sqrt", []string{c.op("Add", []string{variance, c.scalar(eps)})})})
	scaleInv := c.op("Mul", []string{scale, inv})
	gy := c.gy[0]
	if c.need[0] {
		c.setGrad(0, c.op("Mul", []string{gy, perChannel(scaleInv)}))
	}
	centered := ""
	if c.need[1] || c.need[4] {
		centered = c.op("Sub", []string{c.input(0), perChannel(mean)})
	}
	if c.need[1] {
		c.setGrad(1, c.reduceAllBut(c.op("Mul", []string{gy, c.op("Mul", []string{centered, perChannel(inv)})}), r, 1))
	}
	gb := ""
	if c.need[2] || c.need[3] {
		gb = c.reduceAllBut(gy, r, 1)
	}
	c.setGrad(2, gb)
	if c.need[3] {
		c.setGrad(3, c.op("Neg", []string{c.op("Mul", []string{gb, scaleInv})}))
	}
	if c.need[4] {
		s := c.reduceAllBut(c.op("Mul", []string{gy, centered}), r, 1)
		inv3 := c.op("Mul", []string{inv, c.op("Mul", []string{inv, inv})})
		c.setGrad(4, c.op("Mul", []string{s, c.op("Mul", []string{scale, c.op("Mul", []string{inv3, c.scalar(-0.5)})})}))
	}
	return nil
}

// softmaxAxis returns the Softmax/LogSoftmax axis (opset ≥ 13 semantics:
// one axis, default −1) shifted past the class axis.
func (c *gradCtx) softmaxAxis() string {
	y := c.shapeOut(0)
	a, err := normAxis(c.attrInt("axis", -1), len(y))
	if err != nil {
		c.fail("%v", err)
	}
	return c.gr.ints(int64(a + c.off()))
}

// https://onnx.ai/onnx/operators/onnx__Softmax.html:
// gX = Y·(gY − Σ_axis gY·Y).
func gradSoftmax(c *gradCtx) error {
	y, gy := c.output(0), c.gy[0]
	s := c.op("ReduceSum", []string{c.op("Mul", []string{gy, y}), c.softmaxAxis()}, attrInt("keepdims", 1))
	c.setGrad(0, c.op("Mul", []string{y, c.op("Sub", []string{gy, s})}))
	return nil
}

// https://onnx.ai/onnx/operators/onnx__LogSoftmax.html:
// gX = gY − exp(Y)·Σ_axis gY.
func gradLogSoftmax(c *gradCtx) error {
	y, gy := c.output(0), c.gy[0]
	s := c.op("ReduceSum", []string{gy, c.softmaxAxis()}, attrInt("keepdims", 1))
	c.setGrad(0, c.op("Sub", []string{gy, c.op("Mul", []string{c.op("Exp", []string{y}), s})}))
	return nil
}

// standardize recomputes, for a forward tensor x normalised over its last k
// axes, x̂ = (x − mean)/√(var + ε) and inv = 1/√(var + ε) (with kept dims);
// count is the number of elements each mean runs over.
func (c *gradCtx) standardize(x string, k int, count string, eps float64) (xhat, inv string) {
	axes := c.trailingAxes(k)
	d := c.op("Sub", []string{x, c.meanOver(x, axes, count)})
	v := c.meanOver(c.op("Mul", []string{d, d}), axes, count)
	inv = c.op("Reciprocal", []string{c.op("Sqrt", []string{c.op("Add", []string{v, c.scalar(eps)})})})
	return c.op("Mul", []string{d, inv}), inv
}

// trailingAxes is the INT64 tensor of axes −k … −1, which name the same
// axes with and without the class axis in front.
func (c *gradCtx) trailingAxes(k int) string {
	axes := make([]int64, k)
	for i := range axes {
		axes[i] = int64(i - k)
	}
	return c.gr.ints(axes...)
}

// meanOver averages t over axes, keeping them.
func (c *gradCtx) meanOver(t, axes, count string) string {
	return c.op("Div", []string{c.op("ReduceSum", []string{t, axes}, attrInt("keepdims", 1)), count})
}

// standardizedGrad is the gradient of x̂ = (x − mean)/√(var + ε), taken over
// the last k axes, applied to g = ∂L/∂x̂: inv·(g − mean(g) − x̂·mean(g·x̂)).
func (c *gradCtx) standardizedGrad(g, xhat, inv string, k int, count string) string {
	axes := c.trailingAxes(k)
	mg := c.meanOver(g, axes, count)
	mgx := c.meanOver(c.op("Mul", []string{g, xhat}), axes, count)
	centered := c.op("Sub", []string{c.op("Sub", []string{g, mg}), c.op("Mul", []string{xhat, mgx})})
	return c.op("Mul", []string{inv, centered})
}

// https://onnx.ai/onnx/operators/onnx__LayerNormalization.html
func inferLayerNorm(c *nodeCtx) error {
	c.setOut(0, c.sameAs(0))
	x := c.in(0)
	if x == nil || !x.hasShape {
		return nil
	}
	a, err := normAxis(c.attrInt("axis", -1), x.rank())
	if err != nil {
		return c.errorf("%v", err)
	}
	stats := slices.Clone(x.shape[:a])
	for range x.shape[a:] {
		stats = append(stats, known(1))
	}
	elem := x.elem
	if c.attrInt("stash_type", 1) == 1 {
		elem = onnxpb.TensorProto_FLOAT
	}
	c.setOut(1, &tensorInfo{elem: elem, shape: stats, hasShape: true})
	c.setOut(2, &tensorInfo{elem: elem, shape: slices.Clone(stats), hasShape: true})
	return nil
}

// gradLayerNorm: with x̂ standardised over the axes from axis on and
// Y = x̂·Scale + B, gX = standardizedGrad(gY·Scale), gScale = Σ gY·x̂ and
// gB = Σ gY, summed over the axes Scale and B broadcast along. The Mean and
// InvStdDev outputs exist for training in PyTorch; onnxgrad does not
// differentiate through them.
func gradLayerNorm(c *gradCtx) error {
	if slices.ContainsFunc(c.gy[1:], func(g string) bool { return g != "" }) {
		return c.errorf("the Mean and InvStdDev outputs are used on the differentiated path; onnxgrad differentiates only output Y (export the model in eval mode)")
	}
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	a, err := normAxis(c.attrInt("axis", -1), len(x))
	if err != nil {
		return c.errorf("%v", err)
	}
	k := len(x) - a
	var axes []int
	for i := a; i < len(x); i++ {
		axes = append(axes, i)
	}
	count := c.reducedCount(x, axes)
	xhat, inv := c.standardize(c.input(0), k, count, float64(c.attrFloat("epsilon", 1e-5)))
	gy := c.gy[0]
	if c.need[0] {
		c.setGrad(0, c.standardizedGrad(c.op("Mul", []string{gy, c.input(1)}), xhat, inv, k, count))
	}
	if c.need[1] {
		c.setGrad(1, c.unbroadcast(c.op("Mul", []string{gy, xhat}), x, 1))
	}
	if c.input(2) != "" && c.need[2] {
		c.setGrad(2, c.unbroadcast(gy, x, 2))
	}
	return c.err
}

// https://onnx.ai/onnx/operators/onnx__InstanceNormalization.html: each
// channel of each sample is standardised over the spatial axes, then scaled
// and shifted per channel (PyTorch exports GroupNorm at opsets ≤ 17 as a
// Reshape to [N, G, −1], an InstanceNormalization with unit scale, a Reshape
// back and a per-channel Mul and Add).
func gradInstanceNorm(c *gradCtx) error {
	return c.gradGroupedNorm(0, true)
}

// https://onnx.ai/onnx/operators/onnx__GroupNormalization.html: the
// channels of each sample are split into num_groups groups, each
// standardised over its channels and the spatial axes; scale and bias hold
// one value per group in opsets 18–20 and one per channel from opset 21.
func gradGroupNorm(c *gradCtx) error {
	return c.gradGroupedNorm(c.attrInt("num_groups", -1), c.gr.opset >= 21)
}

// gradGroupedNorm differentiates a normalisation of x [N, C, spatial...]
// over groups of channels and all spatial axes, followed by a scale and a
// bias per group (perChannel false) or per channel; groups 0 means one
// group per channel (InstanceNormalization). x is viewed as
// [N, G, C/G, S] and standardised over the last two axes; scale and bias are
// viewed as [G, 1, 1] or [G, C/G, 1] to broadcast against that view.
func (c *gradCtx) gradGroupedNorm(groups int64, perChannel bool) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	if len(x) < 3 || !x[1].Known() {
		return c.errorf("input must be [N, C, spatial...] with a static channel count, got %v", x)
	}
	ch := x[1].Value
	if groups == 0 {
		groups = ch
	}
	if groups <= 0 || ch%groups != 0 {
		return c.errorf("%d channels cannot be split into %d groups", ch, groups)
	}
	per := ch / groups
	view := func(t string, lead int) string {
		return c.op("Reshape", []string{t, c.gr.ints(append(make([]int64, 1+lead), groups, per, -1)...)})
	}
	spatial := make([]int, len(x)-2)
	for i := range spatial {
		spatial[i] = 2 + i
	}
	count := c.reducedCount(x, spatial)
	if per > 1 {
		count = c.op("Mul", []string{count, c.scalar(float64(per))})
	}
	xhat, inv := c.standardize(view(c.input(0), 0), 2, count, float64(c.attrFloat("epsilon", 1e-5)))
	gy := view(c.gy[0], c.off())
	paramShape, paramAxes := []int64{groups, 1, 1}, []int64{0, 2, 3}
	if perChannel {
		paramShape, paramAxes = []int64{groups, per, 1}, []int64{0, 3}
	}
	for i := range paramAxes {
		paramAxes[i] += int64(c.off())
	}
	if c.need[0] {
		scale := c.op("Reshape", []string{c.input(1), c.gr.ints(paramShape...)})
		g := c.standardizedGrad(c.op("Mul", []string{gy, scale}), xhat, inv, 2, count)
		c.setGrad(0, c.reshapeLike(g, c.input(0)))
	}
	sum := func(t string) string {
		return c.op("ReduceSum", []string{t, c.gr.ints(paramAxes...)}, attrInt("keepdims", 0))
	}
	if c.need[1] {
		c.setGrad(1, c.reshapeLike(sum(c.op("Mul", []string{gy, xhat})), c.input(1)))
	}
	if c.need[2] {
		c.setGrad(2, c.reshapeLike(sum(gy), c.input(2)))
	}
	return nil
}

// https://onnx.ai/onnx/operators/onnx__LRN.html (AlexNet, GoogLeNet):
// over x = [N, C, ...], y = x·s^(−β) with s = bias + α/size·W(x²), where
// W sums each channel's window of size channels, from ⌊(size−1)/2⌋ before
// to ⌈(size−1)/2⌉ after it (cut at the edges). W is linear, so
// gX = gY·s^(−β) − (2αβ/size)·x·Wᵀ(gY·y/s), and Wᵀ is the window mirrored
// (the two offsets swapped; they differ only for an even size, which
// onnxruntime 1.30 refuses to run, as it refuses inputs not of rank 4).
func gradLRN(c *gradCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	size := c.attrInt("size", 0)
	if len(x) < 2 || size < 1 {
		return c.errorf("LRN needs an input [N, C, ...] and a positive size, got %v and size %d", x, size)
	}
	alpha, beta, bias := float64(c.attrFloat("alpha", 1e-4)), float64(c.attrFloat("beta", 0.75)), float64(c.attrFloat("bias", 1))
	before, after := (size-1)/2, size/2
	in := c.input(0)
	sq := c.windowSum(c.op("Mul", []string{in, in}), len(x), 0, before, after)
	s := c.op("Add", []string{c.op("Mul", []string{sq, c.scalar(alpha / float64(size))}), c.scalar(bias)})
	direct := c.op("Mul", []string{c.gy[0], c.op("Pow", []string{s, c.scalar(-beta)})})
	t := c.op("Div", []string{c.op("Mul", []string{c.gy[0], c.output(0)}), s})
	back := c.windowSum(t, len(x), c.off(), after, before)
	cross := c.op("Mul", []string{c.op("Mul", []string{in, back}), c.scalar(2 * alpha * beta / float64(size))})
	c.setGrad(0, c.op("Sub", []string{direct, cross}))
	return nil
}

// windowSum returns, for t of rank r plus off leading axes, the sum over
// channels c − before … c + after of t (channel axis 1 + off, zeros beyond
// its ends): t padded by before and after channels, then the sum of the
// before + after + 1 shifted slices of the original width.
func (c *gradCtx) windowSum(t string, r, off int, before, after int64) string {
	axis := int64(1 + off)
	pads := make([]int64, 2*(r+off))
	pads[axis], pads[int64(r+off)+axis] = before, after
	padded := c.op("Pad", []string{t, c.gr.ints(pads...)})
	width := before + after
	var parts []string
	for k := int64(0); k <= width; k++ {
		end := k - width // counted from the padded axis's end
		if end == 0 {
			end = math.MaxInt64
		}
		parts = append(parts, c.op("Slice", []string{padded, c.gr.ints(k), c.gr.ints(end), c.gr.ints(axis)}))
	}
	return c.gr.sum(parts)
}
