package train

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/marginaudit/marginaudit/trainer/checkpoint"
	"github.com/marginaudit/marginaudit/trainer/dataset"
	"github.com/marginaudit/marginaudit/trainer/model"
	"github.com/marginaudit/marginaudit/trainer/optim"
)

// Run trains as cfg describes, writing cfg.Out/epoch-000.onnx (the initial
// weights) and one checkpoint per epoch after it, with train.csv, and
// reporting to p (nil for none). It returns when the last epoch is written,
// on the first error, or when ctx is cancelled (with an error wrapping
// ctx.Err()).
func Run(ctx context.Context, cfg Config, p Progress) error {
	if p == nil {
		p = nop{}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	trainSet, testSet, err := cfg.loadData()
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	m, err := model.New(cfg.Arch, trainSet.C, trainSet.H, trainSet.W, trainSet.Classes)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	m.Init(cfg.Seed)
	names, sizes := make([]string, len(m.Params)), make([]int, len(m.Params))
	for i, q := range m.Params {
		names[i], sizes[i] = q.Name, len(q.Data)
	}
	opt, err := optim.New(cfg.Optim, names, sizes)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	r := &run{cfg: cfg, m: m, opt: opt, train: trainSet, test: testSet, p: p}

	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	last, err := checkpoint.Latest(cfg.Out)
	if err != nil {
		return err
	}
	if last >= 0 && !cfg.Resume {
		return fmt.Errorf("%w: %s (epoch %d); resume the run or choose another folder", ErrExists, cfg.Out, last)
	}
	if last >= 0 {
		if err := r.resume(last); err != nil {
			return err
		}
	}

	r.net, err = newNet(m, cfg.Threads, cfg.BatchSize, cfg.EvalBatchSize)
	if err != nil {
		return err
	}
	defer r.net.Close()
	if cfg.Adv != nil {
		if r.adv, err = newAdversary(m, *cfg.Adv, cfg.Threads); err != nil {
			return err
		}
		defer r.adv.Close()
	}
	r.alloc()

	batches := (trainSet.N + cfg.BatchSize - 1) / cfg.BatchSize
	p.Start(Start{Dir: cfg.Out, Arch: m.Arch.String(), Params: m.NumParams(), Epochs: cfg.Epochs, First: max(last+1, 1),
		Resumed: last >= 0, Batches: batches, TrainImages: trainSet.N, TestImages: testSet.N})

	if last < 0 {
		// Epoch 0: the initialisation, measured on both splits.
		start := time.Now()
		md := r.metadata(0, 0)
		if md.TrainLoss, md.TrainAccuracy, err = r.evaluate(ctx, trainSet); err != nil {
			return err
		}
		if md.TestLoss, md.TestAccuracy, err = r.evaluate(ctx, testSet); err != nil {
			return err
		}
		if err := r.save(md, Epoch{Eval: time.Since(start)}); err != nil { // all evaluation
			return err
		}
	}
	for e := max(last+1, 1); e <= cfg.Epochs; e++ {
		if err := r.epoch(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// run is the state of one call of Run.
type run struct {
	cfg         Config
	m           *model.Model
	opt         *optim.Optimizer
	net         *net
	adv         *adversary // nil for standard training
	train, test *dataset.Dataset
	p           Progress
	history     []*checkpoint.Metadata // one record per epoch written, for train.csv

	x, target, logits []float32 // batch buffers (evaluation reads images in place)
	labels            []int
	params            [][]float32
}

// alloc sizes the batch buffers.
func (r *run) alloc() {
	r.x = make([]float32, r.cfg.BatchSize*r.train.ImageSize())
	r.target = make([]float32, r.cfg.BatchSize*r.m.Classes)
	r.labels = make([]int, r.cfg.BatchSize)
	r.logits = make([]float32, max(r.cfg.BatchSize, r.cfg.EvalBatchSize)*r.m.Classes)
	for _, q := range r.m.Params {
		r.params = append(r.params, q.Data)
	}
}

// epoch trains epoch e, evaluates and writes its checkpoint.
func (r *run) epoch(ctx context.Context, e int) error {
	cfg, k, size := r.cfg, r.m.Classes, r.train.ImageSize()
	order := Shuffle(cfg.Seed, e, r.train.N)
	lr := r.opt.LR(e, cfg.Epochs)
	batches := (r.train.N + cfg.BatchSize - 1) / cfg.BatchSize
	var lossSum, advLossSum float64
	var correct, seen, advCorrect, advSeen int
	var advTime time.Duration
	start := time.Now()
	for b := range batches {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("train: epoch %d stopped: %w", e, err)
		}
		idx := order[b*cfg.BatchSize : min((b+1)*cfg.BatchSize, r.train.N)]
		n := len(idx)
		clear(r.target[:n*k])
		for i, j := range idx {
			copy(r.x[i*size:(i+1)*size], r.train.Image(j))
			r.target[i*k+r.train.Labels[j]] = 1
			r.labels[i] = r.train.Labels[j]
		}
		nAdv := 0
		if r.adv != nil {
			nAdv = r.adv.count(n)
			t := time.Now()
			if err := r.adv.replace(ctx, r.x, r.labels, nAdv, size, cfg.Seed, e, b); err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("train: epoch %d stopped: %w", e, ctx.Err())
				}
				return fmt.Errorf("train: epoch %d, batch %d: %w", e, b+1, err)
			}
			advTime += time.Since(t)
		}
		loss, err := r.net.step(r.x, r.target, r.logits, n)
		if err != nil {
			return fmt.Errorf("train: epoch %d, batch %d: %w", e, b+1, err)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return fmt.Errorf("train: epoch %d, batch %d: the loss is %v (learning rate %g too high?)", e, b+1, loss, lr)
		}
		r.opt.Step(lr, r.params, r.net.grads)
		lossSum += loss * float64(n)
		for i, y := range r.labels[:n] {
			row := r.logits[i*k : (i+1)*k]
			ok := argmax(row) == y
			if ok {
				correct++
			}
			if i < nAdv {
				advLossSum += logSumExp(row) - float64(row[y])
				if ok {
					advCorrect++
				}
			}
		}
		seen += n
		advSeen += nAdv
		st := Step{Epoch: e, Batch: b + 1, Batches: batches, Images: seen,
			Loss: lossSum / float64(seen), Accuracy: float64(correct) / float64(seen), LR: lr, Elapsed: time.Since(start)}
		if advSeen > 0 {
			st.AdvLoss, st.AdvAccuracy = advLossSum/float64(advSeen), float64(advCorrect)/float64(advSeen)
		}
		r.p.Step(st)
	}
	trainTime := time.Since(start)
	md := r.metadata(e, lr)
	md.TrainLoss, md.TrainAccuracy = lossSum/float64(seen), float64(correct)/float64(seen)
	if advSeen > 0 {
		md.AdvLoss, md.AdvAccuracy = advLossSum/float64(advSeen), float64(advCorrect)/float64(advSeen)
	}
	md.Seconds = trainTime.Seconds()
	evalStart := time.Now()
	var err error
	if md.TestLoss, md.TestAccuracy, err = r.evaluate(ctx, r.test); err != nil {
		return err
	}
	return r.save(md, Epoch{Train: trainTime, Adversarial: advTime, Eval: time.Since(evalStart)})
}

// evaluate returns the mean cross-entropy and the accuracy of the model on d.
func (r *run) evaluate(ctx context.Context, d *dataset.Dataset) (loss, acc float64, err error) {
	k, bs := r.m.Classes, r.cfg.EvalBatchSize
	var sum float64
	correct := 0
	for s := 0; s < d.N; s += bs {
		if err := ctx.Err(); err != nil {
			return 0, 0, fmt.Errorf("train: evaluation stopped: %w", err)
		}
		n := min(bs, d.N-s)
		if err := r.net.forward(d.Images[s*d.ImageSize():(s+n)*d.ImageSize()], r.logits, n); err != nil {
			return 0, 0, err
		}
		for i := range n {
			row := r.logits[i*k : (i+1)*k]
			y := d.Labels[s+i]
			sum += logSumExp(row) - float64(row[y])
			if argmax(row) == y {
				correct++
			}
		}
	}
	return sum / float64(d.N), float64(correct) / float64(d.N), nil
}

// metadata returns the record of epoch e before its measurements.
func (r *run) metadata(e int, lr float64) *checkpoint.Metadata {
	cfg := r.cfg
	return &checkpoint.Metadata{
		Dataset: cfg.Dataset, Classes: r.m.Classes, InputShape: r.m.InputShape(),
		InputRange: [2]float64{0, 1}, Normalization: "none", Arch: r.m.Arch,
		Epoch: e, Epochs: cfg.Epochs, Seed: cfg.Seed, BatchSize: cfg.BatchSize,
		TrainImages: r.train.N, TestImages: r.test.N, Optim: r.opt.Config(), EpochLR: lr,
		Adversarial: cfg.Adv.record(),
	}
}

// save writes epoch md.Epoch: optimizer state first, then the model (whose
// presence marks the epoch complete), then train.csv; then it reports ep
// with the path and md filled in.
func (r *run) save(md *checkpoint.Metadata, ep Epoch) error {
	dir, e := r.cfg.Out, md.Epoch
	if err := checkpoint.WriteState(checkpoint.StatePath(dir, e), r.opt.State()); err != nil {
		return err
	}
	path := checkpoint.Path(dir, e)
	if err := checkpoint.Write(path, r.m, md); err != nil {
		return err
	}
	r.history = append(r.history, md)
	if err := checkpoint.WriteCSV(filepath.Join(dir, checkpoint.CSVName), r.history); err != nil {
		return err
	}
	ep.Path, ep.Metadata = path, md
	r.p.Epoch(ep)
	return nil
}

// resume loads the weights and optimizer state of epoch last and the records
// of the epochs before it, after checking that they were made with the same
// settings.
func (r *run) resume(last int) error {
	dir := r.cfg.Out
	saved, md, err := checkpoint.Read(checkpoint.Path(dir, last))
	if err != nil {
		return err
	}
	if err := r.compatible(md); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrResumeMismatch, checkpoint.Path(dir, last), err)
	}
	for i, q := range saved.Params {
		copy(r.m.Params[i].Data, q.Data)
	}
	st, err := checkpoint.ReadState(checkpoint.StatePath(dir, last))
	if err != nil {
		return err
	}
	if err := r.opt.SetState(st); err != nil {
		return fmt.Errorf("train: %s: %w", checkpoint.StatePath(dir, last), err)
	}
	epochs, err := checkpoint.Epochs(dir)
	if err != nil {
		return err
	}
	for _, e := range epochs {
		if e >= last {
			break
		}
		h, err := checkpoint.ReadMetadata(checkpoint.Path(dir, e))
		if err != nil {
			return err
		}
		r.history = append(r.history, h)
	}
	r.history = append(r.history, md)
	return nil
}

// compatible reports how the run that wrote md differs from this one in a
// setting that changes the result.
func (r *run) compatible(md *checkpoint.Metadata) error {
	cfg := r.cfg
	type diff struct {
		what       string
		have, want any
	}
	for _, d := range []diff{
		{"dataset", md.Dataset, cfg.Dataset},
		{"architecture", md.Arch.String(), r.m.Arch.String()},
		{"input shape", model.FormatInts(md.InputShape), model.FormatInts(r.m.InputShape())},
		{"classes", md.Classes, r.m.Classes},
		{"seed", md.Seed, cfg.Seed},
		{"batch size", md.BatchSize, cfg.BatchSize},
		{"training images", md.TrainImages, r.train.N},
		{"optimizer", fmt.Sprintf("%+v", md.Optim), fmt.Sprintf("%+v", r.opt.Config())},
		{"adversarial training", fmtAdv(md.Adversarial), fmtAdv(cfg.Adv.record())},
	} {
		if d.have != d.want {
			return fmt.Errorf("%s %v, this run %v", d.what, d.have, d.want)
		}
	}
	return nil
}

// fmtAdv formats adversarial settings for ErrResumeMismatch.
func fmtAdv(a checkpoint.Adversarial) string {
	if a.Method == "" {
		return "none"
	}
	return fmt.Sprintf("%s %s ε=%v step=%v steps=%d frac=%v random-start=%v", a.Method, a.Norm, a.Eps, a.Step, a.Steps, a.Frac, a.RandomStart)
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// logSumExp returns log Σ exp(v) in float64.
func logSumExp(v []float32) float64 {
	m := float64(slices.Max(v))
	var s float64
	for _, x := range v {
		s += math.Exp(float64(x) - m)
	}
	return m + math.Log(s)
}
