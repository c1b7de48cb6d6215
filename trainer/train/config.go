package train

import (
	"errors"
	"fmt"
	"math"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/trainer/dataset"
	"github.com/marginaudit/marginaudit/trainer/model"
	"github.com/marginaudit/marginaudit/trainer/optim"
)

// Errors wrapped by Run.
var (
	// ErrConfig reports settings that cannot work.
	ErrConfig = errors.New("train: bad configuration")
	// ErrExists reports an output folder that already holds checkpoints
	// when Config.Resume is false.
	ErrExists = errors.New("train: output folder already holds checkpoints")
	// ErrResumeMismatch reports a checkpoint to resume from that was made
	// with other settings.
	ErrResumeMismatch = errors.New("train: checkpoint was made with other settings")
)

// Config describes a training run. Zero fields take the defaults listed.
type Config struct {
	// Dataset names the dataset for dataset.Load ("mnist", "fashion-mnist"
	// or "cifar10"), read from DataDir ("" = the default locations).
	Dataset string
	DataDir string
	// Train and Test, when set, are used instead of loading Dataset (for
	// tests and custom data); Dataset then only names them in the metadata
	// (default: Train.Name).
	Train, Test *dataset.Dataset
	// TrainLimit and TestLimit, when positive, keep only the first images of
	// each split.
	TrainLimit, TestLimit int

	// Arch is the architecture (zero fields: model.Arch defaults; Kind is
	// required).
	Arch model.Arch
	// Epochs is the number of epochs to train; 0 writes only the
	// initialisation checkpoint. When resuming, a run may be extended by
	// raising Epochs (a cosine schedule then changes shape).
	Epochs int
	// BatchSize is the mini-batch size (default 128). The last batch of an
	// epoch may be smaller.
	BatchSize int
	// EvalBatchSize is the batch size of evaluation (default 1000).
	EvalBatchSize int
	// Seed determines the initial weights and the shuffling.
	Seed uint64
	// Optim selects the optimizer (default Adam, lr 0.001).
	Optim optim.Config
	// Adv, when not nil, trains adversarially: in every mini-batch a share
	// of the images is replaced by PGD adversarial examples against the
	// current weights (see Adversarial). Nil is standard training.
	Adv *Adversarial

	// Out is the folder that receives the checkpoints and train.csv
	// (required; created if missing).
	Out string
	// Resume continues from the last complete checkpoint in Out. Without it,
	// Run refuses an Out that already holds checkpoints (ErrExists).
	Resume bool
	// Threads is the number of threads onnxruntime uses per run (0: one per
	// core).
	Threads int
}

// Adversarial configures PGD adversarial training (Madry et al., ICLR 2018)
// as the study does it: in every mini-batch the first Frac share of the
// images (the batch is already shuffled), ⌊Frac·n + ½⌋ of n, is replaced by
// adversarial examples that projected gradient ascent on the cross-entropy
// (package attack's PGD) finds against the weights of that moment, within
// the ε-ball around each image and clipped to [0, 1]; the training loss is
// the mean over the mixed batch. Zero Norm and Frac take their defaults; the
// other fields are used as written, so start from DefaultAdversarial.
type Adversarial struct {
	// Norm is the norm of the ball: attack.LInf (the default and the
	// study's) or attack.L2.
	Norm attack.Norm
	// Eps is the radius ε of the ball, Step the size of each step (in
	// pixel units) and Steps their number.
	Eps, Step float64
	Steps     int
	// RandomStart starts each attack from a random point of the ball,
	// drawn from a generator seeded by (Seed, epoch, batch), so that a
	// resumed run draws what an uninterrupted one does.
	RandomStart bool
	// Frac is the share of each mini-batch replaced, in (0, 1]; 0 means
	// 0.5, the study's half.
	Frac float64
}

// DefaultAdversarial returns the PGD settings of adversarial training for
// the named dataset (names as dataset.Lookup accepts them), L∞ with a random
// start and half of each batch replaced:
//
//	mnist          ε = 0.3,   step 0.01,  40 steps
//	fashion-mnist  ε = 0.1,   step 0.01,  20 steps
//	cifar10        ε = 8/255, step 2/255, 10 steps
//
// MNIST's and CIFAR-10's are those of Madry et al. (ICLR 2018), whose
// CIFAR-10 model took 7 steps; 10 is the common choice since.
func DefaultAdversarial(name string) (*Adversarial, error) {
	info, err := dataset.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("%w: no default adversarial settings: %w", ErrConfig, err)
	}
	a := &Adversarial{Norm: attack.LInf, RandomStart: true, Frac: 0.5}
	switch info.Name {
	case "mnist":
		a.Eps, a.Step, a.Steps = 0.3, 0.01, 40
	case "fashion-mnist":
		a.Eps, a.Step, a.Steps = 0.1, 0.01, 20
	case "cifar10":
		a.Eps, a.Step, a.Steps = 8.0/255, 2.0/255, 10
	default:
		return nil, fmt.Errorf("%w: no default adversarial settings for %q", ErrConfig, info.Name)
	}
	return a, nil
}

// withDefaults returns a with defaults applied.
func (a Adversarial) withDefaults() Adversarial {
	if a.Norm == 0 {
		a.Norm = attack.LInf
	}
	if a.Frac == 0 {
		a.Frac = 0.5
	}
	return a
}

// validate checks a after withDefaults.
func (a Adversarial) validate() error {
	finite := func(v float64) bool { return v > 0 && !math.IsInf(v, 0) }
	switch {
	case a.Norm != attack.LInf && a.Norm != attack.L2:
		return fmt.Errorf("%w: adversarial norm %v; want L∞ or L2", ErrConfig, a.Norm)
	case !finite(a.Eps):
		return fmt.Errorf("%w: adversarial ε = %v; want a finite value > 0", ErrConfig, a.Eps)
	case !finite(a.Step):
		return fmt.Errorf("%w: adversarial step %v; want a finite value > 0", ErrConfig, a.Step)
	case a.Steps < 1:
		return fmt.Errorf("%w: %d adversarial steps; want at least 1", ErrConfig, a.Steps)
	case !(a.Frac > 0 && a.Frac <= 1):
		return fmt.Errorf("%w: adversarial fraction %v; want a share of the batch in (0, 1]", ErrConfig, a.Frac)
	}
	return nil
}

// withDefaults returns c with defaults applied.
func (c Config) withDefaults() Config {
	if c.BatchSize == 0 {
		c.BatchSize = 128
	}
	if c.EvalBatchSize == 0 {
		c.EvalBatchSize = 1000
	}
	if c.Dataset == "" && c.Train != nil {
		c.Dataset = c.Train.Name
	}
	c.Arch = c.Arch.WithDefaults()
	c.Optim = c.Optim.WithDefaults()
	if c.Adv != nil {
		a := c.Adv.withDefaults()
		c.Adv = &a // a copy: the caller's value is not changed
	}
	return c
}

// validate checks the settings that do not need the data.
func (c Config) validate() error {
	switch {
	case c.Out == "":
		return fmt.Errorf("%w: no output folder", ErrConfig)
	case c.Epochs < 0:
		return fmt.Errorf("%w: %d epochs", ErrConfig, c.Epochs)
	case c.Epochs > 999_999_999:
		return fmt.Errorf("%w: %d epochs is more than checkpoint names allow", ErrConfig, c.Epochs)
	case c.BatchSize < 0 || c.EvalBatchSize < 0:
		return fmt.Errorf("%w: batch sizes %d, %d", ErrConfig, c.BatchSize, c.EvalBatchSize)
	case c.TrainLimit < 0 || c.TestLimit < 0:
		return fmt.Errorf("%w: negative image limit", ErrConfig)
	case c.Threads < 0:
		return fmt.Errorf("%w: %d threads", ErrConfig, c.Threads)
	case c.Dataset == "" && (c.Train == nil || c.Test == nil):
		return fmt.Errorf("%w: no dataset", ErrConfig)
	case (c.Train == nil) != (c.Test == nil):
		return fmt.Errorf("%w: Train and Test must be given together", ErrConfig)
	}
	if err := c.Optim.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Adv != nil {
		return c.Adv.validate()
	}
	return nil
}

// loadData returns the training and test sets, limited as configured.
func (c Config) loadData() (tr, te *dataset.Dataset, err error) {
	tr, te = c.Train, c.Test
	if tr == nil {
		if tr, err = dataset.Load(c.Dataset, "train", c.DataDir); err != nil {
			return nil, nil, err
		}
		if te, err = dataset.Load(c.Dataset, "test", c.DataDir); err != nil {
			return nil, nil, err
		}
	}
	for _, d := range []*dataset.Dataset{tr, te} {
		if err := d.Validate(); err != nil {
			return nil, nil, err
		}
	}
	if tr.C != te.C || tr.H != te.H || tr.W != te.W || tr.Classes != te.Classes {
		return nil, nil, fmt.Errorf("%w: training images %dx%dx%d (%d classes), test images %dx%dx%d (%d classes)",
			ErrConfig, tr.C, tr.H, tr.W, tr.Classes, te.C, te.H, te.W, te.Classes)
	}
	if c.TrainLimit > 0 {
		tr = tr.Head(c.TrainLimit)
	}
	if c.TestLimit > 0 {
		te = te.Head(c.TestLimit)
	}
	return tr, te, nil
}
