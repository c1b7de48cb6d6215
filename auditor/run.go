package auditor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/shard"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// Images are the images of one split to audit, in pixel space.
type Images struct {
	X      []float32 // len(Index) images of Shape each, concatenated
	Labels []int
	// Index holds each image's index in its data set, the index column of
	// margins.csv.
	Index []int
	// Shape is the shape of an image, such as C, H, W; each checkpoint
	// must take images of this shape (see fitImages). nil skips the check.
	Shape []int64
	// Layout is the layout of images from a data set (attack.NCHW for
	// the trainer's): they are transposed or flattened for models that
	// take another layout. The zero value, for arrays given by the user,
	// feeds them as they are.
	Layout attack.Layout
	// Name names the images in errors, such as "images.npy".
	Name string
	// First is the position of the first image among the split's, when
	// a shard audits a range of them (see Config.Shard).
	First int
}

// Len is the number of images.
func (im *Images) Len() int { return len(im.Labels) }

// Config is one audit run: which checkpoints, which images, how fast. What
// determines the results lives in Settings.
type Config struct {
	// Checkpoints are ONNX files or directories holding them.
	Checkpoints []string
	// Out is the audit directory (see Store).
	Out      string
	Settings Settings
	// Data holds the images of each split in Settings.Splits.
	Data map[Split]*Images
	// Threads per onnxruntime run; 0 lets onnxruntime choose.
	Threads int
	// BatchSize is how many images DeepFool attacks together; 0 means 64.
	BatchSize int
	// Shard, when set, audits only that shard of the work into Out, as
	// package shard divides it (see planShard); nil audits all of it.
	Shard *shard.Spec
}

// Progress hears about an audit as it runs; the CLI renders it. Library code
// never prints.
type Progress interface {
	// Checkpoint is called before checkpoint i of n (0-based) is audited,
	// with the number of attack runs (images × norms, plus images × PGD
	// radii) it will take.
	Checkpoint(c Checkpoint, i, n, work int)
	// Done reports finished attack runs.
	Done(n int)
	// Model is called once checkpoint c's model is loaded, with how it is
	// run: which scores the attacks use, how a fixed batch is handled.
	Model(c Checkpoint, m ModelInfo)
	// Finished is called after each checkpoint: skipped (already in the
	// store), audited, or failed with err.
	Finished(c Checkpoint, skipped bool, err error, elapsed time.Duration)
}

// CheckpointError reports a checkpoint that could not be audited.
type CheckpointError struct {
	Checkpoint string
	Err        error
}

func (e *CheckpointError) Error() string {
	return fmt.Sprintf("checkpoint %s: %v", e.Checkpoint, e.Err)
}

func (e *CheckpointError) Unwrap() error { return e.Err }

// Run audits every checkpoint of cfg not already in the store, committing
// each one's results when it finishes, then writes summary.json and
// transitions.csv. A checkpoint's results are the DeepFool margins and the
// PGD robust accuracies of every split, and each image's clean max-softmax
// probability from the same classifier (confidence.csv; for a model that
// outputs probabilities, its largest output), and how its model was run
// (ModelInfo). A checkpoint that fails is reported to p and skipped; Run
// goes on with the others and returns the failures joined (each a
// *CheckpointError) after writing the report of what succeeded.
func Run(ctx context.Context, cfg Config, p Progress) (*Summary, error) {
	if p == nil {
		p = nopProgress{}
	}
	for _, s := range cfg.Settings.Splits {
		if cfg.Data[s] == nil || cfg.Data[s].Len() == 0 {
			return nil, fmt.Errorf("auditor: no images for split %s", s)
		}
	}
	ckpts, err := Discover(cfg.Checkpoints)
	if err != nil {
		return nil, err
	}
	if len(ckpts) == 0 {
		return nil, fmt.Errorf("auditor: no .onnx checkpoints in %s", strings.Join(cfg.Checkpoints, ", "))
	}
	plan, err := planShard(&cfg, ckpts)
	if err != nil {
		return nil, err
	}
	ckpts = plan.checkpoints(ckpts)
	store, err := OpenStore(cfg.Out, &cfg.Settings)
	if err != nil {
		return nil, err
	}
	if err := plan.attach(store); err != nil {
		return nil, err
	}
	var failures []error
	for i, c := range ckpts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if store.Done(c.Name) {
			p.Finished(c, true, nil, 0)
			continue
		}
		start := time.Now()
		ccfg := plan.config(cfg, c)
		p.Checkpoint(c, i, len(ckpts), ccfg.work())
		err := c.Err
		if err == nil {
			var part *Part
			if part, err = auditCheckpoint(ctx, ccfg, c, p); err == nil {
				err = store.Commit(part)
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p.Finished(c, false, err, time.Since(start))
		if err != nil {
			failures = append(failures, &CheckpointError{Checkpoint: c.Name, Err: err})
		}
	}
	sum, err := store.WriteReport()
	if err != nil {
		return nil, err
	}
	return sum, errors.Join(failures...)
}

// work counts the attack runs of one checkpoint.
func (cfg *Config) work() int {
	n := 0
	for _, s := range cfg.Settings.Splits {
		n += cfg.Data[s].Len() * (len(cfg.Settings.Norms) + len(cfg.Settings.PGD.Norms)*len(cfg.Settings.PGD.Eps))
	}
	return n
}

// auditCheckpoint measures one checkpoint's margins, robust accuracies and
// clean max-softmax confidences.
func auditCheckpoint(ctx context.Context, cfg Config, c Checkpoint, p Progress) (*Part, error) {
	m, err := onnxgrad.Load(c.Path)
	if err != nil {
		return nil, err
	}
	opt, err := classifierOptions(m, &cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	opt.Name, opt.Threads = c.Name, cfg.Threads
	clf, err := newClassifier(m, opt, cfg.someImages(), c.Name)
	if err != nil {
		return nil, err
	}
	defer clf.Close()
	info := ModelInfo{Checkpoint: c.Name, Epoch: c.Epoch, Scores: string(clf.ScoreSource()), Batch: clf.Batch().String()}
	p.Model(c, info)
	part := &Part{Checkpoint: c.Name, Epoch: c.Epoch, Model: &info}
	s := &cfg.Settings
	progress := attack.ProgressFunc(p.Done)
	for _, split := range s.Splits {
		im, err := fitImages(cfg.Data[split], clf.InputShape(), clf.Layout(), c.Name)
		if err != nil {
			return nil, err
		}
		conf, err := maxSoftmaxes(clf, im)
		if err != nil {
			return nil, fmt.Errorf("clean scores on %s: %w", split, err)
		}
		for i, m := range conf {
			part.Confidence = append(part.Confidence, Confidence{Checkpoint: c.Name, Epoch: c.Epoch, Split: split, Index: im.Index[i], MaxSoftmax: m})
		}
		for _, norm := range s.Norms {
			df := attack.DefaultDeepFoolOptions(attackNorm(norm))
			df.Overshoot, df.MaxIter, df.Candidates, df.Retries, df.Refine = s.Overshoot, s.MaxIter, s.Candidates, s.Retries, s.Refine
			df.Seed, df.BatchSize, df.Progress, df.FirstImage = uint64(s.Seed), cfg.BatchSize, progress, im.First
			res, err := attack.DeepFool(ctx, clf, im.X, im.Labels, df)
			if err != nil {
				return nil, fmt.Errorf("DeepFool %s on %s: %w", norm, split, err)
			}
			for i, r := range res {
				rec := Record{Checkpoint: c.Name, Epoch: c.Epoch, Split: split, Index: im.Index[i], Label: r.Label, Pred: r.Pred,
					Correct: r.Correct(), Norm: norm, Margin: r.Margin, MarginRefined: math.NaN(), Iterations: r.Iterations,
					Retries: r.Retries, Success: r.Success}
				if s.Refine {
					rec.MarginRefined = r.Refined
				}
				if !r.Success { // no perturbation found: no margin to report
					rec.Margin, rec.MarginRefined = math.NaN(), math.NaN()
				}
				part.Records = append(part.Records, rec)
			}
		}
		for _, norm := range s.PGD.Norms {
			for _, eps := range s.PGD.Eps {
				po := attack.PGDOptions{Norm: attackNorm(norm), Eps: eps, Steps: s.PGD.Steps, Step: s.PGD.StepSize,
					RandomStart: s.PGD.RandomStart, Seed: uint64(s.Seed), BatchSize: cfg.BatchSize, EarlyStop: true}
				if po.Step == 0 {
					po.Step = 2.5 * eps / float64(po.Steps) // Madry et al. 2018
				}
				rob, err := attack.RobustAccuracy(ctx, clf, im.X, im.Labels, po)
				if err != nil {
					return nil, fmt.Errorf("PGD %s ε=%g on %s: %w", norm, eps, split, err)
				}
				p.Done(im.Len())
				part.PGD = append(part.PGD, PGDResult{Checkpoint: c.Name, Epoch: c.Epoch, Split: split, Norm: norm, Eps: eps, Images: rob.N, Robust: rob.Robust})
			}
		}
	}
	return part, nil
}

// maxSoftmaxes returns the max-softmax of each clean image of im under clf
// (see maxSoftmax): the confidence that the report's detection AUROC
// compares the margin with.
func maxSoftmaxes(clf *attack.Classifier, im *Images) ([]float64, error) {
	scores, err := clf.Logits(im.X, im.Len())
	if err != nil {
		return nil, err
	}
	k := clf.NumClasses()
	out := make([]float64, im.Len())
	for i := range out {
		out[i] = maxSoftmax(scores[i*k : (i+1)*k])
	}
	return out, nil
}

func attackNorm(n Norm) attack.Norm {
	if n == LInf {
		return attack.LInf
	}
	return attack.L2
}

// Metadata keys describing a checkpoint's input convention (written by the
// trainer; other models may carry them or take the settings instead).
const (
	MetadataInputRange    = "input_range"   // "lo,hi", e.g. "0,1"
	MetadataNormalization = "normalization" // "none", or "mean=a,b,c;std=d,e,f"
)

// classifierOptions combines the settings with the checkpoint's metadata:
// settings win where set; otherwise the metadata's input range and
// normalisation apply, and [0, 1] without normalisation by default.
func classifierOptions(m *onnxpb.ModelProto, s *Settings) (attack.Options, error) {
	meta := map[string]string{}
	for _, p := range m.GetMetadataProps() {
		meta[p.GetKey()] = p.GetValue()
	}
	var opt attack.Options
	lo, hi := s.Range[0], s.Range[1]
	if lo == 0 && hi == 0 {
		lo, hi = 0, 1
		if r, ok := meta[MetadataInputRange]; ok {
			v, err := parseFloats(r)
			if err != nil || len(v) != 2 || !(v[0] < v[1]) {
				return opt, fmt.Errorf("metadata %s=%q: want \"lo,hi\" with lo < hi", MetadataInputRange, r)
			}
			lo, hi = v[0], v[1]
		}
	}
	opt.Lo, opt.Hi = float32(lo), float32(hi)
	mean, std := s.Mean, s.Std
	if len(mean) == 0 && len(std) == 0 {
		if n, ok := meta[MetadataNormalization]; ok && n != "none" && n != "" {
			var err error
			if mean, std, err = parseNormalization(n); err != nil {
				return opt, fmt.Errorf("metadata %s=%q: %w", MetadataNormalization, n, err)
			}
		}
	}
	opt.Mean, opt.Std = float32s(mean), float32s(std)
	var err error
	if opt.Layout, err = attack.ParseLayout(s.Layout); err != nil {
		return opt, err
	}
	opt.Output = s.Output
	return opt, nil
}

// parseNormalization reads "mean=a,b,c;std=d,e,f".
func parseNormalization(s string) (mean, std []float64, err error) {
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, nil, errors.New(`want "mean=a,b,c;std=d,e,f"`)
		}
		vals, err := parseFloats(v)
		if err != nil {
			return nil, nil, err
		}
		switch k {
		case "mean":
			mean = vals
		case "std":
			std = vals
		default:
			return nil, nil, fmt.Errorf("unknown key %q", k)
		}
	}
	if len(mean) == 0 || len(std) == 0 {
		return nil, nil, errors.New("both mean and std are needed")
	}
	return mean, std, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func float32s(v []float64) []float32 {
	if v == nil {
		return nil
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

type nopProgress struct{}

func (nopProgress) Checkpoint(Checkpoint, int, int, int)            {}
func (nopProgress) Done(int)                                        {}
func (nopProgress) Model(Checkpoint, ModelInfo)                     {}
func (nopProgress) Finished(Checkpoint, bool, error, time.Duration) {}
