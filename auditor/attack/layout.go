package attack

import (
	"fmt"
	"slices"
	"strings"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// Layout says where the channels of an image are: NCHW models take
// batches [N, C, H, W], NHWC models [N, H, W, C]. It decides the axis that
// a per-channel normalisation applies to.
type Layout int

const (
	// LayoutAuto detects the layout from the model: NHWC when its image
	// input has rank 4 and every node reading it is a Transpose with perm
	// [0, 3, 1, 2] (what TensorFlow/Keras exporters and PyTorch's
	// x.permute(0, 3, 1, 2) write), NCHW otherwise.
	LayoutAuto Layout = iota
	// NCHW: channels on the first axis after the batch.
	NCHW
	// NHWC: channels on the last axis.
	NHWC
)

// String returns "auto", "NCHW" or "NHWC".
func (l Layout) String() string {
	switch l {
	case LayoutAuto:
		return "auto"
	case NCHW:
		return "NCHW"
	case NHWC:
		return "NHWC"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// ParseLayout reads "auto" (or ""), "nchw" or "nhwc", in any case.
func ParseLayout(s string) (Layout, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return LayoutAuto, nil
	case "nchw":
		return NCHW, nil
	case "nhwc":
		return NHWC, nil
	}
	return LayoutAuto, fmt.Errorf("layout %q: want auto, nchw or nhwc", s)
}

// ChannelAxis returns the axis of the channels in an image with rank axes
// (the dimensions after the batch): the last for NHWC, else the first.
func (l Layout) ChannelAxis(rank int) int {
	if l == NHWC {
		return rank - 1
	}
	return 0
}

// nhwcToNCHW is the perm of the Transpose that makes an NHWC model's input
// NCHW.
var nhwcToNCHW = []int64{0, 3, 1, 2}

// inputLayout returns want, or for LayoutAuto the layout detected for the
// graph input in, whose image size is fixed when given.
func inputLayout(g *onnxpb.GraphProto, in *onnxpb.ValueInfoProto, fixed []int64, want Layout) (Layout, error) {
	switch want {
	case NCHW, NHWC:
		return want, nil
	case LayoutAuto:
	default:
		return want, fmt.Errorf("unknown layout %v", want)
	}
	rank := len(fixed) + 1
	if shape := in.GetType().GetTensorType().GetShape(); shape != nil {
		rank = len(shape.GetDim())
	}
	if rank != 4 {
		return NCHW, nil
	}
	readers := 0
	for _, n := range g.GetNode() {
		if !slices.Contains(n.GetInput(), in.GetName()) {
			continue
		}
		readers++
		if n.GetOpType() != "Transpose" || !slices.Equal(intsAttr(n, "perm"), nhwcToNCHW) {
			return NCHW, nil
		}
	}
	if readers == 0 {
		return NCHW, nil
	}
	return NHWC, nil
}

// intsAttr returns the ints of node n's attribute name, or nil.
func intsAttr(n *onnxpb.NodeProto, name string) []int64 {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a.GetInts()
		}
	}
	return nil
}

// ConvertLayout returns the images in x, each of shape sample in layout
// from, rearranged into layout to, and the shape of an image there. Images
// of rank 3 ([C, H, W] or [H, W, C]) are transposed into a new slice; other
// images, or images already in layout to, are x itself with sample. from
// and to are NCHW or NHWC; len(x) is a multiple of the image size.
func ConvertLayout(x []float32, sample []int64, from, to Layout) ([]float32, []int64) {
	if from == to || len(sample) != 3 {
		return x, sample
	}
	// Going from NCHW to NHWC, image [a, b, c] = [C, H, W] becomes
	// [b, c, a]; going back, [a, b, c] = [H, W, C] becomes [c, a, b].
	a, b, c := int(sample[0]), int(sample[1]), int(sample[2])
	d := a * b * c
	out := make([]float32, len(x))
	for base := 0; base < len(x); base += d {
		src, dst := x[base:base+d], out[base:base+d]
		for i := range a {
			for j := range b {
				for k := range c {
					v := src[(i*b+j)*c+k]
					if to == NHWC {
						dst[(j*c+k)*a+i] = v
					} else {
						dst[(k*a+i)*b+j] = v
					}
				}
			}
		}
	}
	if to == NHWC {
		return out, []int64{sample[1], sample[2], sample[0]}
	}
	return out, []int64{sample[2], sample[0], sample[1]}
}

// describeInput formats the input of images of shape sample, as in
// [N, 32, 32, 3] (NHWC); the layout is named for images of rank 3 only.
func describeInput(sample []int64, layout Layout) string {
	s := "[N, " + FormatSizes(sample)[1:]
	if len(sample) == 3 {
		s += " (" + layout.String() + ")"
	}
	return s
}

// ImageSize returns the number of values in an image of the given shape
// (the input's dimensions after the batch dimension).
func ImageSize(shape []int64) int {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	return n
}
