package auditor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/bound"
	"github.com/marginaudit/marginaudit/auditor/shard"
	"github.com/marginaudit/marginaudit/internal/convention"
	"github.com/marginaudit/marginaudit/internal/option"
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
	// Dataset is the name of the data set the images come from, as the
	// trainer writes it in a checkpoint's metadata ("mnist",
	// "fashion-mnist", "cifar10"); "" for arrays given by the user. A
	// checkpoint whose metadata names another data set is audited all the
	// same, with a warning.
	Dataset string
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
	// Threads is how many threads the attacks use: they attack Threads
	// batches at once, one onnxruntime thread each (see
	// attack.Options.Threads); 0 means one per core.
	Threads int
	// BatchSize is how many images an attack run takes; 0 means
	// attack.DefaultDeepFoolBatch for DeepFool and attack.DefaultRobustBatch
	// for PGD.
	BatchSize int
	// SaveAdversarial saves the perturbations DeepFool finds, and with
	// refinement the refined ones, with each checkpoint's results (see
	// AdversarialDir). It does not change the results, so it is no
	// setting: an audit resumed with it adds them to
	// the checkpoints it audits, and warns (Progress.Warn) for each
	// finished checkpoint without them, which it cannot add without
	// auditing that checkpoint again (remove its parts/NAME.csv to).
	SaveAdversarial bool
	// Shard, when set, audits only that shard of the work into Out, as
	// package shard divides it (see planShard); nil audits all of it.
	Shard *shard.Spec
}

// Validate checks the settings (Settings.Validate) and the speed options,
// all that can be checked before the images are read and the checkpoints
// found; Run calls it first. Its errors wrap ErrSettings and name the
// option ("threads", "batch_size", or a setting).
func (cfg *Config) Validate() error {
	switch {
	case cfg.Threads < 0:
		return &option.Error{Kind: ErrSettings, Field: "threads", Value: cfg.Threads, Want: "0 (one per core) or a number of threads ≥ 1"}
	case cfg.BatchSize < 0:
		return &option.Error{Kind: ErrSettings, Field: "batch_size", Value: cfg.BatchSize, Want: fmt.Sprintf("0 (the default, %d) or a number of images ≥ 1", attack.DefaultDeepFoolBatch)}
	}
	return cfg.Settings.Validate()
}

// Progress hears about an audit as it runs; the CLI renders it. Library code
// never prints.
type Progress interface {
	// Checkpoint is called before checkpoint i of n (0-based) is audited,
	// with the number of attack runs (images × norms, plus images × PGD
	// radii) it will take.
	Checkpoint(c Checkpoint, i, n, work int)
	// Stage is called when an attack step over the images of split
	// begins on checkpoint c, such as "l2" (DeepFool), "l2 refine",
	// "l2 certify" or "pgd linf ε=0.03", with how many images it
	// attacks; Done then counts them.
	Stage(c Checkpoint, split Split, step string, images int)
	// Done reports finished attack runs.
	Done(n int)
	// Model is called once checkpoint c's model is loaded, with how it is
	// run: which scores the attacks use, how a fixed batch is handled.
	Model(c Checkpoint, m ModelInfo)
	// Finished is called after each checkpoint: skipped (already in the
	// store), audited, or failed with err.
	Finished(c Checkpoint, skipped bool, err error, elapsed time.Duration)
	// Warn reports something about checkpoint c that does not stop its
	// audit but may make its results mean less than they seem, such as
	// metadata naming another data set than the images'.
	Warn(c Checkpoint, msg string)
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
// transitions.csv. A folder that holds no audit yet is created with the
// first finished checkpoint: when every checkpoint fails, nothing is
// written. A checkpoint's results are the DeepFool margins and the
// PGD robust accuracies of every split (with each image's outcome,
// robust.csv), and each image's clean max-softmax
// probability from the same classifier (confidence.csv; for a model that
// outputs probabilities, its largest output), and how its model was run
// (ModelInfo), and with Config.SaveAdversarial the perturbations DeepFool
// and the refinement found (see AdversarialDir). A checkpoint that fails is reported to p and skipped; Run
// goes on with the others and returns the failures joined (each a
// *CheckpointError) after writing the report of what succeeded.
func Run(ctx context.Context, cfg Config, p Progress) (*Summary, error) {
	if p == nil {
		p = nopProgress{}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, s := range cfg.Settings.Splits {
		if err := cfg.Data[s].check(s); err != nil {
			return nil, err
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
	store, err := openExistingStore(cfg.Out, &cfg.Settings)
	if err == nil && store != nil {
		err = plan.attach(store)
	}
	if err != nil {
		return nil, err
	}
	var failures []error
	for i, c := range ckpts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if store != nil && store.Done(c.Name) {
			if cfg.SaveAdversarial && !store.HasAdversarial(c.Name) {
				p.Warn(c, fmt.Sprintf("checkpoint %s was audited without saving its adversarial perturbations; they are not added without auditing it again (remove %s to)",
					c.Name, filepath.Join(cfg.Out, PartsDir, c.Name+".csv")))
			}
			p.Finished(c, true, nil, 0)
			continue
		}
		start := time.Now()
		ccfg := plan.config(cfg, c)
		p.Checkpoint(c, i, len(ckpts), ccfg.work())
		err := c.Err
		if err == nil {
			var part *Part
			if part, err = auditCheckpoint(ctx, ccfg, c, p); err == nil && store == nil {
				if store, err = OpenStore(cfg.Out, &cfg.Settings); err == nil {
					err = plan.attach(store)
				}
				if err != nil {
					return nil, err
				}
			}
			if err == nil {
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
	if store == nil {
		return nil, errors.Join(failures...)
	}
	sum, err := store.WriteReport()
	if err != nil {
		return nil, err
	}
	return sum, errors.Join(failures...)
}

// openExistingStore opens the store in dir when dir holds an audit
// (settings.json or parts), and returns nil when it holds none yet, so
// that a run whose every checkpoint fails writes nothing. A dir that is a
// file is an error at once.
func openExistingStore(dir string, settings *Settings) (*Store, error) {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("auditor: audit directory: %w", err)
	case !st.IsDir():
		return nil, fmt.Errorf("auditor: audit directory %s is a file", dir)
	}
	for _, f := range []string{SettingsFile, PartsDir} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return OpenStore(dir, settings)
		}
	}
	return nil, nil
}

// work counts the attack runs of one checkpoint: DeepFool (and FMN, when
// refining, and the certified bound, when certifying) per image and norm,
// PGD per image, norm and radius.
func (cfg *Config) work() int {
	n, margins := 0, len(cfg.Settings.Norms)
	if cfg.Settings.Refine {
		margins += len(cfg.Settings.Norms)
	}
	if cfg.Settings.Certify {
		margins += len(cfg.Settings.Norms)
	}
	for _, s := range cfg.Settings.Splits {
		n += cfg.Data[s].Len() * (margins + len(cfg.Settings.PGD.Norms)*len(cfg.Settings.PGD.Eps))
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
	if im := cfg.someImages(); im != nil && im.Dataset != "" {
		if d := modelMetadata(m)[MetadataDataset]; d != "" && !strings.EqualFold(d, im.Dataset) {
			p.Warn(c, fmt.Sprintf("checkpoint %s: its metadata says %s=%s, but the images are %s", c.Name, MetadataDataset, d, im.Dataset))
		}
	}
	opt.Name, opt.Threads = c.Name, cfg.Threads
	clf, err := newClassifier(m, opt, cfg.someImages(), c.Name)
	if err != nil {
		return nil, err
	}
	defer clf.Close()
	info := ModelInfo{Checkpoint: c.Name, Epoch: c.Epoch, Scores: string(clf.ScoreSource()), Batch: clf.Batch().String(),
		EpochFrom: c.From, InputRange: [2]float64{widen(opt.Lo), widen(opt.Hi)}, Normalization: formatNormalization(opt.Mean, opt.Std)}
	p.Model(c, info)
	part := &Part{Checkpoint: c.Name, Epoch: c.Epoch, Model: &info}
	var ct *bound.Certifier
	if cfg.Settings.Certify {
		if ct, err = bound.New(clf, bound.Options{Steps: cfg.Settings.CertifySettings.Steps, Threads: cfg.Threads}); err != nil {
			return nil, fmt.Errorf("certified bounds: %w", err)
		}
		defer ct.Close()
	}
	s := &cfg.Settings
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
			recs, adv, err := margins(ctx, clf, ct, im, c, split, norm, cfg, p)
			if err != nil {
				return nil, err
			}
			part.Records = append(part.Records, recs...)
			part.Adversarial = append(part.Adversarial, adv...)
		}
		for _, norm := range s.PGD.Norms {
			for _, eps := range s.PGD.Eps {
				po := attack.PGDOptions{Norm: norm, Eps: eps, PGDParams: s.PGD.PGDParams, Seed: uint64(s.Seed),
					BatchSize: cfg.BatchSize, EarlyStop: true}
				p.Stage(c, split, fmt.Sprintf("pgd %s ε=%g", norm, eps), im.Len())
				rob, err := attack.RobustAccuracy(ctx, clf, im.X, im.Labels, po)
				if err != nil {
					return nil, fmt.Errorf("PGD %s ε=%g on %s: %w", norm, eps, split, err)
				}
				p.Done(im.Len())
				part.PGD = append(part.PGD, PGDResult{Checkpoint: c.Name, Epoch: c.Epoch, Split: split, Norm: norm, Eps: eps, Images: rob.N, Robust: rob.Robust})
				for i, robust := range rob.IsRobust {
					part.Robust = append(part.Robust, RobustImage{Checkpoint: c.Name, Epoch: c.Epoch, Split: split, Norm: norm, Eps: eps, Index: im.Index[i], Robust: robust})
				}
			}
		}
	}
	return part, nil
}

// margins measures the margins of the images of one split in one norm:
// DeepFool's, and with Settings.Refine the FMN refinement's, started at
// DeepFool's points or, where DeepFool failed, at a PGD search's. An image that DeepFool fails on has no
// margin (NaN, Success false); one that the refinement flips nothing of is
// censored at the largest radius tried. With a certifier ct (nil without
// Settings.Certify), each correctly classified image gets its certified
// lower bound, bisected up to its refined margin (or its radius tried),
// else DeepFool's, else the input box's diameter; a misclassified image
// gets 0, its prediction being wrong already. With Config.SaveAdversarial
// it returns the perturbations too: DeepFool's, and when refining the
// refined points' (see AdversarialDir). Each step is reported to p.
func margins(ctx context.Context, clf *attack.Classifier, ct *bound.Certifier, im *Images, c Checkpoint, split Split, norm Norm, cfg Config, p Progress) ([]Record, []Adversarial, error) {
	s := &cfg.Settings
	progress := attack.ProgressFunc(p.Done)
	p.Stage(c, split, string(norm), im.Len())
	df := attack.DeepFoolOptions{Norm: norm, DeepFoolParams: s.DeepFoolParams, Seed: uint64(s.Seed),
		BatchSize: cfg.BatchSize, KeepPerturbation: s.Refine || cfg.SaveAdversarial, FirstImage: im.First, Progress: progress}
	res, err := attack.DeepFool(ctx, clf, im.X, im.Labels, df)
	if err != nil {
		return nil, nil, fmt.Errorf("DeepFool %s on %s: %w", norm, split, err)
	}
	var ref []attack.RefineResult
	if s.Refine {
		p.Stage(c, split, string(norm)+" refine", im.Len())
		fmn, err := attack.NewFMN(clf, attack.FMNOptions{Norm: norm, Steps: s.RefineParams.Steps, BatchSize: cfg.BatchSize,
			KeepPerturbation: cfg.SaveAdversarial, Progress: progress})
		if err != nil {
			return nil, nil, err
		}
		if ref, err = fmn.Refine(ctx, im.X, res); err != nil {
			return nil, nil, fmt.Errorf("FMN %s on %s: %w", norm, split, err)
		}
	}
	recs := make([]Record, len(res))
	for i, r := range res {
		rec := Record{Checkpoint: c.Name, Epoch: c.Epoch, Split: split, Index: im.Index[i], Label: r.Label, Pred: r.Pred, Correct: r.Correct(), Norm: norm,
			Margin: r.Margin, MarginRefined: math.NaN(), Iterations: r.Iterations, Retries: r.Retries, Success: r.Success}
		if !r.Success { // no perturbation found: no margin to report
			rec.Margin = math.NaN()
		}
		if ref != nil {
			rec.MarginRefined, rec.Censored = ref[i].Margin, ref[i].Censored
			switch {
			case rec.Censored:
				rec.MarginRefined = ref[i].CensoredAt
			case r.Success:
				// DeepFool's point is confirmed adversarial too; where FMN
				// kept it, its norm in float32 may exceed DeepFool's float64
				// one by rounding (≈1e-9 relative).
				rec.MarginRefined = min(rec.MarginRefined, r.Margin)
			}
		}
		recs[i] = rec
	}
	if ct != nil {
		p.Stage(c, split, string(norm)+" certify", im.Len())
		if err := certify(ctx, ct, im, norm, recs, progress); err != nil {
			return nil, nil, fmt.Errorf("certified bounds %s on %s: %w", norm, split, err)
		}
	}
	if !cfg.SaveAdversarial {
		return recs, nil, nil
	}
	return recs, savedPoints(split, norm, res, ref, recs, im, cfg.Data[split]), nil
}

// savedPoints returns the perturbations to save of the images im (as the
// classifier took them; orig as given) in one norm: DeepFool's results
// res, and with refinement (ref not nil) the refined points of the
// records recs that have a refined margin.
func savedPoints(split Split, norm Norm, res []attack.DeepFoolResult, ref []attack.RefineResult, recs []Record, im, orig *Images) []Adversarial {
	adv := []Adversarial{adversarialOf(split, norm, false, func(i int) ([]float32, int) {
		if !res[i].Success {
			return nil, -1
		}
		return res[i].Perturbation, res[i].AdvPred
	}, im, orig)}
	if ref != nil {
		adv = append(adv, adversarialOf(split, norm, true, func(i int) ([]float32, int) {
			if !recs[i].HasRefinedMargin() {
				return nil, -1
			}
			return ref[i].Perturbation, ref[i].AdvPred
		}, im, orig))
	}
	return adv
}

// certify sets the certified lower bounds of recs, the records of the
// images im in one norm (see margins).
func certify(ctx context.Context, ct *bound.Certifier, im *Images, norm Norm, recs []Record, progress attack.Progress) error {
	pred, upper := make([]int, len(recs)), make([]float64, len(recs))
	for i, r := range recs {
		pred[i], upper[i] = r.Pred, math.Inf(1) // +Inf: the box's diameter
		switch {
		case r.Refined():
			upper[i] = r.MarginRefined
		case r.Success:
			upper[i] = r.Margin
		}
	}
	lower, err := ct.Certify(ctx, im.X, pred, norm, upper)
	if err != nil {
		return err
	}
	for i := range recs {
		recs[i].Certified = true
		if recs[i].Correct {
			recs[i].MarginLower = lower[i]
		}
	}
	progress.Done(len(recs))
	return nil
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

// Metadata keys describing a checkpoint's input convention (written by the
// trainer; other models may carry them or take the settings instead).
const (
	MetadataInputRange    = convention.KeyRange         // "lo,hi", e.g. "0,1"
	MetadataNormalization = convention.KeyNormalization // "none", or "mean=a,b,c;std=d,e,f"
	MetadataDataset       = convention.KeyDataset       // the data set it was trained on, e.g. "mnist"
)

// modelMetadata returns the metadata_props of m as a map.
func modelMetadata(m *onnxpb.ModelProto) map[string]string {
	meta := map[string]string{}
	for _, p := range m.GetMetadataProps() {
		meta[p.GetKey()] = p.GetValue()
	}
	return meta
}

// classifierOptions combines the settings with the checkpoint's metadata:
// settings win where set; otherwise the metadata's input range and
// normalisation apply, and [0, 1] without normalisation by default.
func classifierOptions(m *onnxpb.ModelProto, s *Settings) (attack.Options, error) {
	meta := modelMetadata(m)
	var opt attack.Options
	r := s.Range
	if r == [2]float64{} {
		r = [2]float64{0, 1}
		if v, ok := meta[MetadataInputRange]; ok {
			var err error
			if r, err = convention.ParseRange(v); err != nil {
				return opt, fmt.Errorf("metadata %s: %w", MetadataInputRange, err)
			}
		}
	}
	opt.Lo, opt.Hi = float32(r[0]), float32(r[1])
	mean, std := s.Mean, s.Std
	if len(mean) == 0 && len(std) == 0 {
		var err error
		if mean, std, err = convention.ParseNormalization(meta[MetadataNormalization]); err != nil {
			return opt, fmt.Errorf("metadata %s=%q: %w", MetadataNormalization, meta[MetadataNormalization], err)
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
func (nopProgress) Stage(Checkpoint, Split, string, int)            {}
func (nopProgress) Done(int)                                        {}
func (nopProgress) Model(Checkpoint, ModelInfo)                     {}
func (nopProgress) Finished(Checkpoint, bool, error, time.Duration) {}
func (nopProgress) Warn(Checkpoint, string)                         {}
