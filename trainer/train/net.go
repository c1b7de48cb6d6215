package train

import (
	"errors"
	"fmt"

	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
	"github.com/marginaudit/marginaudit/trainer/model"
)

// net runs a model in onnxruntime: forward+backward on the training graph,
// forward only on the inference graph, both with the weights fed as inputs
// straight from the model's Param.Data slices (no copy), so that updates made
// in Go are seen by the next run. It is not safe for concurrent use.
type net struct {
	m       *model.Model
	k, size int // classes, values per image

	train, eval *ort.Session

	// Inputs and outputs of the training session, in session order; the
	// weight inputs and gradient outputs are bound once, the others per run.
	tIn, tOut          []ort.Value
	tX, tTarget, tSeed int
	tLogits, tLoss     int
	grads              [][]float32 // per Param, bound to tOut
	lossBuf, seed      []float32

	eIn, eOut []ort.Value
	eX        int
}

// newNet builds the training graph (model.LossGraph differentiated by onnxgrad
// with respect to every weight input) and the inference graph of m, and
// opens a session on each.
func newNet(m *model.Model, threads int) (_ *net, err error) {
	n := &net{m: m, k: m.Classes, size: m.C * m.H * m.W, lossBuf: make([]float32, 1), seed: []float32{1}}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
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
	// A step alternates between this session and the attack's (adversarial
	// training): spinning pool threads of one would take the cores of the
	// next, so idle threads sleep (bench/train/README.md measures it).
	opts := ort.SessionOptions{Threads: threads, NoSpinning: true}
	if n.train, err = open(res.Model, opts); err != nil {
		return nil, fmt.Errorf("train: training graph: %w", err)
	}
	if n.eval, err = open(m.Graph(model.AsInputs), opts); err != nil {
		return nil, fmt.Errorf("train: inference graph: %w", err)
	}

	n.tX, n.tTarget, n.tSeed = -1, -1, -1
	n.tIn = make([]ort.Value, len(n.train.Inputs()))
	for i, in := range n.train.Inputs() {
		switch p := byName[in.Name]; {
		case p != nil:
			n.tIn[i] = ort.NewValue(p.Data, p.Dims...)
		case in.Name == model.InputName:
			n.tX = i
		case in.Name == model.TargetName:
			n.tTarget = i
		case in.Name == res.Seed:
			n.tSeed = i
			n.tIn[i] = ort.NewValue(n.seed, 1)
		default:
			return nil, fmt.Errorf("train: training graph has an unexpected input %q", in.Name)
		}
	}
	gradOf := map[string]*model.Param{}
	for i, g := range res.Grads {
		gradOf[g] = byName[res.WRT[i]]
	}
	n.tLogits, n.tLoss = -1, -1
	n.tOut = make([]ort.Value, len(n.train.Outputs()))
	n.grads = make([][]float32, len(m.Params))
	for i, out := range n.train.Outputs() {
		switch p := gradOf[out.Name]; {
		case p != nil:
			g := make([]float32, len(p.Data))
			for j, q := range m.Params {
				if q == p {
					n.grads[j] = g
				}
			}
			n.tOut[i] = ort.NewValue(g, p.Dims...)
		case out.Name == model.OutputName:
			n.tLogits = i
		case out.Name == model.LossName:
			n.tLoss = i
			n.tOut[i] = ort.NewValue(n.lossBuf, 1)
		default:
			return nil, fmt.Errorf("train: training graph has an unexpected output %q", out.Name)
		}
	}
	if n.tX < 0 || n.tTarget < 0 || n.tSeed < 0 || n.tLogits < 0 || n.tLoss < 0 {
		return nil, errors.New("train: training graph lacks an input or output")
	}
	for i, g := range n.grads {
		if g == nil {
			return nil, fmt.Errorf("train: no gradient for %q", m.Params[i].Name)
		}
	}

	n.eX = -1
	n.eIn = make([]ort.Value, len(n.eval.Inputs()))
	for i, in := range n.eval.Inputs() {
		if p := byName[in.Name]; p != nil {
			n.eIn[i] = ort.NewValue(p.Data, p.Dims...)
		} else if in.Name == model.InputName {
			n.eX = i
		}
	}
	if n.eX < 0 || len(n.eval.Outputs()) != 1 {
		return nil, errors.New("train: inference graph has an unexpected signature")
	}
	n.eOut = make([]ort.Value, 1)
	return n, nil
}

// open encodes m and opens a session on it.
func open(m *onnxpb.ModelProto, opts ort.SessionOptions) (*ort.Session, error) {
	data, err := onnxgrad.Encode(m)
	if err != nil {
		return nil, err
	}
	return ort.NewSession(data, opts)
}

// step runs forward and backward on the b images in x (b·size values) with
// target distributions target (b·K values), leaving the gradient of the mean
// loss in n.grads and the logits in logits (b·K values). It returns the loss.
func (n *net) step(x, target, logits []float32, b int) (float64, error) {
	n.tIn[n.tX] = ort.NewValue(x[:b*n.size], int64(b), int64(n.m.C), int64(n.m.H), int64(n.m.W))
	n.tIn[n.tTarget] = ort.NewValue(target[:b*n.k], int64(b), int64(n.k))
	n.tOut[n.tLogits] = ort.NewValue(logits[:b*n.k], int64(b), int64(n.k))
	if err := n.train.Run(n.tIn, n.tOut); err != nil {
		return 0, fmt.Errorf("train: training step: %w", err)
	}
	return float64(n.lossBuf[0]), nil
}

// forward computes the logits (b·K values) of the b images in x.
func (n *net) forward(x, logits []float32, b int) error {
	n.eIn[n.eX] = ort.NewValue(x[:b*n.size], int64(b), int64(n.m.C), int64(n.m.H), int64(n.m.W))
	n.eOut[0] = ort.NewValue(logits[:b*n.k], int64(b), int64(n.k))
	if err := n.eval.Run(n.eIn, n.eOut); err != nil {
		return fmt.Errorf("train: forward pass: %w", err)
	}
	return nil
}

// Close closes both sessions.
func (n *net) Close() error {
	return errors.Join(n.train.Close(), n.eval.Close())
}
