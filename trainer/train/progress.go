package train

import (
	"time"

	"github.com/marginaudit/marginaudit/trainer/checkpoint"
)

// Progress receives Run's reports. Run calls it from the goroutine that
// called Run, in order: Start once, then Step after every mini-batch and
// Epoch after every checkpoint written (epoch 0 included). Step is called
// often (hundreds of times per epoch): implementations should be cheap and
// rate-limit their own output.
type Progress interface {
	Start(Start)
	Step(Step)
	Epoch(Epoch)
}

// Start describes the run about to begin.
type Start struct {
	Dir         string // output folder
	Arch        string // architecture, as model.Arch.String formats it
	Params      int    // number of weights
	Epochs      int    // last epoch of the run
	First       int    // first epoch to train: 1, or one past the resumed checkpoint
	Resumed     bool   // whether Run continues from a checkpoint (epoch First−1)
	Batches     int    // mini-batches per epoch
	TrainImages int
	TestImages  int
}

// Step reports a finished mini-batch.
type Step struct {
	Epoch   int
	Batch   int // 1-based
	Batches int
	Images  int // images trained on so far in this epoch
	// Loss and Accuracy are the running means over this epoch's batches so
	// far, each measured before the batch's update; with adversarial
	// training, over the mixed batches.
	Loss, Accuracy float64
	// AdvLoss and AdvAccuracy are the same over the adversarial images
	// alone (zero without adversarial training).
	AdvLoss, AdvAccuracy float64
	LR                   float64
	Elapsed              time.Duration // since the epoch's first batch
}

// Epoch reports a checkpoint written.
type Epoch struct {
	Path     string // the .onnx file
	Metadata *checkpoint.Metadata
	// Train is the time spent in training steps, Eval the time of the
	// evaluation that followed. Adversarial is the part of Train spent
	// making adversarial examples.
	Train, Eval time.Duration
	Adversarial time.Duration
}

// nop is the Progress used when Run is given nil.
type nop struct{}

func (nop) Start(Start) {}
func (nop) Step(Step)   {}
func (nop) Epoch(Epoch) {}
