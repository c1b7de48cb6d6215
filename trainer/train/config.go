package train

import (
	"errors"
	"fmt"

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
