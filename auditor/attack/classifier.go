package attack

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/internal/parallel"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// ScoreKind says what a classifier's output holds.
type ScoreKind int

const (
	// DetectScores decides from the graph and from a probe run on random
	// inputs: a final Softmax that nothing else reads is replaced by a
	// LogSoftmax; otherwise outputs whose rows are all non-negative and sum
	// to 1 are probabilities, and their log is taken (see [ScoreSource]).
	DetectScores ScoreKind = iota
	// LogitScores: the outputs are logits (or log-probabilities), used as
	// they are, even after a Softmax.
	LogitScores
	// ProbabilityScores: the outputs are probabilities; a final Softmax is
	// replaced by a LogSoftmax, else their log is taken.
	ProbabilityScores
)

// Options configure a [Classifier].
type Options struct {
	// Name names the model in errors, usually its file name.
	Name string
	// Output is the graph output holding the class scores [N, K]; "" means
	// the first. Other outputs are dropped from every graph.
	Output string
	// Threads is how many threads the classifier's work may use in all:
	// the attacks and [Classifier.Logits] spread their images over Workers
	// goroutines, each of whose onnxruntime runs may use Threads/Workers
	// threads (at least one). 0 means one per core (runtime.NumCPU).
	Threads int
	// Workers is how many goroutines the attacks and [Classifier.Logits]
	// spread their images over; 0 means Threads, one thread per onnxruntime
	// run. Each image is attacked on its own, so the results do not depend
	// on Workers. On the Fashion-MNIST CNN of bench/deepfool, two workers of
	// one thread attack 1.5–1.6× faster than one worker of two threads (the
	// whole audit command, 500 images; ResNet-18 1.3–1.4×): onnxruntime
	// parallelises each operator of a run, and the small operators of a
	// batch of a few images leave its threads waiting on each other.
	Workers int
	// ProfilePrefix, when not empty, turns on onnxruntime's profiler in
	// every session of the classifier (see ort.SessionOptions): each writes
	// the time of every node of every run to ProfilePrefix_TIMESTAMP.json
	// when the classifier is closed. For measuring only.
	ProfilePrefix string
	// Lo and Hi bound the pixel values; both zero mean [0, 1].
	Lo, Hi float32
	// Mean and Std, when set, are the per-channel normalisation the model
	// expects: the classifier inserts (x − Mean)/Std into the graph in front
	// of the model, so that its inputs, the attacks and the margins are in
	// pixel space. Each has one value per channel (on the channel axis of
	// Layout) or a single value for all channels.
	Mean, Std []float32
	// Layout says where the channels of an image are; the zero value,
	// LayoutAuto, detects it from the model (see [Layout]).
	Layout Layout
	// InputShape fixes the size of an image (the input's dimensions after
	// the batch dimension, in its layout); needed when the model leaves
	// them symbolic, else it must agree with the model ([ImageSizeError]).
	InputShape []int64
	// Scores says whether the output holds logits or probabilities.
	Scores ScoreKind
	// BatchSize is how many images [Classifier.Logits] and
	// [Classifier.Predict] feed onnxruntime per run; 0 means 256, and
	// [Classifier.Jacobian] uses at most 64.
	BatchSize int
	// Bound lists graph inputs besides the image that the classifier feeds
	// on every run from slices the caller owns, without copying them: the
	// weights of a model being trained, declared as graph inputs rather
	// than initializers, so that attacks see the weights as they are when
	// called (see [BoundInput]).
	Bound []BoundInput
}

// modelName is the name of m in errors: opt.Name, else the graph's name,
// else "model".
func modelName(m *onnxpb.ModelProto, opt Options) string {
	switch {
	case opt.Name != "":
		return opt.Name
	case m.GetGraph().GetName() != "":
		return m.GetGraph().GetName()
	}
	return "model"
}

// check checks the options of the model called name and returns the input
// range, [0, 1] when Lo and Hi are both zero.
func (opt *Options) check(name string) (lo, hi float32, err error) {
	lo, hi = opt.Lo, opt.Hi
	if lo == 0 && hi == 0 {
		hi = 1
	}
	switch {
	case !(lo < hi) || isNonFinite32(lo) || isNonFinite32(hi):
		return 0, 0, fmt.Errorf("attack: %s: input range [%v, %v] is empty or not finite", name, lo, hi)
	case opt.Threads < 0:
		return 0, 0, fmt.Errorf("attack: %s: %d threads, want 0 or more", name, opt.Threads)
	case opt.Workers < 0:
		return 0, 0, fmt.Errorf("attack: %s: %d workers, want 0 or more", name, opt.Workers)
	case opt.BatchSize < 0:
		return 0, 0, fmt.Errorf("attack: %s: batch size %d, want 0 or more", name, opt.BatchSize)
	case opt.Scores < DetectScores || opt.Scores > ProbabilityScores:
		return 0, 0, fmt.Errorf("attack: %s: unknown ScoreKind %d", name, opt.Scores)
	}
	return lo, hi, nil
}

// split returns the threads of one onnxruntime run and the number of
// workers that Threads and Workers give.
func (opt *Options) split() (threads, workers int) {
	total := opt.Threads
	if total == 0 {
		total = runtime.NumCPU()
	}
	workers = opt.Workers
	if workers == 0 {
		workers = total
	}
	return max(1, total/workers), workers
}

// BoundInput is a graph input, other than the image, that a [Classifier]
// reads from a caller-owned slice on every onnxruntime run, in each of its
// graphs (forward, Jacobian, input gradient). Nothing is copied: changing
// the values of Data between calls changes what the next call computes,
// without a new session. The caller must not change them while a method of
// the classifier runs, nor replace or resize the slice; it is not
// differentiated.
type BoundInput struct {
	// Name is the graph input's name.
	Name string
	// Shape is its full shape; it must agree with the sizes the model
	// declares, and Data must hold exactly its number of values.
	Shape []int64
	Data  []float32
}

// Classifier is a differentiable image classifier run by onnxruntime. Its
// methods are safe for concurrent use (as long as nobody writes to the data
// of its bound inputs meanwhile); Close releases it.
//
// Inputs are images in row-major order, n of them back to back, each with
// [Classifier.SampleSize] float32 pixels; scores are [n, K] row-major.
type Classifier struct {
	name    string
	model   *onnxpb.ModelProto // one input [N, sample...] in pixel space, one output [N, K]
	input   string
	output  string
	sample  []int64
	d, k    int
	lo, hi  float32
	source  ScoreSource
	norm    bool
	layout  Layout
	threads int // per onnxruntime run
	workers int
	profile string // onnxruntime's profile files' prefix, "" for none
	batch   int
	bound   []BoundInput
	// batchInfo says how a fixed batch is handled; fixed is its size B
	// when the model is fed B images per run, else 0.
	batchInfo FixedBatch
	fixed     int

	mu     sync.Mutex
	closed bool
	fwd    *graphSession
	jac    *graphSession
	vjp    *graphSession
}

// graphSession is one of the classifier's onnxruntime sessions, with the
// positions of the tensors it feeds and reads.
type graphSession struct {
	s         *ort.Session
	nIn, nOut int
	in, seed  int // positions in the inputs; seed is -1 for the forward graph
	labels    int // the one-hot labels' position in the gradient graph's inputs, else -1
	scores    int // positions in the outputs; grad is -1 for the forward graph
	grad      int
	loss      int // the loss terms' position in the gradient graph's outputs, else -1
	what      string
	// bound holds the bound inputs at their positions, the image and the
	// seed left zero: the template of every run's inputs.
	bound []ort.Value
}

// inputs returns a fresh copy of the session's inputs with the bound ones
// filled in, for one run.
func (gs *graphSession) inputs() []ort.Value { return slices.Clone(gs.bound) }

// NewClassifier prepares m for attacks: it makes a fixed batch symbolic
// where it can (see [SymbolicBatch]), keeps one image input (besides the
// inputs bound by opt.Bound) and one output, fixes the image size, inserts
// the normalisation, makes probability outputs log-probabilities (see
// [ScoreSource]), and loads the forward graph into onnxruntime, checking on
// a few random images that the output is finite class scores [N, K]. m
// itself is not modified.
func NewClassifier(m *onnxpb.ModelProto, opt Options) (*Classifier, error) {
	name := modelName(m, opt)
	lo, hi, err := opt.check(name)
	if err != nil {
		return nil, err
	}
	c := &Classifier{name: name, lo: lo, hi: hi, profile: opt.ProfilePrefix, batch: opt.BatchSize}
	c.threads, c.workers = opt.split()
	if c.batch == 0 {
		c.batch = 256
	}
	m, c.batchInfo, err = symbolicBatch(m, name, opt, lo, hi)
	if err != nil {
		return nil, err
	}
	p, err := prepare(m, name, opt)
	if err != nil {
		return nil, err
	}
	c.model, c.input, c.output, c.sample, c.norm = p.model, p.input, p.output, p.sample, p.normalised
	c.layout = p.layout
	c.bound = slices.Clone(opt.Bound)
	c.d = ImageSize(c.sample)
	c.k = p.k // 0 when the model does not declare it; the probe tells
	if fb := c.batchInfo; fb.Size > 0 && !fb.Rewritten {
		c.fixed = fb.Size
		declareBatch(c.model, c.input, c.output, c.fixed)
	}

	c.source = logScores(c.model.GetGraph(), c.output, opt.Scores)
	probs, err := c.probe()
	if err != nil {
		c.Close()
		return nil, err
	}
	if c.source == "" {
		c.source = ScoresLogits
		if opt.Scores == ProbabilityScores || (opt.Scores == DetectScores && probs) {
			appendLog(c.model, c.output)
			c.source = ScoresLogOfProbabilities
			if err := c.closeSessions(); err != nil { // the probe's forward graph
				c.Close()
				return nil, err
			}
		}
	}
	return c, nil
}

// probe runs the forward graph on two random images (B for a model fed
// its fixed batch of B) to learn K and to check that the scores are finite
// and [N, K]; it reports whether they look like probabilities.
func (c *Classifier) probe() (probs bool, err error) {
	s, err := c.session(forwardGraph)
	if err != nil {
		return false, err
	}
	n := 2
	if c.fixed > 0 {
		n = c.fixed
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n*c.d)
	for i := range x {
		x[i] = c.lo + (c.hi-c.lo)*rng.Float32()
	}
	in, out := s.inputs(), make([]ort.Value, s.nOut)
	in[s.in] = ort.NewValue(x, c.shape(n)...)
	if err := s.s.Run(in, out); err != nil {
		return false, fmt.Errorf("attack: %s: running the model on random images: %w", c.name, err)
	}
	v := out[s.scores]
	scores := v.Float32s()
	if len(v.Shape) != 2 || v.Shape[0] != int64(n) || scores == nil {
		return false, &ShapeError{Model: c.name, Msg: fmt.Sprintf("output %q is %v %v for %d images; want float32 class scores [N, K]", c.output, v.DataType(), v.Shape, n)}
	}
	if c.k != 0 && int(v.Shape[1]) != c.k {
		return false, &ShapeError{Model: c.name, Msg: fmt.Sprintf("output %q declares %d classes but has %d", c.output, c.k, v.Shape[1])}
	}
	c.k = int(v.Shape[1])
	if c.k < 2 {
		return false, &ShapeError{Model: c.name, Msg: fmt.Sprintf("output %q has %d class score; want at least 2", c.output, c.k)}
	}
	if err := c.checkFinite("scores", scores, c.k, 0); err != nil {
		return false, err
	}
	return LooksLikeProbabilities(scores, c.k), nil
}

// LooksLikeProbabilities reports whether every row of k scores is
// non-negative and sums to 1 (within float32 rounding).
func LooksLikeProbabilities(scores []float32, k int) bool {
	for r := 0; r < len(scores); r += k {
		var sum float64
		for _, v := range scores[r : r+k] {
			if v < 0 {
				return false
			}
			sum += float64(v)
		}
		if math.Abs(sum-1) > 1e-4*float64(k) {
			return false
		}
	}
	return true
}

// Name returns the model's name, as used in errors.
func (c *Classifier) Name() string { return c.name }

// NumClasses returns K, the number of class scores.
func (c *Classifier) NumClasses() int { return c.k }

// InputShape returns the shape of one image (the model input's dimensions
// after the batch dimension).
func (c *Classifier) InputShape() []int64 { return append([]int64(nil), c.sample...) }

// Layout returns where the channels of an image are: as the options said,
// or as detected (NCHW unless the model reads its input through a
// Transpose to NCHW).
func (c *Classifier) Layout() Layout { return c.layout }

// SampleSize returns the number of pixels of one image.
func (c *Classifier) SampleSize() int { return c.d }

// Range returns the bounds of the pixel values.
func (c *Classifier) Range() (lo, hi float32) { return c.lo, c.hi }

// ScoreSource says which scores the classifier computes and attacks: the
// model's logits, or log-probabilities made from its probability outputs.
func (c *Classifier) ScoreSource() ScoreSource { return c.source }

// Batch says how a model whose batch dimension is fixed is run (the zero
// value for a model whose batch is symbolic).
func (c *Classifier) Batch() FixedBatch { return c.batchInfo }

// Normalised reports whether a normalisation was inserted into the graph.
func (c *Classifier) Normalised() bool { return c.norm }

// Model returns a copy of the graph the classifier runs: one image input
// [N, InputShape...] in pixel space (the normalisation, if any, inserted in
// front), the bound inputs, and one output of class scores [N, K] (see
// [Classifier.ScoreSource]). Packages that analyse the classifier itself,
// such as certified bounds, read it.
func (c *Classifier) Model() *onnxpb.ModelProto { return proto.Clone(c.model).(*onnxpb.ModelProto) }

// Close releases the onnxruntime sessions. It is safe to call more than once
// and on a nil Classifier; afterwards the methods return [ErrClosed].
func (c *Classifier) Close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.closeSessions()
}

// closeSessions closes the sessions loaded so far; later calls load them
// anew. c.mu is held, or c not yet shared.
func (c *Classifier) closeSessions() error {
	var errs []error
	for _, s := range []**graphSession{&c.fwd, &c.jac, &c.vjp} {
		if *s != nil {
			errs = append(errs, (*s).s.Close())
			*s = nil
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("attack: %s: %w", c.name, err)
	}
	return nil
}

type graphKind int

const (
	forwardGraph graphKind = iota
	jacobianGraph
	gradientGraph
)

// session returns the session of the graph of the given kind, building and
// loading it on first use.
func (c *Classifier) session(kind graphKind) (*graphSession, error) {
	if c == nil {
		return nil, ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	slot := [...]**graphSession{&c.fwd, &c.jac, &c.vjp}[kind]
	if *slot != nil {
		return *slot, nil
	}
	gs, err := c.load(kind)
	if err != nil {
		return nil, err
	}
	*slot = gs
	return gs, nil
}

// load builds the graph of the given kind and creates its session.
func (c *Classifier) load(kind graphKind) (*graphSession, error) {
	m, seed, grad, labels, loss, what := c.model, "", "", "", "", "forward graph"
	switch kind {
	case jacobianGraph, gradientGraph:
		wrt := []string{c.input} // not the bound inputs
		opt := onnxgrad.Options{Mode: onnxgrad.Jacobian, SeedInput: true, WRT: wrt, File: c.name}
		what = "Jacobian graph"
		if kind == gradientGraph {
			m, labels, loss = lossModel(c.model, c.output, c.k)
			opt = onnxgrad.Options{Mode: onnxgrad.VJP, Output: loss, WRT: wrt, File: c.name}
			what = "loss-gradient graph"
		}
		res, err := onnxgrad.Build(m, opt)
		if err != nil {
			return nil, fmt.Errorf("attack: %s: building the %s: %w", c.name, what, err)
		}
		m, seed, grad = res.Model, res.Seed, res.Grads[0]
	}
	data, err := onnxgrad.Encode(m)
	if err != nil {
		return nil, fmt.Errorf("attack: %s: %s: %w", c.name, what, err)
	}
	// The attacks alternate between the forward and gradient sessions (and
	// adversarial training with the training graph's): idle pool threads
	// sleep rather than spin, so they do not take the next session's cores.
	s, err := ort.NewSession(data, ort.SessionOptions{Threads: c.threads, NoSpinning: true, ProfilePrefix: c.profile})
	if err != nil {
		return nil, fmt.Errorf("attack: %s: loading the %s: %w", c.name, what, err)
	}
	gs := &graphSession{s: s, nIn: len(s.Inputs()), nOut: len(s.Outputs()), in: -1, seed: -1, labels: -1, scores: -1, grad: -1, loss: -1, what: what}
	gs.bound = make([]ort.Value, gs.nIn)
	nBound := 0
	for i, t := range s.Inputs() {
		switch t.Name {
		case c.input:
			gs.in = i
		case seed:
			gs.seed = i
		case labels:
			gs.labels = i
		default:
			if j := slices.IndexFunc(c.bound, func(b BoundInput) bool { return b.Name == t.Name }); j >= 0 {
				gs.bound[i] = ort.NewValue(c.bound[j].Data, c.bound[j].Shape...)
				nBound++
			}
		}
	}
	for i, t := range s.Outputs() {
		switch t.Name {
		case c.output:
			gs.scores = i
		case grad:
			gs.grad = i
		case loss:
			gs.loss = i
		}
	}
	if gs.in < 0 || gs.scores < 0 || nBound != len(c.bound) || gs.nIn != 1+btoi(seed != "")+btoi(labels != "")+nBound ||
		(grad != "" && gs.grad < 0) || (labels != "" && gs.labels < 0) || (loss != "" && gs.loss < 0) {
		s.Close()
		return nil, fmt.Errorf("attack: %s: the %s loaded into onnxruntime has inputs %v and outputs %v; want %q (and the seed and %d bound inputs) and %q", c.name, what, s.Inputs(), s.Outputs(), c.input, len(c.bound), c.output)
	}
	return gs, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// shape returns the input shape of n images.
func (c *Classifier) shape(n int) []int64 {
	return append([]int64{int64(n)}, c.sample...)
}

// checkInput checks that x holds n images (n < 0: as many as it holds) of
// finite pixels, and returns n.
func (c *Classifier) checkInput(x []float32, n int) (int, error) {
	if n < 0 {
		if len(x)%c.d != 0 {
			return 0, &ShapeError{Model: c.name, Msg: fmt.Sprintf("%d input values are not a whole number of images of %v = %d pixels", len(x), c.sample, c.d)}
		}
		n = len(x) / c.d
	}
	if len(x) != n*c.d {
		return 0, &ShapeError{Model: c.name, Msg: fmt.Sprintf("%d input values for %d images of %v; want %d", len(x), n, c.sample, n*c.d)}
	}
	if err := c.checkFinite("input", x, c.d, 0); err != nil {
		return 0, err
	}
	return n, nil
}

// checkRange checks that every pixel of x lies in the input range.
func (c *Classifier) checkRange(x []float32) error {
	for i, v := range x {
		if v < c.lo || v > c.hi {
			return &RangeError{Model: c.name, Image: i / c.d, Index: i % c.d, Value: v, Lo: c.lo, Hi: c.hi}
		}
	}
	return nil
}

// checkFinite returns a NonFiniteError for the first NaN or infinity in v,
// whose images hold per values each and start at image first.
func (c *Classifier) checkFinite(what string, v []float32, per, first int) error {
	for i, f := range v {
		if isNonFinite32(f) {
			return &NonFiniteError{Model: c.name, What: what, Image: first + i/per, Value: float64(f)}
		}
	}
	return nil
}

func isNonFinite32(f float32) bool { return f != f || f > math.MaxFloat32 || f < -math.MaxFloat32 }

// Logits returns the class scores [n, K] of the n images in x: logits, or
// log-probabilities for models that output probabilities (see
// [Classifier.ScoreSource]).
func (c *Classifier) Logits(x []float32, n int) ([]float32, error) {
	n, err := c.checkInput(x, n)
	if err != nil {
		return nil, err
	}
	scores := make([]float32, n*c.k)
	err = parallel.Pieces(context.Background(), c.workers, n, c.batch, func(_ context.Context, _, s, e int) error {
		return c.forward(scores[s*c.k:e*c.k], x[s*c.d:e*c.d], e-s, s)
	})
	if err != nil {
		return nil, err
	}
	return scores, nil
}

// Predict returns the predicted class (the first highest score) of each of
// the n images in x.
func (c *Classifier) Predict(x []float32, n int) ([]int, error) {
	scores, err := c.Logits(x, n)
	if err != nil {
		return nil, err
	}
	pred := make([]int, len(scores)/max(c.k, 1))
	for i := range pred {
		pred[i] = argmax(scores[i*c.k : (i+1)*c.k])
	}
	return pred, nil
}

// argmax returns the index of the first largest value.
func argmax(v []float32) int {
	best := 0
	for i, f := range v[1:] {
		if f > v[best] {
			best = i + 1
		}
	}
	return best
}

// forward runs the forward graph on n images, writing their scores; first
// is the index of x's first image in the caller's batch, for errors.
func (c *Classifier) forward(scores, x []float32, n, first int) error {
	s, err := c.session(forwardGraph)
	if err != nil {
		return err
	}
	ins := [...]rows{{pos: s.in, data: x, dims: c.sample}}
	outs := [...]rows{{pos: s.scores, data: scores, dims: []int64{int64(c.k)}}}
	if err := c.run(s, n, ins[:], outs[:]); err != nil {
		return err
	}
	return c.checkFinite("scores", scores, c.k, first)
}

// Jacobian returns the class scores [n, K] of the n images in x and their
// Jacobian [n, K, ...image], jac[i, k, …] = ∂scores[i, k]/∂x[i, …], from the
// Jacobian graph (at most 64 images per run).
func (c *Classifier) Jacobian(x []float32, n int) (scores, jac []float32, err error) {
	if n, err = c.checkInput(x, n); err != nil {
		return nil, nil, err
	}
	chunk := min(c.batch, 64)
	seeds := make([]float32, min(n, chunk)*c.k*c.k)
	for i := 0; i < len(seeds); i += c.k * c.k {
		for k := range c.k {
			seeds[i+k*c.k+k] = 1
		}
	}
	scores = make([]float32, n*c.k)
	jac = make([]float32, n*c.k*c.d)
	for s := 0; s < n; s += chunk {
		e := min(n, s+chunk)
		if err := c.seededJacobian(scores[s*c.k:e*c.k], jac[s*c.k*c.d:e*c.k*c.d], x[s*c.d:e*c.d], e-s, seeds[:(e-s)*c.k*c.k], c.k, s); err != nil {
			return nil, nil, err
		}
	}
	return scores, jac, nil
}

// SeededJacobian runs the Jacobian graph once on the n images in x with L
// rows of seeds per image, seeds [n, L, K], and writes the scores [n, K]
// and the seeded Jacobian [n, L, ...image]:
//
//	jac[i, l, …] = Σ_k seeds[i, l, k] · ∂scores[i, k]/∂x[i, …]
//
// Seeds e_k − e_j give the gradient of the score gap f_k − f_j. The caller
// chooses n (the whole batch is one run, or runs of B images for a model fed
// its fixed batch, see [Classifier.Batch]) and owns the buffers.
func (c *Classifier) SeededJacobian(scores, jac, x []float32, n int, seeds []float32, l int) error {
	n, err := c.checkInput(x, n)
	if err != nil {
		return err
	}
	switch {
	case l < 1:
		return &ShapeError{Model: c.name, Msg: fmt.Sprintf("%d seed rows; want at least 1", l)}
	case len(seeds) != n*l*c.k:
		return &ShapeError{Model: c.name, Msg: fmt.Sprintf("%d seed values for [%d, %d, %d]", len(seeds), n, l, c.k)}
	case len(scores) != n*c.k:
		return &ShapeError{Model: c.name, Msg: fmt.Sprintf("scores buffer of %d values for [%d, %d]", len(scores), n, c.k)}
	case len(jac) != n*l*c.d:
		return &ShapeError{Model: c.name, Msg: fmt.Sprintf("Jacobian buffer of %d values for [%d, %d, %v]", len(jac), n, l, c.sample)}
	}
	return c.seededJacobian(scores, jac, x, n, seeds, l, 0)
}

// seededJacobian is SeededJacobian without the argument checks; first is
// the index of x's first image in the caller's batch, for errors.
func (c *Classifier) seededJacobian(scores, jac, x []float32, n int, seeds []float32, l, first int) error {
	s, err := c.session(jacobianGraph)
	if err != nil {
		return err
	}
	ins := [...]rows{{pos: s.in, data: x, dims: c.sample}, {pos: s.seed, data: seeds, dims: []int64{int64(l), int64(c.k)}}}
	outs := [...]rows{{pos: s.scores, data: scores, dims: []int64{int64(c.k)}}, {pos: s.grad, data: jac, dims: append([]int64{int64(l)}, c.sample...)}}
	if err := c.run(s, n, ins[:], outs[:]); err != nil {
		return err
	}
	if err := c.checkFinite("scores", scores, c.k, first); err != nil {
		return err
	}
	return c.checkFinite("Jacobian", jac, l*c.d, first)
}

// LossGradient writes to grad the gradient with respect to each image of
// the softmax cross-entropy of its scores against its label,
// grad[i, …] = ∂CE(scores[i], labels[i])/∂x[i, …], and returns the mean
// cross-entropy. For a model that outputs probabilities p the scores are
// log-probabilities, whose softmax is p: the loss is −log p_y (with p_y
// clamped to 2^-126 where the Softmax was not replaced). len(grad) must
// equal len(x).
//
// It is one run of a graph that computes the scores, the loss (in float64
// from the float32 scores, so that confidently classified images keep the
// label's term of the gradient) and the loss's input gradient.
func (c *Classifier) LossGradient(grad, x []float32, labels []int) (float64, error) {
	n, err := c.checkInput(x, -1)
	if err != nil {
		return 0, err
	}
	if err := c.checkLabels(labels, n); err != nil {
		return 0, err
	}
	if len(grad) != len(x) {
		return 0, &ShapeError{Model: c.name, Msg: fmt.Sprintf("gradient buffer of %d values for %d input values", len(grad), len(x))}
	}
	var sc lossScratch
	loss, err := c.lossGradient(&sc, grad, x, labels, n, 0)
	return loss / float64(max(n, 1)), err
}

// checkLabels checks that labels holds n classes of the model.
func (c *Classifier) checkLabels(labels []int, n int) error {
	if len(labels) != n {
		return &ShapeError{Model: c.name, Msg: fmt.Sprintf("%d labels for %d images", len(labels), n)}
	}
	for i, y := range labels {
		if y < 0 || y >= c.k {
			return &ShapeError{Model: c.name, Msg: fmt.Sprintf("label %d of image %d is not one of the %d classes", y, i, c.k)}
		}
	}
	return nil
}

// lossScratch holds the buffers of lossGradient, reused between calls.
type lossScratch struct {
	scores, onehot, ones, terms []float32
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// lossGradient is LossGradient without argument checks, returning the sum
// of the losses. After it, sc.scores holds the scores at x.
func (c *Classifier) lossGradient(sc *lossScratch, grad, x []float32, labels []int, n, first int) (float64, error) {
	s, err := c.session(gradientGraph)
	if err != nil {
		return 0, err
	}
	nk := n * c.k
	sc.scores, sc.terms = grow(sc.scores, nk), grow(sc.terms, nk)
	sc.onehot = grow(sc.onehot, nk)
	clear(sc.onehot)
	for i, y := range labels {
		sc.onehot[i*c.k+y] = 1
	}
	if len(sc.ones) < nk {
		sc.ones = make([]float32, nk)
		for i := range sc.ones {
			sc.ones[i] = 1
		}
	}
	k := []int64{int64(c.k)}
	ins := [...]rows{{pos: s.in, data: x, dims: c.sample}, {pos: s.labels, data: sc.onehot, dims: k}, {pos: s.seed, data: sc.ones[:nk], dims: k}}
	outs := [...]rows{{pos: s.scores, data: sc.scores, dims: k}, {pos: s.loss, data: sc.terms, dims: k}, {pos: s.grad, data: grad, dims: c.sample}}
	if err := c.run(s, n, ins[:], outs[:]); err != nil {
		return 0, err
	}
	if err := c.checkFinite("scores", sc.scores, c.k, first); err != nil {
		return 0, err
	}
	var loss float64
	for _, t := range sc.terms {
		loss += float64(t)
	}
	return loss, c.checkFinite("gradient", grad, c.d, first)
}
