package train

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/option"
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
	// Threads is how many threads training may use in all (0: one per
	// core), as attack.Options.Threads. A mini-batch of n images is cut into
	// ⌈n/64⌉ parts of 64 images each but the last, whatever Threads is, and
	// up to Threads parts run at once, each as a single-threaded onnxruntime
	// run; the batch's gradient and loss are the parts' weighted by their
	// share of the batch, summed in the parts' order, so the checkpoints do
	// not depend on Threads. A step therefore uses at most ⌈BatchSize/64⌉
	// threads; evaluation cuts its batches the same way, and PGD spreads
	// its images over Threads workers.
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
	// Eps is the radius ε of the ball, in pixel units.
	Eps float64
	// PGDParams are the steps (Step in pixel units, 0 for
	// attack.DefaultPGDStepScale·ε/Steps) and the random start. A random
	// start is drawn from a generator seeded by (Seed, epoch, batch), so
	// that a resumed run draws what an uninterrupted one does.
	attack.PGDParams
	// Frac is the share of each mini-batch replaced, in (0, 1]; 0 means
	// DefaultAdvFrac, the study's half.
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
	a := &Adversarial{Norm: attack.LInf, PGDParams: attack.PGDParams{RandomStart: true}, Frac: DefaultAdvFrac}
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

// Defaults of Config and Adversarial.
const (
	DefaultBatchSize     = 128
	DefaultEvalBatchSize = 1000
	// DefaultAdvFrac is the study's share of each batch replaced by
	// adversarial examples.
	DefaultAdvFrac = 0.5
	// MaxEpochs is the most epochs that checkpoint names allow.
	MaxEpochs = 999_999_999
)

// withDefaults returns a with defaults applied.
func (a Adversarial) withDefaults() Adversarial {
	if a.Norm == "" {
		a.Norm = attack.LInf
	}
	if a.Frac == 0 {
		a.Frac = DefaultAdvFrac
	}
	if a.Steps > 0 {
		a.Step = a.StepFor(a.Eps)
	}
	return a
}

// validate checks a after withDefaults; its fields are named "Adv.…".
func (a Adversarial) validate() error {
	switch {
	case a.Norm != attack.LInf && a.Norm != attack.L2:
		return bad("Adv.Norm", a.Norm, "linf or l2")
	case !(a.Eps > 0) || !option.Finite(a.Eps):
		return bad("Adv.Eps", a.Eps, "a finite radius > 0")
	case !(a.Frac > 0 && a.Frac <= 1):
		return bad("Adv.Frac", a.Frac, "a share of the batch in (0, 1]")
	}
	return option.Nest(ErrConfig, "Adv.", a.PGDParams.Validate())
}

// withDefaults returns c with defaults applied.
func (c Config) withDefaults() Config {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.EvalBatchSize == 0 {
		c.EvalBatchSize = DefaultEvalBatchSize
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

// Validate checks, with the defaults applied, every setting that can be
// checked without reading the data: for a named Dataset that includes the
// architecture on its image size. Run calls it first. Its errors wrap
// ErrConfig; errors.As finds an *option.Error naming the field by its
// path in Config, such as "Epochs", "Optim.LR" or "Adv.Eps".
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Out == "":
		return bad("Out", `""`, "an output folder")
	case c.Epochs < 0 || c.Epochs > MaxEpochs:
		return bad("Epochs", c.Epochs, fmt.Sprintf("0 (only the initialisation) to %d", MaxEpochs))
	case c.BatchSize < 0:
		return bad("BatchSize", c.BatchSize, "an integer ≥ 1")
	case c.EvalBatchSize < 0:
		return bad("EvalBatchSize", c.EvalBatchSize, "an integer ≥ 1")
	case c.TrainLimit < 0:
		return bad("TrainLimit", c.TrainLimit, "0 (all) or a number of images ≥ 1")
	case c.TestLimit < 0:
		return bad("TestLimit", c.TestLimit, "0 (all) or a number of images ≥ 1")
	case c.Threads < 0:
		return bad("Threads", c.Threads, "0 (one per core) or a number of threads ≥ 1")
	case c.Dataset == "" && (c.Train == nil || c.Test == nil):
		return bad("Dataset", `""`, "a data set name, or Train and Test")
	case (c.Train == nil) != (c.Test == nil):
		return bad("Train", "without Test", "Train and Test together")
	}
	if err := c.Optim.Validate(); err != nil {
		return option.Nest(ErrConfig, "Optim.", err)
	}
	if c.Train == nil {
		info, err := dataset.Lookup(c.Dataset)
		if err != nil {
			return &option.Error{Kind: ErrConfig, Field: "Dataset", Value: strconv.Quote(c.Dataset),
				Want: strings.Join(dataset.Names(), ", ")}
		}
		if err := c.Arch.Validate(info.C, info.H, info.W); err != nil {
			return option.Nest(ErrConfig, "Arch.", err)
		}
	}
	if c.Adv != nil {
		return c.Adv.validate()
	}
	return nil
}

// bad returns the *option.Error of a Config field.
func bad(field string, value any, want string) error {
	return &option.Error{Kind: ErrConfig, Field: field, Value: value, Want: want}
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
