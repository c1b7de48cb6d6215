package attack

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// FixedBatch says how a model whose batch dimension is fixed is run. A
// model exported with a fixed batch of B images (torch.onnx.export without
// dynamic_axes, CNTK) holds B in its input's shape and in constants, and
// runs on exactly B images at a time. [SymbolicBatch] makes the batch
// symbolic where the graph allows ([onnxgrad.SymbolicBatch]) and keeps the
// rewrite only if the rewritten model gives the original's outputs on the
// same random images; otherwise the model is fed exactly B images per
// onnxruntime run (the last run padded), which gives the same results,
// slower.
type FixedBatch struct {
	// Size is the fixed batch size B; 0 when the batch is symbolic.
	Size int
	// Rewritten reports whether the batch was made symbolic.
	Rewritten bool
	// Reason says why not, when Size > 0 and not Rewritten.
	Reason string
}

// String describes f for reports: "" for a symbolic batch, else "batch
// fixed at B: rewritten to symbolic" or "batch fixed at B: fed B images per
// run".
func (f FixedBatch) String() string {
	switch {
	case f.Size == 0:
		return ""
	case f.Rewritten:
		return fmt.Sprintf("batch fixed at %d: rewritten to symbolic", f.Size)
	case f.Size == 1:
		return "batch fixed at 1: fed 1 image per run"
	}
	return fmt.Sprintf("batch fixed at %d: fed %d images per run", f.Size, f.Size)
}

// SymbolicBatch returns m, or when m's image input fixes its batch size B,
// how to run it: a rewritten copy with a symbolic batch if the rewrite
// checks out, else m itself, to be fed B images per run. The image input is
// the one input besides initializers and opt.Bound; opt.Output names the
// output compared ("" the first), opt.InputShape the image size where m
// leaves it symbolic, and opt.Lo, opt.Hi the range of the random images
// (the check feeds them to m as they are, without normalisation). Models it
// cannot run or read are returned as they are, with FixedBatch's Reason
// saying why: NewClassifier reports their faults. It returns an error only
// for invalid options.
//
// The check runs m on 2B + 1 random images, B at a time, and the
// rewritten model on all of them in one run and on the first alone, and
// requires equal outputs up to float32 rounding: 1e-4 of each image's
// largest output (at least 1), which the different summation order of
// batched kernels stays far below, and any baked-in batch far above.
func SymbolicBatch(m *onnxpb.ModelProto, opt Options) (*onnxpb.ModelProto, FixedBatch, error) {
	name := modelName(m, opt)
	lo, hi, err := opt.check(name)
	if err != nil {
		return nil, FixedBatch{}, err
	}
	return symbolicBatch(m, name, opt, lo, hi)
}

// symbolicBatch is SymbolicBatch with the options checked.
func symbolicBatch(m *onnxpb.ModelProto, name string, opt Options, lo, hi float32) (*onnxpb.ModelProto, FixedBatch, error) {
	in, sample, b := fixedBatchInput(m, opt)
	if b == 0 {
		return m, FixedBatch{}, nil
	}
	fb := FixedBatch{Size: b}
	bc := &batchCheck{name: name, input: in.GetName(), output: scoredOutput(m.GetGraph(), opt.Output), sample: sample, d: ImageSize(sample), b: b, opt: opt}
	rng := rand.New(rand.NewPCG(uint64(b), 0xba7c))
	bc.x = make([]float32, (2*b+1)*bc.d)
	for i := range bc.x {
		bc.x[i] = lo + (hi-lo)*rng.Float32()
	}
	want, err := bc.outputs(m, bc.x, b)
	if err != nil {
		fb.Reason = err.Error()
		return m, fb, nil
	}
	rw, err := onnxgrad.SymbolicBatch(m, onnxgrad.BatchOptions{Input: in.GetName(), File: name})
	if err != nil {
		fb.Reason = err.Error()
		return m, fb, nil
	}
	if err := bc.compare(rw.Model, want); err != nil {
		fb.Reason = err.Error()
		return m, fb, nil
	}
	fb.Rewritten = true
	return rw.Model, fb, nil
}

// fixedBatchInput returns m's image input (its only input besides
// initializers and opt.Bound), the image's shape (from the model or
// opt.InputShape), and the batch size the input fixes; b is 0 when the
// input does not fix it, or when m is not a model that prepare takes (it
// then reports why).
func fixedBatchInput(m *onnxpb.ModelProto, opt Options) (in *onnxpb.ValueInfoProto, sample []int64, b int) {
	inputs := imageInputs(m.GetGraph(), opt.Bound)
	if len(inputs) != 1 {
		return nil, nil, 0
	}
	in = inputs[0]
	dims := in.GetType().GetTensorType().GetShape().GetDim()
	if len(dims) < 2 || dims[0].GetDimValue() <= 0 || dims[0].GetDimValue() > math.MaxInt32 {
		return nil, nil, 0
	}
	sample, err := imageShape("", in, opt.InputShape, opt.Layout) // errors are reported by prepare
	if err != nil {
		return nil, nil, 0
	}
	return in, sample, int(dims[0].GetDimValue())
}

// batchCheck compares a model with its rewrite on the same random images.
type batchCheck struct {
	name, input, output string
	sample              []int64
	d, b                int
	opt                 Options
	x                   []float32 // 2b + 1 random images
}

// outputs runs m on the images in x, per images at a time (the last run
// takes the last per images), and returns the output's values, per image.
func (bc *batchCheck) outputs(m *onnxpb.ModelProto, x []float32, per int) ([][]float32, error) {
	m = proto.Clone(m).(*onnxpb.ModelProto)
	g := m.GetGraph()
	i := slices.IndexFunc(g.GetOutput(), func(vi *onnxpb.ValueInfoProto) bool { return vi.GetName() == bc.output })
	if i < 0 {
		return nil, fmt.Errorf("no output %q", bc.output)
	}
	g.Output = []*onnxpb.ValueInfoProto{g.GetOutput()[i]}
	data, err := onnxgrad.Encode(m)
	if err != nil {
		return nil, err
	}
	// A rewrite that fails is expected: no error log.
	s, err := ort.NewSession(data, ort.SessionOptions{Threads: bc.opt.Threads, Quiet: true})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	n := len(x) / bc.d
	out := make([][]float32, n)
	for start := 0; start < n; start += per {
		start := min(start, n-per)
		in := make([]ort.Value, len(s.Inputs()))
		for j, t := range s.Inputs() {
			if t.Name == bc.input {
				in[j] = ort.NewValue(x[start*bc.d:(start+per)*bc.d], append([]int64{int64(per)}, bc.sample...)...)
			} else if k := slices.IndexFunc(bc.opt.Bound, func(b BoundInput) bool { return b.Name == t.Name }); k >= 0 {
				in[j] = ort.NewValue(bc.opt.Bound[k].Data, bc.opt.Bound[k].Shape...)
			}
		}
		res := []ort.Value{{}}
		if err := s.Run(in, res); err != nil {
			return nil, fmt.Errorf("running %d images: %w", per, err)
		}
		v := res[0].Float32s()
		if v == nil || len(res[0].Shape) == 0 || res[0].Shape[0] != int64(per) || len(v)%per != 0 {
			return nil, fmt.Errorf("output %q is %v %v for %d images", bc.output, res[0].DataType(), res[0].Shape, per)
		}
		for j := range per {
			out[start+j] = v[j*len(v)/per : (j+1)*len(v)/per]
		}
	}
	return out, nil
}

// compare runs the rewritten model on all the images at once and on the
// first alone, and compares the outputs with want, the original's.
func (bc *batchCheck) compare(m *onnxpb.ModelProto, want [][]float32) error {
	all, err := bc.outputs(m, bc.x, len(bc.x)/bc.d)
	if err != nil {
		return fmt.Errorf("the rewritten model: %w", err)
	}
	first, err := bc.outputs(m, bc.x[:bc.d], 1)
	if err != nil {
		return fmt.Errorf("the rewritten model: %w", err)
	}
	for i, w := range want {
		got := [][]float32{all[i]}
		if i == 0 {
			got = append(got, first[0])
		}
		for _, g := range got {
			if len(g) != len(w) {
				return fmt.Errorf("the rewritten model gives %d values per image, the original %d", len(g), len(w))
			}
			var top float64
			for _, v := range w {
				top = max(top, math.Abs(float64(v)))
			}
			for j, v := range w {
				if e := math.Abs(float64(g[j]) - float64(v)); !(e <= 1e-4*max(top, 1)) {
					return fmt.Errorf("the rewritten model's output %q differs from the original's: image %d, value %d: %v, not %v", bc.output, i, j, g[j], v)
				}
			}
		}
	}
	return nil
}

// declareBatch declares the fixed batch size b as dimension 0 of the
// prepared model's input and output (prepare makes them "N"), so that the
// gradient graphs built from it see the size the model computes with.
func declareBatch(m *onnxpb.ModelProto, input, output string, b int) {
	g := m.GetGraph()
	for _, vi := range append(slices.Clone(g.GetInput()), g.GetOutput()...) {
		if dims := vi.GetType().GetTensorType().GetShape().GetDim(); len(dims) > 0 && (vi.GetName() == input || vi.GetName() == output) {
			dims[0] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(b)}}
		}
	}
}

// rows is a tensor that holds one block of values per image for one run:
// its position among the session's inputs or outputs, the values of n
// images, and its shape after the batch axis.
type rows struct {
	pos  int
	data []float32
	dims []int64
}

// per returns the number of values per image.
func (r rows) per() int { return ImageSize(r.dims) }

// slice returns the rows of images [s, e).
func (r rows) slice(s, e int) rows {
	p := r.per()
	return rows{pos: r.pos, data: r.data[s*p : e*p], dims: r.dims}
}

// run runs session s once per batch on the n images whose inputs and
// outputs are ins and outs (the bound inputs come from s). A model whose
// batch is fixed at B (c.fixed) runs B images at a time; a last, shorter
// run is padded with copies of its last image, whose outputs are dropped.
func (c *Classifier) run(s *graphSession, n int, ins, outs []rows) error {
	b := c.fixed
	if b == 0 {
		return c.runOnce(s, n, ins, outs)
	}
	for start := 0; start < n; start += b {
		m := min(b, n-start)
		in, out := make([]rows, len(ins)), make([]rows, len(outs))
		for i, r := range ins {
			in[i] = r.slice(start, start+m)
			if m < b {
				p := r.per()
				pad := slices.Grow(slices.Clone(in[i].data), (b-m)*p)
				for range b - m {
					pad = append(pad, in[i].data[(m-1)*p:]...)
				}
				in[i].data = pad
			}
		}
		for i, r := range outs {
			out[i] = r.slice(start, start+m)
			if m < b {
				out[i].data = make([]float32, b*r.per())
			}
		}
		if err := c.runOnce(s, b, in, out); err != nil {
			return err
		}
		if m < b {
			for i, r := range outs {
				copy(r.slice(start, start+m).data, out[i].data)
			}
		}
	}
	return nil
}

// runOnce is one run of session s on n images.
func (c *Classifier) runOnce(s *graphSession, n int, ins, outs []rows) error {
	in, out := s.inputs(), make([]ort.Value, s.nOut)
	for _, r := range ins {
		in[r.pos] = ort.NewValue(r.data, append([]int64{int64(n)}, r.dims...)...)
	}
	for _, r := range outs {
		out[r.pos] = ort.NewValue(r.data, append([]int64{int64(n)}, r.dims...)...)
	}
	if err := s.s.Run(in, out); err != nil {
		return fmt.Errorf("attack: %s: running the %s: %w", c.name, s.what, err)
	}
	return nil
}
