package train

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/internal/parallel"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
	"github.com/marginaudit/marginaudit/trainer/model"
)

// microBatch is the most images of one onnxruntime run. A training step on
// b images cuts them into ⌈b/microBatch⌉ parts, microBatch images each but
// the last (part p holds images p·microBatch onwards), a rule that does not
// depend on the thread count; evaluation cuts its batches the same way.
// Parts of 64 cost about as much per image in onnxruntime as whole batches
// of 128 (bench/train/README.md), and two single-threaded runs at once
// beat one run on two threads.
const microBatch = 64

// net runs a model in onnxruntime: forward+backward on the training graph,
// forward only on the inference graph, both with the weights fed as inputs
// straight from the model's Param.Data slices (no copy), so that updates made
// in Go are seen by the next run. The parts of a batch (see microBatch) run
// on up to workers goroutines at once, sharing the two single-threaded
// sessions (onnxruntime runs a session concurrently; one session per worker
// measured no faster). It is not safe for concurrent use.
type net struct {
	m       *model.Model
	k, size int // classes, values per image
	workers int

	train, eval *ort.Session

	// Indices of the per-run inputs and outputs in the training session's
	// order.
	tX, tTarget, tLogits int
	parts                []*part     // one per part of the largest batch
	grads                [][]float32 // the batch's gradient per Param: parts[0]'s

	eIn, eOut [][]ort.Value // per worker, in session order
	eX        int
}

// part is one part of a training step: the inputs and outputs of its run in
// session order, the weight inputs, its gradient outputs (already scaled by
// its share of the batch through the seed) and its mean loss bound once,
// its images, targets and logits per run.
type part struct {
	in, out    []ort.Value
	grads      [][]float32 // per Param
	loss, seed []float32
}

// newNet builds the training graph (model.LossGraph differentiated by onnxgrad
// with respect to every weight input) and the inference graph of m, and
// opens sessions on them for training batches of at most batch images and
// evaluation batches of at most evalBatch, run on threads threads in all (0:
// one per core).
func newNet(m *model.Model, threads, batch, evalBatch int) (_ *net, err error) {
	n := &net{m: m, k: m.Classes, size: m.C * m.H * m.W}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	trainParts := partsOf(batch)
	n.workers = max(1, min(threads, max(trainParts, partsOf(evalBatch))))

	wrt := make([]string, len(m.Params))
	byName := map[string]*model.Param{}
	for i, p := range m.Params {
		wrt[i] = p.Name
		byName[p.Name] = p
	}
	res, err := onnxgrad.Build(m.LossGraph(), onnxgrad.Options{Mode: onnxgrad.Params, Output: model.LossName, WRT: wrt, File: "training graph"})
	if err != nil {
		return nil, fmt.Errorf("train: building the training graph: %w", err)
	}
	// One thread per run: the workers are the parallelism. A step alternates
	// between these sessions and the attack's (adversarial training):
	// spinning pool threads of one would take the cores of the next, so idle
	// threads sleep (bench/train/README.md measures it).
	opts := ort.SessionOptions{Threads: 1, NoSpinning: true}
	if n.train, err = open(res.Model, opts); err != nil {
		return nil, fmt.Errorf("train: training graph: %w", err)
	}
	if n.eval, err = open(m.Graph(model.AsInputs), opts); err != nil {
		return nil, fmt.Errorf("train: inference graph: %w", err)
	}

	if err := n.bindTraining(res, byName, trainParts); err != nil {
		return nil, err
	}
	return n, n.bindEval(byName)
}

// open encodes m and opens a session on it.
func open(m *onnxpb.ModelProto, opts ort.SessionOptions) (*ort.Session, error) {
	data, err := onnxgrad.Encode(m)
	if err != nil {
		return nil, err
	}
	return ort.NewSession(data, opts)
}

// partsOf returns the number of parts of a batch of b images.
func partsOf(b int) int { return (b + microBatch - 1) / microBatch }

// bindTraining finds the training session's inputs and outputs and makes
// the given number of parts, the first of which writes its gradient into
// n.grads.
func (n *net) bindTraining(res *onnxgrad.Result, byName map[string]*model.Param, parts int) error {
	s, m := n.train, n.m
	gradOf := map[string]int{}
	for i, g := range res.Grads {
		for j, p := range m.Params {
			if p == byName[res.WRT[i]] {
				gradOf[g] = j
			}
		}
	}
	tSeed, tLoss := -1, -1
	n.tX, n.tTarget, n.tLogits = -1, -1, -1
	for i, in := range s.Inputs() {
		switch in.Name {
		case model.InputName:
			n.tX = i
		case model.TargetName:
			n.tTarget = i
		case res.Seed:
			tSeed = i
		default:
			if byName[in.Name] == nil {
				return fmt.Errorf("train: training graph has an unexpected input %q", in.Name)
			}
		}
	}
	for i, out := range s.Outputs() {
		_, isGrad := gradOf[out.Name]
		switch {
		case isGrad:
		case out.Name == model.OutputName:
			n.tLogits = i
		case out.Name == model.LossName:
			tLoss = i
		default:
			return fmt.Errorf("train: training graph has an unexpected output %q", out.Name)
		}
	}
	if n.tX < 0 || n.tTarget < 0 || tSeed < 0 || n.tLogits < 0 || tLoss < 0 {
		return errors.New("train: training graph lacks an input or output")
	}
	if len(gradOf) != len(m.Params) {
		return fmt.Errorf("train: the training graph has %d gradients for %d weights", len(gradOf), len(m.Params))
	}

	for range parts {
		pt := &part{in: make([]ort.Value, len(s.Inputs())), out: make([]ort.Value, len(s.Outputs())),
			grads: make([][]float32, len(m.Params)), loss: make([]float32, 1), seed: make([]float32, 1)}
		for i, in := range s.Inputs() {
			if p := byName[in.Name]; p != nil {
				pt.in[i] = ort.NewValue(p.Data, p.Dims...)
			}
		}
		pt.in[tSeed] = ort.NewValue(pt.seed, 1)
		for i, out := range s.Outputs() {
			if j, ok := gradOf[out.Name]; ok {
				p := m.Params[j]
				pt.grads[j] = make([]float32, len(p.Data))
				pt.out[i] = ort.NewValue(pt.grads[j], p.Dims...)
			}
		}
		pt.out[tLoss] = ort.NewValue(pt.loss, 1)
		n.parts = append(n.parts, pt)
	}
	n.grads = n.parts[0].grads
	return nil
}

// bindEval finds the inference session's inputs and binds the weights in
// every worker's inputs.
func (n *net) bindEval(byName map[string]*model.Param) error {
	s := n.eval
	n.eX = -1
	for i, in := range s.Inputs() {
		if in.Name == model.InputName {
			n.eX = i
		}
	}
	if n.eX < 0 || len(s.Outputs()) != 1 {
		return errors.New("train: inference graph has an unexpected signature")
	}
	for range n.workers {
		in := make([]ort.Value, len(s.Inputs()))
		for i, t := range s.Inputs() {
			if p := byName[t.Name]; p != nil {
				in[i] = ort.NewValue(p.Data, p.Dims...)
			}
		}
		n.eIn, n.eOut = append(n.eIn, in), append(n.eOut, make([]ort.Value, 1))
	}
	return nil
}

// step runs forward and backward on the b images in x (b·size values) with
// target distributions target (b·K values), leaving the gradient of the mean
// loss in n.grads and the logits in logits (b·K values). It returns the loss.
//
// Each part (see microBatch) of n_p images runs with the seed n_p/b, so its
// gradient outputs hold its share (n_p/b)·∇(its mean loss); n.grads, part
// 0's, then receives the other parts' in order, and the loss is
// Σ (n_p/b)·(mean loss of part p) in float64. The sums run in the same order
// whatever the number of workers, so the results do not depend on it.
func (n *net) step(x, target, logits []float32, b int) (float64, error) {
	err := parallel.Pieces(context.Background(), n.workers, b, microBatch, func(_ context.Context, w, lo, hi int) error {
		pt, c := n.parts[lo/microBatch], hi-lo
		pt.seed[0] = float32(float64(c) / float64(b))
		pt.in[n.tX] = ort.NewValue(x[lo*n.size:hi*n.size], int64(c), int64(n.m.C), int64(n.m.H), int64(n.m.W))
		pt.in[n.tTarget] = ort.NewValue(target[lo*n.k:hi*n.k], int64(c), int64(n.k))
		pt.out[n.tLogits] = ort.NewValue(logits[lo*n.k:hi*n.k], int64(c), int64(n.k))
		return n.train.Run(pt.in, pt.out)
	})
	if err != nil {
		return 0, fmt.Errorf("train: training step: %w", err)
	}
	var loss float64
	for p, pt := range n.parts[:partsOf(b)] {
		loss += float64(pt.loss[0]) * float64(min(b-p*microBatch, microBatch)) / float64(b)
		if p > 0 {
			for j, g := range pt.grads {
				add(n.grads[j], g)
			}
		}
	}
	return loss, nil
}

// add adds src to dst element by element.
func add(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}

// forward computes the logits (b·K values) of the b images in x, in parts
// of microBatch images on the workers.
func (n *net) forward(x, logits []float32, b int) error {
	err := parallel.Pieces(context.Background(), n.workers, b, microBatch, func(_ context.Context, w, lo, hi int) error {
		c := hi - lo
		n.eIn[w][n.eX] = ort.NewValue(x[lo*n.size:hi*n.size], int64(c), int64(n.m.C), int64(n.m.H), int64(n.m.W))
		n.eOut[w][0] = ort.NewValue(logits[lo*n.k:hi*n.k], int64(c), int64(n.k))
		return n.eval.Run(n.eIn[w], n.eOut[w])
	})
	if err != nil {
		return fmt.Errorf("train: forward pass: %w", err)
	}
	return nil
}

// Close closes both sessions.
func (n *net) Close() error {
	return errors.Join(n.train.Close(), n.eval.Close())
}
