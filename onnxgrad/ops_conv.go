package onnxgrad

// Convolution and pooling: Conv, ConvTranspose, MaxPool, AveragePool,
// GlobalAveragePool.

import (
	"fmt"
	"math"
	"slices"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// window is the geometry of a convolution or pooling window over the
// spatial axes, with auto_pad resolved into explicit pads.
type window struct {
	in, out          []int64 // spatial sizes of input and output
	kernel, strides  []int64
	dilations        []int64
	padBegin, padEnd []int64
	ceil             bool
}

// readWindow reads kernel_shape (or takes kernel), strides, dilations, pads
// and auto_pad for a node whose input 0 is [N, C, spatial...] with static
// spatial sizes, and computes the output size of a convolution or pooling.
func readWindow(c *nodeCtx, kernel []int64) (*window, error) {
	w, ap, err := readSpatial(c, kernel)
	if err != nil {
		return nil, err
	}
	r := len(w.in)
	w.ceil = c.attrInt("ceil_mode", 0) != 0
	if ap == "SAME_UPPER" || ap == "SAME_LOWER" {
		for i := range r {
			out := (w.in[i] + w.strides[i] - 1) / w.strides[i]
			total := max(0, (out-1)*w.strides[i]+w.span(i)-w.in[i])
			small, big := total/2, total-total/2
			if ap == "SAME_UPPER" {
				w.padBegin[i], w.padEnd[i] = small, big
			} else {
				w.padBegin[i], w.padEnd[i] = big, small
			}
		}
	}
	w.out = make([]int64, r)
	for i := range r {
		num := w.in[i] + w.padBegin[i] + w.padEnd[i] - w.span(i)
		if num < 0 || w.strides[i] <= 0 {
			return nil, c.errorf("window %v larger than padded input %v", w.kernel, w.in)
		}
		o := num/w.strides[i] + 1
		if w.ceil && num%w.strides[i] != 0 {
			o++
			if (o-1)*w.strides[i] >= w.in[i]+w.padBegin[i] {
				o-- // the last window would start in the end padding
			}
		}
		w.out[i] = o
	}
	if c.err != nil {
		return nil, c.err
	}
	return w, nil
}

// readSpatial reads what convolutions, their transposes and pooling share:
// the static spatial sizes of input 0 ([N, C, spatial...]), kernel_shape (or
// kernel), strides and dilations (ones by default), and the explicit pads
// when auto_pad is NOTSET (zeros otherwise). It returns auto_pad.
func readSpatial(c *nodeCtx, kernel []int64) (*window, string, error) {
	x := c.shapeIn(0)
	if c.err != nil {
		return nil, "", c.err
	}
	r := len(x) - 2
	if r < 1 {
		return nil, "", c.errorf("input must be [N, C, spatial...], got %v", x)
	}
	w := &window{in: make([]int64, r)}
	for i := range r {
		d := x[2+i]
		if !d.Known() {
			return nil, "", c.unknownf("spatial size %s of input %q is not static; set the input shape explicitly", d, c.input(0))
		}
		w.in[i] = d.Value
	}
	ones := func() []int64 {
		v := make([]int64, r)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	w.kernel = c.attrInts("kernel_shape", kernel)
	w.strides = c.attrInts("strides", ones())
	w.dilations = c.attrInts("dilations", ones())
	if len(w.kernel) != r || len(w.strides) != r || len(w.dilations) != r {
		return nil, "", c.errorf("kernel_shape %v, strides %v, dilations %v do not match %d spatial axes", w.kernel, w.strides, w.dilations, r)
	}
	w.padBegin, w.padEnd = make([]int64, r), make([]int64, r)
	ap := c.attrString("auto_pad", "NOTSET")
	switch ap {
	case "NOTSET":
		pads := c.attrInts("pads", make([]int64, 2*r))
		if len(pads) != 2*r {
			return nil, "", c.errorf("pads %v do not match %d spatial axes", pads, r)
		}
		copy(w.padBegin, pads[:r])
		copy(w.padEnd, pads[r:])
	case "VALID", "SAME_UPPER", "SAME_LOWER":
	default:
		return nil, "", c.errorf("unknown auto_pad %q", ap)
	}
	if c.err != nil {
		return nil, "", c.err
	}
	return w, ap, nil
}

// span is the extent of the dilated kernel along spatial axis i.
func (w *window) span(i int) int64 { return w.dilations[i]*(w.kernel[i]-1) + 1 }

func (w *window) pads() []int64 { return append(append([]int64{}, w.padBegin...), w.padEnd...) }

// outShape is [N, channels, out...].
func (w *window) outShape(n, channels Dim) Shape {
	s := Shape{n, channels}
	for _, o := range w.out {
		s = append(s, known(o))
	}
	return s
}

// convKernel returns the spatial kernel size of Conv's weight input.
func convKernel(c *nodeCtx) []int64 {
	wt := c.staticIn(1)
	if len(wt) < 3 {
		c.fail("weight must be [M, C/group, k...], got %v", wt)
		return nil
	}
	return wt[2:]
}

// https://onnx.ai/onnx/operators/onnx__Conv.html
func inferConv(c *nodeCtx) error {
	k := convKernel(c)
	if c.err != nil {
		return nil // weight shape unknown: leave the output unknown
	}
	w, err := readWindow(c, k)
	if err != nil {
		return err
	}
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: w.outShape(c.shapeIn(0)[0], known(c.staticIn(1)[0])), hasShape: true})
	return nil
}

// foldLead merges the class axis of gradient g (forward tensor y) into the
// batch axis, [L, N, ...] → [L·N, ...], for operators that only take one
// batch axis; a no-op outside Jacobian mode.
func (c *gradCtx) foldLead(g, y string) string {
	if !c.lead {
		return g
	}
	rest := c.op("Slice", []string{c.op("Shape", []string{y}), c.gr.ints(1), c.gr.ints(math.MaxInt64)})
	return c.op("Reshape", []string{g, c.op("Concat", []string{c.gr.ints(-1), rest}, attrInt("axis", 0))})
}

// reduceAllBut sums g over every axis of a forward tensor of rank r except
// keep (and the class axis), without keeping dims.
func (c *gradCtx) reduceAllBut(g string, r, keep int) string {
	var axes []int64
	for a := range r {
		if a != keep {
			axes = append(axes, int64(a+c.off()))
		}
	}
	return c.op("ReduceSum", []string{g, c.gr.ints(axes...)}, attrInt("keepdims", 0))
}

// gradConv: the input gradient is a ConvTranspose of gY with the forward
// weights and geometry (output_padding recovers the input size), or, where
// that is faster, a Conv by the flipped kernel (stride 1, see flippable) or
// a Conv over the stride phases and DepthToSpace (strided, see
// stridePhases); the weight gradient is a MatMul of gY with the input's
// patches, or a convolution of the input with gY as in
// ../shared/onnxgrad-notes.md (see weightGradMethod); the bias gradient
// sums gY over all but the channel axis.
func gradConv(c *gradCtx) error {
	k := convKernel(&c.nodeCtx)
	if c.err != nil {
		return c.err
	}
	w, err := readWindow(&c.nodeCtx, k)
	if err != nil {
		return err
	}
	group := c.attrInt("group", 1)
	r := len(w.in)
	if c.need[0] {
		var gx string
		if c.flippable(w, group) {
			gx = c.convInputGradByConv(w)
		} else if ph := c.stridePhases(w, group); ph != nil {
			gx = c.convInputGradByPhases(w, ph)
		} else {
			outPad := make([]int64, r)
			for i := range r {
				outPad[i] = (w.in[i] + w.padBegin[i] + w.padEnd[i] - w.span(i)) % w.strides[i]
			}
			gx = c.op("ConvTranspose", []string{c.foldLead(c.gy[0], c.output(0)), c.input(1)},
				attrInts("kernel_shape", w.kernel), attrInts("strides", w.strides), attrInts("dilations", w.dilations),
				attrInts("pads", w.pads()), attrInts("output_padding", outPad), attrInt("group", group))
		}
		c.setGrad(0, c.reshapeLike(gx, c.input(0)))
	}
	if c.need[1] {
		if c.lead {
			return c.errorf("the weight gradient is not available in Jacobian mode")
		}
		c.setGrad(1, c.convWeightGrad(w, group, convOperands{x: c.input(0), gy: c.gy[0], wdims: c.staticIn(1)}))
	}
	if c.input(2) != "" && c.need[2] {
		c.setGrad(2, c.reduceAllBut(c.gy[0], r+2, 1))
	}
	return nil
}

// flipMinChannels is the number of input channels from which the input
// gradient is a Conv by the flipped kernel rather than a ConvTranspose.
// Measured on 2 threads, AVX-512, gY of [640, M, H, W], 3×3 kernels, CPU
// time per run: the Conv was 2–3× slower with C = 1–3 (its output channels,
// padded to onnxruntime's NCHWc block of 16), 1.3× slower with C = 4, and
// 1.2–1.6× faster with C = 8–32.
const flipMinChannels = 8

// flippable reports whether the input gradient is a Conv by the flipped
// kernel: group 1, unit strides, pads no larger than the dilated kernel's
// reach, d·(k−1) (so that the flipped convolution's pads are not negative),
// at least flipMinChannels input channels, and a constant kernel, which
// onnxruntime folds and turns into its fast NCHWc layout (with a kernel fed
// at run time the Conv is no faster than the ConvTranspose).
func (c *gradCtx) flippable(w *window, group int64) bool {
	if group != 1 || c.staticIn(1)[1] < flipMinChannels || !c.gr.isConst(c.input(1)) {
		return false
	}
	for i := range w.in {
		reach := w.dilations[i] * (w.kernel[i] - 1)
		if w.strides[i] != 1 || w.padBegin[i] > reach || w.padEnd[i] > reach {
			return false
		}
	}
	return true
}

// convInputGradByConv is the input gradient of a stride-1 convolution as a
// convolution of gY by the kernel with its channel axes swapped and its
// spatial axes reversed, W'[c, m, i] = W[m, c, k−1−i], padded by d·(k−1) − p
// on each side. When W is an initializer, onnxruntime folds the Transpose
// and Slice into a constant.
func (c *gradCtx) convInputGradByConv(w *window) string {
	r := len(w.in)
	axes, starts, ends, steps := make([]int64, r), make([]int64, r), make([]int64, r), make([]int64, r)
	pads := make([]int64, 2*r)
	for i := range r {
		axes[i], starts[i], ends[i], steps[i] = int64(2+i), -1, math.MinInt64, -1
		reach := w.dilations[i] * (w.kernel[i] - 1)
		pads[i], pads[r+i] = reach-w.padBegin[i], reach-w.padEnd[i]
	}
	wt := c.op("Transpose", []string{c.input(1)}, attrInts("perm", swapPerm(r+2, 0, 1)))
	wt = c.op("Slice", []string{wt, c.gr.ints(starts...), c.gr.ints(ends...), c.gr.ints(axes...), c.gr.ints(steps...)})
	return c.op("Conv", []string{c.foldLead(c.gy[0], c.output(0)), wt}, attrInts("kernel_shape", w.kernel),
		attrInts("dilations", w.dilations), attrInts("pads", pads))
}

// phaseAxis is how the input gradient of a convolution with stride s along
// one spatial axis splits into s phases: input element x = s·m + a (phase
// a) collects W[j]·gY[m + e] for every kernel offset j with
// a + padBegin − dilation·j = s·e, so phase a is a stride-1
// cross-correlation of gY with the taps j at offsets e. All phases are
// aligned on the common offsets e ∈ [lo, hi]: taps[a][e−lo] is the kernel
// offset j there, or −1 where phase a has no tap.
type phaseAxis struct {
	taps   [][]int64
	lo, hi int64
	blocks int64 // ⌈in/s⌉: the phase convolution's output length
}

// phaseTaps splits spatial axis i of w by stride phase (see phaseAxis).
// Offsets that read only gY's zero padding for every output row m ∈ [0,
// blocks) (e < −(blocks−1) or e > out−1) are left out: on a 1×1 gY a 3×3
// kernel with stride 2 keeps 1 offset of 2. It returns nil where no
// offset is left (no kernel offset reaches the input through gY).
func (w *window) phaseTaps(i int) *phaseAxis {
	s, d := w.strides[i], w.dilations[i]
	p := &phaseAxis{lo: math.MaxInt64, hi: math.MinInt64, blocks: (w.in[i] + s - 1) / s}
	for a := range s {
		for j := range w.kernel[i] {
			if v := a + w.padBegin[i] - d*j; v%s == 0 {
				p.lo, p.hi = min(p.lo, v/s), max(p.hi, v/s)
			}
		}
	}
	p.lo, p.hi = max(p.lo, 1-p.blocks), min(p.hi, w.out[i]-1)
	if p.lo > p.hi {
		return nil
	}
	p.taps = make([][]int64, s)
	for a := range s {
		p.taps[a] = make([]int64, p.hi-p.lo+1)
		for t := range p.taps[a] {
			p.taps[a][t] = -1
			if v := a + w.padBegin[i] - s*(p.lo+int64(t)); v%d == 0 && v/d >= 0 && v/d < w.kernel[i] {
				p.taps[a][t] = v / d
			}
		}
	}
	return p
}

// width is the number of taps of the phase convolution's kernel.
func (p *phaseAxis) width() int64 { return p.hi - p.lo + 1 }

// stridePhases returns the phase split of both spatial axes where the input
// gradient is one Conv over the stride phases (convInputGradByPhases) and
// phasesPay says it is the faster form: a 2-D convolution, group 1, equal
// strides s > 1 on both axes (DepthToSpace takes one block size) and a
// constant kernel, which onnxruntime folds into the phase kernels.
// Otherwise nil: the input gradient stays a ConvTranspose.
func (c *gradCtx) stridePhases(w *window, group int64) []*phaseAxis {
	if len(w.in) != 2 || group != 1 || w.strides[0] != w.strides[1] || w.strides[0] < 2 || !c.gr.isConst(c.input(1)) {
		return nil
	}
	var ph []*phaseAxis
	for i := range w.in {
		p := w.phaseTaps(i)
		if p == nil {
			return nil
		}
		ph = append(ph, p)
	}
	if !phasesPay(w, ph, c.staticIn(1)[1]) {
		return nil
	}
	return ph
}

// Where the stride-phase Conv is faster than a ConvTranspose (phasesPay).
const (
	// phaseMaxArea bounds gY's spatial area Ho·Wo. onnxruntime's
	// ConvTranspose multiplies the kernel, [C·k·k, M], by each image's gY,
	// [M, Ho·Wo]: with a handful of columns that product reads the whole
	// kernel once per image, while the phase Conv runs over the batch.
	phaseMaxArea = 4
	// phaseMinChannels is the fewest input channels C; the phase Conv has
	// s²·C output channels.
	phaseMinChannels = 8
	// phaseMaxWaste bounds the phase kernel's size, s²·T_h·T_w, over the
	// forward kernel's, k_h·k_w: the phases hold each tap once, the rest
	// are zeros (16/9 for 3×3 with stride 2, 4 for 1×1, 4 or more with a
	// dilation, whose phases hold no taps or taps d apart).
	phaseMaxWaste = 2
)

// phasesPay is the speed rule for the stride-phase input gradient of w
// with the given input channels, from CPU times per run measured with 1 and
// 2 threads (AVX-512, onnxruntime 1.30, BenchmarkConvInputGrad: gY of 144
// rows, torchvision ResNet-18's strided convolutions on 32×32 images and
// neighbours): the phase Conv was 1.3–5× faster with gY of 2×2 or 1×1
// and 8 to 256 input channels (3×3 and 7×7 kernels), but 1.1–2× slower
// with gY of 4×4 and more (once the ConvTranspose's product has enough
// columns, the DepthToSpace, up to a third of the phase form's time, and
// the larger phase kernel cost more than they save), 2× slower on the
// ResNet stem (3 channels, 16×16 gY) and 2–5× slower with 1×1 kernels
// (4 phases, 3 of them zeros). It is a variable so that the tests can
// send every geometry through the phase form.
var phasesPay = func(w *window, ph []*phaseAxis, channels int64) bool {
	s := w.strides[0]
	return w.out[0]*w.out[1] <= phaseMaxArea && channels >= phaseMinChannels &&
		s*s*ph[0].width()*ph[1].width() <= phaseMaxWaste*w.kernel[0]*w.kernel[1]
}

// convInputGradByPhases is the input gradient of a 2-D convolution with
// stride s as one stride-1 Conv of gY whose s²·C output channels are the s²
// phases' gradients, in DepthToSpace's DCR order ((a_h·s + a_w)·C + c),
// followed by DepthToSpace and a Slice to the input's size. The phase
// kernel K[(a_h·s + a_w)·C + c, o, t_h, t_w] = W[o, c, j_h, j_w] (zero where
// a phase has no tap) is a Gather from the kernel, flattened and padded
// with one zero, by a constant index table; for a constant W onnxruntime
// folds it. gY is padded (or sliced) to the rows [lo, blocks−1+hi] the
// phases read, so the Conv yields ⌈in/s⌉ rows per phase.
func (c *gradCtx) convInputGradByPhases(w *window, ph []*phaseAxis) string {
	s := w.strides[0]
	wd := c.staticIn(1)
	m, ch, kw := wd[0], wd[1], w.kernel[1]
	kk := w.kernel[0] * kw
	h, v := ph[0], ph[1]
	idx := make([]int64, 0, s*s*h.width()*v.width())
	for ah := range s {
		for aw := range s {
			for _, jh := range h.taps[ah] {
				for _, jw := range v.taps[aw] {
					if jh < 0 || jw < 0 {
						idx = append(idx, kk) // the zero after the kernel
					} else {
						idx = append(idx, jh*kw+jw)
					}
				}
			}
		}
	}
	k := c.op("Reshape", []string{c.input(1), c.gr.ints(m, ch, kk)})
	k = c.op("Pad", []string{k, c.gr.ints(0, 0, 0, 0, 0, 1)})
	table := c.gr.addInitializer("grad/const", newTensorInt64("", []int64{s, s, h.width(), v.width()}, idx))
	k = c.op("Gather", []string{k, table}, attrInt("axis", 2))
	k = c.op("Transpose", []string{k}, attrInts("perm", []int64{2, 3, 1, 0, 4, 5}))
	k = c.op("Reshape", []string{k, c.gr.ints(s*s*ch, m, h.width(), v.width())})

	gy := c.foldLead(c.gy[0], c.output(0))
	pads := make([]int64, 4)
	var axes, starts, ends []int64
	for i, p := range ph {
		first, last := p.lo, p.blocks-1+p.hi // the rows of gY read, maybe outside it
		pads[i], pads[2+i] = max(0, -first), max(0, last-(w.out[i]-1))
		if first > 0 || last < w.out[i]-1 {
			axes = append(axes, int64(2+i))
			starts, ends = append(starts, max(0, first)), append(ends, min(w.out[i], last+1))
		}
	}
	if len(axes) > 0 {
		gy = c.op("Slice", []string{gy, c.gr.ints(starts...), c.gr.ints(ends...), c.gr.ints(axes...)})
	}
	gx := c.op("Conv", []string{gy, k}, attrInts("kernel_shape", []int64{h.width(), v.width()}), attrInts("pads", pads))
	gx = c.op("DepthToSpace", []string{gx}, attrInt("blocksize", s), attrString("mode", "DCR"))
	if s*h.blocks != w.in[0] || s*v.blocks != w.in[1] {
		gx = c.op("Slice", []string{gx, c.gr.ints(0, 0), c.gr.ints(w.in...), c.gr.ints(2, 3)})
	}
	return gx
}

// convOperands names what the weight gradient of a convolution is computed
// from: its input x, the gradient gy of its output (without a class axis)
// and its weight's dims [M, C/group, k...]. For Conv they are the node's
// own; a ConvTranspose's weight gradient is that of the convolution it is
// the transpose of.
type convOperands struct {
	x, gy string
	wdims []int64
}

// convWeightGrad is the weight gradient of the convolution of o.x with
// geometry w, by the method weightGradMethod picks.
func (c *gradCtx) convWeightGrad(w *window, group int64, o convOperands) string {
	switch weightGradMethod(w, group, o.wdims[1]) {
	case patchesPerSample:
		return c.convWeightGradPerSample(w, group, o)
	case patchesOneProduct:
		return c.convWeightGradOneProduct(w, group, o)
	}
	return c.convWeightGradByConv(w, group, o)
}

// How convWeightGrad computes the weight gradient.
const (
	// byConv: one convolution of the input with gY (convWeightGradByConv).
	byConv = iota
	// patchesPerSample: a batched product of each sample's patches with
	// its gY, summed over the samples (convWeightGradPerSample).
	patchesPerSample
	// patchesOneProduct: one product of all the patches with gY
	// (convWeightGradOneProduct).
	patchesOneProduct
)

// maxPatchElems bounds the patches the patch methods hold per sample,
// C·kk·Ho·Wo elements: 2²² (16 MiB of float32), 1 GiB at batch 64. The
// first layer of a ResNet on 224×224 images (64 channels, 3×3, 56×56) needs
// 1.8M, the study's CNNs far less.
const maxPatchElems = 1 << 22

// weightGradMethod chooses how to compute the weight gradient of a
// convolution with cg input channels per group, from CPU times measured on
// 2 threads (AVX-512, onnxruntime 1.30, in a session shared with other
// jobs): the patch methods beat byConv by 1.3–1.8× with
// 3×3 kernels and 4 or more channels per group (32→64 channels at 14×14,
// ResNet-like 64→64 at 56×56 and 128→256 stride 2, 2 groups of 32),
// patchesOneProduct more so than patchesPerSample there; with 1–3 channels
// patchesPerSample is the faster (1→32 at 28×28: 1.3×) and with a 1×1
// kernel, whose patches are the input itself, it is 7× faster than byConv.
// byConv stays for depthwise convolutions (equal), for kernels larger than
// 5×5 (a 7×7 stride-2 stem on 3 channels was 1.3–1.4× slower with patches),
// and where the patches would not fit in maxPatchElems.
func weightGradMethod(w *window, group, cg int64) int {
	kk, area := int64(1), int64(1)
	for i := range w.kernel {
		kk *= w.kernel[i]
		area *= w.out[i]
	}
	n, err := numElements([]int64{cg * group, kk, area})
	switch {
	case group > 1 && cg == 1, kk > 25, err != nil, n > maxPatchElems:
		return byConv
	case cg < 4 || w.unitWindow():
		return patchesPerSample
	}
	return patchesOneProduct
}

// unitWindow reports a 1×1 kernel with unit strides and no padding.
func (w *window) unitWindow() bool {
	for i := range w.kernel {
		if w.kernel[i] != 1 || w.strides[i] != 1 || w.padBegin[i] != 0 || w.padEnd[i] != 0 {
			return false
		}
	}
	return true
}

// patchKernel is the constant [kk, 1, 1…, k…] of the kk one-hot kernels,
// one per offset j of the window, with ones extra leading spatial axes: a
// convolution by it (with the forward strides, dilations and pads) extracts
// the patches, output channel j holding the input element that offset j
// meets at each output position, zero in the padding.
func (c *gradCtx) patchKernel(w *window, ones int) string {
	kk := int64(1)
	for _, k := range w.kernel {
		kk *= k
	}
	eye := make([]float64, kk*kk)
	for j := range kk {
		eye[j*kk+j] = 1
	}
	dims := []int64{kk, 1}
	for range ones {
		dims = append(dims, 1)
	}
	return c.gr.constFloat(c.gradElem(), append(dims, w.kernel...), eye)
}

// convWeightGradByConv is the weight gradient as one convolution of the
// input with gY, the roles of batch and channels swapped.
func (c *gradCtx) convWeightGradByConv(w *window, group int64, o convOperands) string {
	r := len(w.in)
	cg := o.wdims[1] // C/group
	xs := append([]int64{-1, group, cg}, w.in...)
	xt := c.op("Reshape", []string{o.x, c.gr.ints(xs...)})
	xt = c.op("Transpose", []string{xt}, attrInts("perm", swapPerm(r+3, 0, 2)))
	xt = c.op("Reshape", []string{xt, c.gr.ints(append([]int64{cg, -1}, w.in...)...)})
	vt := c.op("Transpose", []string{o.gy}, attrInts("perm", swapPerm(r+2, 0, 1)))
	gw := c.op("Conv", []string{xt, vt}, attrInt("group", group), attrInts("strides", w.dilations),
		attrInts("dilations", w.strides), attrInts("pads", w.pads()))
	gw = c.op("Transpose", []string{gw}, attrInts("perm", swapPerm(r+2, 0, 1)))
	axes, starts := make([]int64, r), make([]int64, r)
	for i := range r {
		axes[i] = int64(2 + i)
	}
	return c.op("Slice", []string{gw, c.gr.ints(starts...), c.gr.ints(w.kernel...), c.gr.ints(axes...)})
}

// convWeightGradPerSample is the weight gradient as a product of patches
// and gY per sample (im2col): the patch convolution of every input channel,
// as a batch of one-channel images [N·C, 1, in…], gives the patches
// P[n, c·kk + j, p]; then dW[m, c·kk + j] = Σₙ Σₚ gY[n, m, p]·P[n, c·kk + j, p]
// is a MatMul batched over samples and groups, summed over the samples.
func (c *gradCtx) convWeightGradPerSample(w *window, group int64, o convOperands) string {
	m, cg := o.wdims[0], o.wdims[1]
	kk, area := int64(1), int64(1)
	for i := range w.kernel {
		kk *= w.kernel[i]
		area *= w.out[i]
	}
	p := o.x // a unit window's patches are the input
	if !w.unitWindow() {
		x := c.op("Reshape", []string{o.x, c.gr.ints(append([]int64{-1, 1}, w.in...)...)})
		p = c.op("Conv", []string{x, c.patchKernel(w, 0)}, attrInts("kernel_shape", w.kernel), attrInts("strides", w.strides),
			attrInts("dilations", w.dilations), attrInts("pads", w.pads()))
	}
	p = c.op("Reshape", []string{p, c.gr.ints(-1, group, cg*kk, area)})
	gy := c.op("Reshape", []string{o.gy, c.gr.ints(-1, group, m/group, area)})
	gw := c.op("MatMul", []string{gy, c.op("Transpose", []string{p}, attrInts("perm", []int64{0, 1, 3, 2}))})
	gw = c.op("ReduceSum", []string{gw, c.gr.ints(0)}, attrInt("keepdims", 0))
	return c.op("Reshape", []string{gw, c.gr.ints(o.wdims...)})
}

// convWeightGradOneProduct is the weight gradient as one product of all
// the patches with gY per group: with the batch axis moved behind the
// channels, [C, 1, N, in…], a patch convolution with one more spatial axis
// (kernel 1 along the samples) gives the patches as [C·kk, N·Ho·Wo], and
// dW = gY [M, N·Ho·Wo] · patchesᵀ needs no sum over the samples afterwards.
func (c *gradCtx) convWeightGradOneProduct(w *window, group int64, o convOperands) string {
	r := len(w.in)
	m, cg := o.wdims[0], o.wdims[1]
	kk := int64(1)
	for _, k := range w.kernel {
		kk *= k
	}
	one := []int64{1}
	x := c.op("Transpose", []string{o.x}, attrInts("perm", swapPerm(r+2, 0, 1)))
	x = c.op("Unsqueeze", []string{x, c.gr.ints(1)})
	pads := append(append(append([]int64{0}, w.padBegin...), 0), w.padEnd...)
	p := c.op("Conv", []string{x, c.patchKernel(w, 1)}, attrInts("kernel_shape", append(one, w.kernel...)),
		attrInts("strides", append(one, w.strides...)), attrInts("dilations", append(one, w.dilations...)), attrInts("pads", pads))
	p = c.op("Reshape", []string{p, c.gr.ints(group, cg*kk, -1)})
	gy := c.op("Transpose", []string{o.gy}, attrInts("perm", swapPerm(r+2, 0, 1)))
	gy = c.op("Reshape", []string{gy, c.gr.ints(group, m/group, -1)})
	gw := c.op("MatMul", []string{gy, c.op("Transpose", []string{p}, attrInts("perm", []int64{0, 2, 1}))})
	return c.op("Reshape", []string{gw, c.gr.ints(o.wdims...)})
}

// readConvTranspose reads a ConvTranspose node's geometry as the
// specification and onnxruntime 1.30 resolve it: w.in and w.out are the
// spatial sizes of input and output, and w.padBegin/w.padEnd the pads
// cropped from the full transposed convolution of size (in−1)·stride +
// output_padding + span. With output_shape given, the pads are the surplus
// over it (none if it is larger), split evenly with the odd one at the start
// (at the end for SAME_UPPER); with auto_pad SAME_UPPER or SAME_LOWER the
// output size is in·stride, the pads split the same way; otherwise the pads
// are the attribute's. The finite-difference cases check each form against
// onnxruntime.
func readConvTranspose(c *nodeCtx, kernel []int64) (*window, error) {
	w, ap, err := readSpatial(c, kernel)
	if err != nil {
		return nil, err
	}
	r := len(w.in)
	outPad := c.attrInts("output_padding", make([]int64, r))
	outShape := c.attrInts("output_shape", nil)
	if len(outShape) == r+2 {
		outShape = outShape[2:]
	}
	if len(outPad) != r || (outShape != nil && len(outShape) != r) {
		return nil, c.errorf("output_padding %v or output_shape %v do not match %d spatial axes", outPad, outShape, r)
	}
	w.out = make([]int64, r)
	for i := range r {
		full := (w.in[i]-1)*w.strides[i] + outPad[i] + w.span(i)
		target := int64(-1)
		switch {
		case outShape != nil:
			target = outShape[i]
		case ap == "SAME_UPPER" || ap == "SAME_LOWER":
			target = w.in[i] * w.strides[i]
		}
		if target >= 0 {
			total := max(0, full-target)
			w.padBegin[i], w.padEnd[i] = total-total/2, total/2
			if ap == "SAME_UPPER" {
				w.padBegin[i], w.padEnd[i] = w.padEnd[i], w.padBegin[i]
			}
		}
		w.out[i] = full - w.padBegin[i] - w.padEnd[i]
		if outShape != nil {
			w.out[i] = outShape[i]
		}
		if w.out[i] <= 0 || w.padBegin[i] < 0 || w.padEnd[i] < 0 {
			return nil, c.errorf("output size %d or pads %d, %d on spatial axis %d are not positive", w.out[i], w.padBegin[i], w.padEnd[i], i)
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	return w, nil
}

// https://onnx.ai/onnx/operators/onnx__ConvTranspose.html
func inferConvTranspose(c *nodeCtx) error {
	k := convKernel(c)
	if c.err != nil {
		return nil // weight shape unknown: leave the output unknown
	}
	w, err := readConvTranspose(c, k)
	if err != nil {
		return err
	}
	channels := c.staticIn(1)[1] * c.attrInt("group", 1)
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: w.outShape(c.shapeIn(0)[0], known(channels)), hasShape: true})
	return nil
}

// adjoint returns the convolution that ConvTranspose geometry w is the
// transpose of, mapping the ConvTranspose's output back to its input size,
// and the length of each spatial axis of the output that it reads: output
// element o = i·stride + j·dilation − padBegin collects input element i
// through kernel offset j, so only the first (in−1)·stride + span −
// padBegin elements are reached. Rows beyond those (output_padding, a large
// output_shape) are cropped; if the output is shorter, the convolution pads
// the end.
func (w *window) adjoint() (conv *window, reach []int64) {
	r := len(w.in)
	conv = &window{in: make([]int64, r), out: w.in, kernel: w.kernel, strides: w.strides, dilations: w.dilations,
		padBegin: w.padBegin, padEnd: make([]int64, r)}
	reach = make([]int64, r)
	for i := range r {
		reach[i] = (w.in[i]-1)*w.strides[i] + w.span(i) - w.padBegin[i]
		conv.in[i] = min(reach[i], w.out[i])
		conv.padEnd[i] = reach[i] - conv.in[i]
	}
	return conv, reach
}

// gradConvTranspose: a ConvTranspose is the transpose of the convolution
// (same weight, strides, dilations, group and begin pads) that maps its
// output back to its input size. So the input gradient is that convolution
// applied to gY (with the class axis folded into the batch), the weight
// gradient is that convolution's weight gradient with gY as its input and
// X as its output's gradient, and the bias gradient sums gY over all but
// the channel axis.
func gradConvTranspose(c *gradCtx) error {
	k := convKernel(&c.nodeCtx)
	if c.err != nil {
		return c.err
	}
	t, err := readConvTranspose(&c.nodeCtx, k)
	if err != nil {
		return err
	}
	group := c.attrInt("group", 1)
	r := len(t.in)
	w, reach := t.adjoint()
	gy := c.foldLead(c.gy[0], c.output(0))
	var axes, ends []int64
	for i := range r {
		if reach[i] < t.out[i] {
			axes, ends = append(axes, int64(2+i)), append(ends, reach[i])
		}
	}
	if len(axes) > 0 {
		gy = c.op("Slice", []string{gy, c.gr.ints(make([]int64, len(axes))...), c.gr.ints(ends...), c.gr.ints(axes...)})
	}
	if c.need[0] {
		gx := c.op("Conv", []string{gy, c.input(1)}, attrInts("kernel_shape", w.kernel), attrInts("strides", w.strides),
			attrInts("dilations", w.dilations), attrInts("pads", w.pads()), attrInt("group", group))
		c.setGrad(0, c.reshapeLike(gx, c.input(0)))
	}
	if c.need[1] {
		if c.lead {
			return c.errorf("the weight gradient is not available in Jacobian mode")
		}
		c.setGrad(1, c.convWeightGrad(w, group, convOperands{x: gy, gy: c.input(0), wdims: c.staticIn(1)}))
	}
	if c.input(2) != "" && c.need[2] {
		c.setGrad(2, c.reduceAllBut(c.gy[0], r+2, 1))
	}
	return nil
}

// https://onnx.ai/onnx/operators/onnx__MaxPool.html
func inferMaxPool(c *nodeCtx) error {
	w, err := readWindow(c, nil)
	if err != nil {
		return err
	}
	x := c.shapeIn(0)
	s := w.outShape(x[0], x[1])
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: s, hasShape: true})
	c.setOut(1, &tensorInfo{elem: onnxpb.TensorProto_INT64, shape: s, hasShape: true})
	return nil
}

// gradMaxPool routes gY to each window's argmax. Windows that tile the
// input exactly get their argmax indices from the input alone
// (poolIndices), so the forward MaxPool keeps onnxruntime's fast kernel;
// other windows ask the forward MaxPool for its Indices output (flat
// indices into N·C·H·W). MaxUnpool then places gY at the indices where the
// windows are disjoint, and a scatter-add, right for overlapping windows
// too, elsewhere.
func gradMaxPool(c *gradCtx) error {
	if c.attrInt("storage_order", 0) != 0 {
		return c.errorf("storage_order=1 is not supported")
	}
	w, err := readWindow(&c.nodeCtx, nil)
	if err != nil {
		return err
	}
	if w.tiles() && c.gradElem() == onnxpb.TensorProto_FLOAT { // MaxUnpool is float-only in onnxruntime
		if idx := c.poolIndices(w); idx != "" {
			c.setGrad(0, c.maxUnpool(idx, w))
			return nil
		}
	}
	idx := c.output(1)
	if idx == "" {
		idx = c.gr.fresh(c.output(0) + "_indices")
		for len(c.n.Output) < 2 {
			c.n.Output = append(c.n.Output, "")
		}
		c.n.Output[1] = idx
	}
	if w.unpoolable() && c.gradElem() == onnxpb.TensorProto_FLOAT { // MaxUnpool is float-only in onnxruntime
		c.setGrad(0, c.maxUnpool(idx, w))
		return nil
	}
	lead := c.gr.ints(1)
	g := c.gy[0]
	if c.lead {
		lead = c.op("Slice", []string{c.op("Shape", []string{g}), c.gr.ints(0), c.gr.ints(1)})
	}
	g2 := c.op("Reshape", []string{g, c.op("Concat", []string{lead, c.gr.ints(-1)}, attrInt("axis", 0))})
	i2 := c.op("Expand", []string{c.op("Reshape", []string{idx, c.gr.ints(1, -1)}), c.op("Shape", []string{g2})})
	size := c.op("Reshape", []string{c.op("Size", []string{c.input(0)}), c.gr.ints(1)})
	zeros := c.op("ConstantOfShape", []string{c.op("Concat", []string{lead, size}, attrInt("axis", 0))},
		attrTensor("value", newTensorFloat("", c.gradElem(), []int64{1}, []float64{0})))
	c.gr.needOpset(16)
	s := c.op("ScatterElements", []string{zeros, i2, g2}, attrInt("axis", 1), attrString("reduction", "add"))
	c.setGrad(0, c.reshapeLike(s, c.input(0)))
	return nil
}

// unpoolable reports whether MaxUnpool can invert the pooling: no two
// windows share an input element (kernel = stride, no dilation), so each
// input receives at most one output's gradient, and the windows do not reach
// past the input's end (MaxUnpool refuses an output smaller than they span).
func (w *window) unpoolable() bool {
	for i := range w.kernel {
		if w.kernel[i] != w.strides[i] || w.dilations[i] != 1 || (w.out[i]-1)*w.strides[i]+w.kernel[i]-w.padBegin[i]-w.padEnd[i] > w.in[i] {
			return false
		}
	}
	return true
}

// tiles reports whether the windows cover the input exactly, each element
// in one window: kernel = stride, no dilation, no padding and as many
// windows as fit (so neither floor nor ceil mode drops or pads an element).
func (w *window) tiles() bool {
	for i := range w.kernel {
		if w.kernel[i] != w.strides[i] || w.dilations[i] != 1 || w.padBegin[i] != 0 || w.padEnd[i] != 0 || w.out[i]*w.kernel[i] != w.in[i] {
			return false
		}
	}
	return true
}

// poolIndices computes, for windows that tile the input (w.tiles) and a
// static channel count, what MaxPool's Indices output holds — the flat
// index into N·C·H·W… of each window's first maximal element in row-major
// window order, as onnxruntime's Indices and PyTorch pick it — without
// asking MaxPool for it, so that the forward MaxPool keeps onnxruntime's
// fast kernel (measured 19× faster than the one that gives Indices). X [N,
// C, o₁·k₁, …] is viewed as [N, C, o₁, k₁, …], each window's elements are
// moved to the last axis, ArgMax picks the first maximum, and a table of
// in-image offsets, each window's start and each image's start turn its
// position in the window into the flat index. It returns "" where C is not
// static.
func (c *gradCtx) poolIndices(w *window) string {
	x := c.shapeIn(0)
	if c.err != nil || !x[1].Known() {
		return ""
	}
	r := len(w.kernel)
	view := []int64{0, 0} // Reshape's 0 keeps N and C
	perm := []int64{0, 1}
	windows := []int64{0, 0}
	pitch := make([]int64, r) // elements between neighbours along spatial axis i
	var plane int64 = 1       // elements per channel
	for i := r - 1; i >= 0; i-- {
		pitch[i] = plane
		plane *= w.in[i]
	}
	var size int64 = 1
	for i := range r {
		view = append(view, w.out[i], w.kernel[i])
		perm = append(perm, int64(2+2*i))
		windows = append(windows, w.out[i])
		size *= w.kernel[i]
	}
	for i := range r {
		perm = append(perm, int64(3+2*i))
	}
	// offsets[a]: the in-image offset of element a of a window (row-major
	// over the kernel); starts[c, o…]: where channel c's window o starts.
	offsets := make([]int64, size)
	for a := range offsets {
		rest := int64(a)
		for i := r - 1; i >= 0; i-- {
			offsets[a] += rest % w.kernel[i] * pitch[i]
			rest /= w.kernel[i]
		}
	}
	starts := []int64{0}
	for i := range r {
		next := make([]int64, 0, int64(len(starts))*w.out[i])
		for _, s := range starts {
			for o := range w.out[i] {
				next = append(next, s+o*w.kernel[i]*pitch[i])
			}
		}
		starts = next
	}
	channels := make([]int64, 0, x[1].Value*int64(len(starts)))
	for ch := range x[1].Value {
		for _, s := range starts {
			channels = append(channels, ch*plane+s)
		}
	}
	in := c.op("Reshape", []string{c.input(0), c.gr.ints(view...)})
	in = c.op("Transpose", []string{in}, attrInts("perm", perm))
	in = c.op("Reshape", []string{in, c.gr.ints(slices.Concat(windows, []int64{size})...)})
	first := c.op("ArgMax", []string{in}, attrInt("axis", -1), attrInt("keepdims", 0))
	idx := c.op("Gather", []string{c.gr.ints(offsets...), first}, attrInt("axis", 0))
	startShape := slices.Concat([]int64{x[1].Value}, w.out)
	idx = c.op("Add", []string{idx, c.gr.addInitializer("grad/const", newTensorInt64("", startShape, channels))})
	n := c.op("Squeeze", []string{c.op("Slice", []string{c.op("Shape", []string{c.input(0)}), c.gr.ints(0), c.gr.ints(1)}), c.gr.ints(0)})
	rows := c.op("Range", []string{c.gr.constInts([]int64{0}, true), n, c.gr.constInts([]int64{1}, true)})
	batchShape := make([]int64, r+2)
	for i := range batchShape {
		batchShape[i] = 1
	}
	batchShape[0] = -1
	return c.op("Add", []string{idx, c.op("Reshape", []string{c.op("Mul", []string{rows, c.gr.constInts([]int64{x[1].Value * plane}, true)}), c.gr.ints(batchShape...)})})
}

// maxUnpool is the fast MaxPool gradient for disjoint windows: MaxUnpool
// places each gY at its argmax (measured 10× faster than the scatter-add in
// onnxruntime 1.30, see ../shared/onnxgrad-notes.md). In Jacobian mode the
// class axis is folded into the batch, and the flat indices, which include
// the batch offset n·C·H·W, are offset by l·N·C·H·W for class row l.
func (c *gradCtx) maxUnpool(idx string, w *window) string {
	x := c.input(0)
	g := c.gy[0]
	outShape := c.op("Shape", []string{x})
	if c.lead {
		l := c.op("Slice", []string{c.op("Shape", []string{g}), c.gr.ints(0), c.gr.ints(1)})
		rows := c.op("Range", []string{c.gr.constInts([]int64{0}, true), c.op("Squeeze", []string{l, c.gr.ints(0)}), c.gr.constInts([]int64{1}, true)})
		offShape := make([]int64, len(c.shapeIn(0))+1)
		for i := range offShape {
			offShape[i] = 1
		}
		offShape[0] = -1
		offsets := c.op("Reshape", []string{c.op("Mul", []string{rows, c.op("Size", []string{x})}), c.gr.ints(offShape...)})
		idx = c.foldLead(c.op("Add", []string{c.op("Unsqueeze", []string{idx, c.gr.ints(0)}), offsets}), c.output(0))
		g = c.foldLead(g, c.output(0))
		batch := c.op("Slice", []string{c.op("Shape", []string{g}), c.gr.ints(0), c.gr.ints(1)})
		rest := c.op("Slice", []string{outShape, c.gr.ints(1), c.gr.ints(math.MaxInt64)})
		outShape = c.op("Concat", []string{batch, rest}, attrInt("axis", 0))
	}
	return c.reshapeLike(c.op("MaxUnpool", []string{g, idx, outShape}, attrInts("kernel_shape", w.kernel), attrInts("strides", w.strides), attrInts("pads", w.pads())), x)
}

// https://onnx.ai/onnx/operators/onnx__AveragePool.html
func inferAveragePool(c *nodeCtx) error {
	w, err := readWindow(c, nil)
	if err != nil {
		return err
	}
	x := c.shapeIn(0)
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: w.outShape(x[0], x[1]), hasShape: true})
	return nil
}

// divisors returns, per output position, the number AveragePool divides the
// window's sum by: in-bounds elements (count_include_pad=0) or elements
// inside the padded input (count_include_pad=1). The window is a box, so the
// count is a product of per-axis counts.
func (w *window) divisors(includePad bool) []float64 {
	cnt := []float64{1}
	for i := range w.in {
		per := make([]float64, w.out[i])
		for o := range per {
			start := int64(o)*w.strides[i] - w.padBegin[i]
			end := start + w.kernel[i]
			if includePad {
				per[o] = float64(min(end, w.in[i]+w.padEnd[i]) - start)
			} else {
				per[o] = float64(min(end, w.in[i]) - max(start, 0))
			}
		}
		next := make([]float64, 0, len(cnt)*len(per))
		for _, a := range cnt {
			for _, b := range per {
				next = append(next, a*b)
			}
		}
		cnt = next
	}
	return cnt
}

// gradAveragePool divides gY by each window's divisor and spreads it over
// the window with a ConvTranspose by a kernel of ones, one channel at a time
// (channels folded into the batch), then crops or zero-pads the end of each
// spatial axis back to the input size.
func gradAveragePool(c *gradCtx) error {
	w, err := readWindow(&c.nodeCtx, nil)
	if err != nil {
		return err
	}
	for _, d := range w.dilations {
		if d != 1 {
			return c.errorf("dilated AveragePool is not supported")
		}
	}
	r := len(w.in)
	elem := c.gradElem()
	if tooLarge(w.out...) || tooLarge(w.kernel...) {
		return c.errorf("pooling window or output too large")
	}
	div := c.gr.constFloat(elem, w.out, w.divisors(c.attrInt("count_include_pad", 0) != 0))
	g := c.op("Div", []string{c.gy[0], div})
	g = c.op("Reshape", []string{g, c.gr.ints(append([]int64{-1, 1}, w.out...)...)})
	kdims := append([]int64{1, 1}, w.kernel...)
	n := int64(1)
	for _, k := range w.kernel {
		n *= k
	}
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = 1
	}
	kernel := c.gr.constFloat(elem, kdims, vals)
	pads := append(append([]int64{}, w.padBegin...), make([]int64, r)...)
	g = c.op("ConvTranspose", []string{g, kernel}, attrInts("kernel_shape", w.kernel), attrInts("strides", w.strides), attrInts("pads", pads))
	var cropAxes, cropEnds []int64
	padEnd := make([]int64, 2*(r+2))
	padded := false
	for i := range r {
		got := (w.out[i]-1)*w.strides[i] + w.kernel[i] - w.padBegin[i]
		switch {
		case got > w.in[i]:
			cropAxes = append(cropAxes, int64(2+i))
			cropEnds = append(cropEnds, w.in[i])
		case got < w.in[i]:
			padEnd[r+2+2+i] = w.in[i] - got
			padded = true
		}
	}
	if len(cropAxes) > 0 {
		g = c.op("Slice", []string{g, c.gr.ints(make([]int64, len(cropAxes))...), c.gr.ints(cropEnds...), c.gr.ints(cropAxes...)})
	}
	if padded {
		g = c.op("Pad", []string{g, c.gr.ints(padEnd...)})
	}
	c.setGrad(0, c.reshapeLike(g, c.input(0)))
	return nil
}

// https://onnx.ai/onnx/operators/onnx__GlobalAveragePool.html
func inferGlobalPool(c *nodeCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		c.err = nil
		return nil
	}
	s := Shape{x[0], x[1]}
	for range x[2:] {
		s = append(s, known(1))
	}
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: s, hasShape: true})
	return nil
}

// gradGlobalAveragePool spreads gY/(H·W) over the spatial axes.
func gradGlobalAveragePool(c *gradCtx) error {
	x := c.shapeIn(0)
	if c.err != nil {
		return c.err
	}
	area := 1.0
	for _, d := range x[2:] {
		if !d.Known() {
			return c.unknownf("spatial size %s is not static", d)
		}
		area *= float64(d.Value)
	}
	g := c.op("Div", []string{c.gy[0], c.scalar(area)})
	c.setGrad(0, c.op("Expand", []string{g, c.op("Shape", []string{c.input(0)})}))
	return nil
}

// String describes the window, for error messages and tests.
func (w *window) String() string {
	return fmt.Sprintf("in %v out %v kernel %v strides %v dilations %v pads %v/%v", w.in, w.out, w.kernel, w.strides, w.dilations, w.padBegin, w.padEnd)
}

// swapPerm is the identity permutation of rank axes with a and b swapped.
func swapPerm(rank, a, b int) []int64 {
	p := make([]int64, rank)
	for i := range p {
		p[i] = int64(i)
	}
	p[a], p[b] = p[b], p[a]
	return p
}
