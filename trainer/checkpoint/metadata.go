package checkpoint

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/internal/convention"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
	"github.com/marginaudit/marginaudit/trainer/model"
	"github.com/marginaudit/marginaudit/trainer/optim"
)

// Keys of the metadata_props of a checkpoint. Numbers are written in Go's
// shortest round-tripping format ('g', -1); lists are comma-separated.
const (
	KeyFormat = "marginaudit_checkpoint" // format version of these keys: "1"

	// What the model reads and computes.
	KeyDataset       = convention.KeyDataset       // "mnist", "fashion-mnist", "cifar10", or another name for custom data
	KeyClasses       = "classes"                   // number of classes K
	KeyInputName     = "input_name"                // "input"
	KeyOutputName    = "output_name"               // "logits" (raw scores, not probabilities)
	KeyInputShape    = "input_shape"               // C,H,W, e.g. "1,28,28" (the batch axis is symbolic)
	KeyInputRange    = convention.KeyRange         // "0,1": the pixel range the model expects
	KeyNormalization = convention.KeyNormalization // "none": inputs are the pixels in input_range, not standardised

	// Architecture.
	KeyArchitecture = "architecture" // "mlp" or "cnn"
	KeyHidden       = "hidden"       // dense hidden sizes, e.g. "256,256"
	KeyChannels     = "channels"     // cnn conv channels, e.g. "32,64"
	KeyKernel       = "kernel"       // cnn kernel size, e.g. "3"

	// Training settings.
	KeyEpoch       = "epoch"              // this checkpoint's epoch; 0 = initialisation
	KeyEpochs      = "epochs"             // epochs planned for the run
	KeySeed        = "seed"               // seed of initialisation and shuffling
	KeyBatchSize   = "batch_size"         // mini-batch size
	KeyTrainImages = "train_images"       // training images used
	KeyTestImages  = "test_images"        // test images evaluated
	KeyOptimizer   = "optimizer"          // "sgd" or "adam"
	KeyLR          = "lr"                 // base learning rate
	KeyEpochLR     = "epoch_lr"           // learning rate used during this epoch (scheduled)
	KeyMomentum    = "momentum"           // sgd only
	KeyBeta1       = "beta1"              // adam only
	KeyBeta2       = "beta2"              // adam only
	KeyEps         = "eps"                // adam only
	KeyWeightDecay = "weight_decay"       // L2 coefficient
	KeySchedule    = "lr_schedule"        // "constant", "step" or "cosine"
	KeyStepSize    = "lr_step_size"       // step schedule only
	KeyGamma       = "lr_gamma"           // step schedule only
	KeyMinLR       = "lr_min"             // cosine schedule only
	KeyAdversarial = "adversarial"        // "none" or "pgd"
	KeyAdvNorm     = "adv_norm"           // pgd: "linf"
	KeyAdvEps      = "adv_eps"            // pgd: radius ε
	KeyAdvStep     = "adv_step"           // pgd: step size
	KeyAdvSteps    = "adv_steps"          // pgd: iterations
	KeyAdvFrac     = "adv_frac"           // pgd: fraction of each batch replaced
	KeyAdvRandom   = "adv_random"         // pgd: random start, "true" or "false"
	KeyTrainLoss   = "train_loss"         // mean training loss (see Metadata.TrainLoss)
	KeyTrainAcc    = "train_accuracy"     // training accuracy in [0, 1]
	KeyAdvLoss     = "train_adv_loss"     // pgd, epochs ≥ 1: mean loss of the adversarial images (see Metadata.AdvLoss)
	KeyAdvAcc      = "train_adv_accuracy" // pgd, epochs ≥ 1: accuracy on the adversarial images
	KeyTestLoss    = "test_loss"          // mean test loss
	KeyTestAcc     = "test_accuracy"      // test accuracy in [0, 1]
	KeySeconds     = "train_seconds"      // wall-clock seconds of the epoch's training steps
)

// FormatVersion is the value of KeyFormat that this package writes.
const FormatVersion = "1"

// ErrMetadata reports metadata that cannot be parsed.
var ErrMetadata = errors.New("checkpoint: bad metadata")

// Adversarial describes adversarial training. The zero value (Method "")
// means none.
type Adversarial struct {
	Method      string // "" (none) or "pgd"
	Norm        string // "linf"
	Eps, Step   float64
	Steps       int
	Frac        float64
	RandomStart bool
}

// Metadata is the record stored in a checkpoint.
type Metadata struct {
	Dataset       string
	Classes       int
	InputShape    []int      // C, H, W
	InputRange    [2]float64 // usually {0, 1}
	Normalization string     // "none"
	Arch          model.Arch

	Epoch, Epochs int
	Seed          uint64
	BatchSize     int
	TrainImages   int
	TestImages    int
	Optim         optim.Config
	EpochLR       float64
	Adversarial   Adversarial

	// TrainLoss and TrainAccuracy are, for epoch 0, measured on the whole
	// training set at the initial weights; for later epochs, the running
	// means over the epoch's mini-batches (as the study reports them): each
	// batch measured with the weights before its update.
	TrainLoss, TrainAccuracy float64
	// AdvLoss and AdvAccuracy are, with adversarial training and for
	// epochs ≥ 1, the running means over the adversarial images of the
	// epoch's mini-batches alone (measured as TrainLoss, which covers the
	// whole mixed batches); zero otherwise, and not written then.
	AdvLoss, AdvAccuracy float64
	// TestLoss and TestAccuracy are measured on the test set with the
	// checkpoint's weights.
	TestLoss, TestAccuracy float64
	// Seconds is the wall-clock time of the epoch's training steps
	// (0 for epoch 0).
	Seconds float64
}

// Props returns the metadata as ONNX metadata_props, in a fixed order.
func (m *Metadata) Props() []*onnxpb.StringStringEntryProto {
	var out []*onnxpb.StringStringEntryProto
	add := func(k, v string) {
		out = append(out, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(v)})
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	i := strconv.Itoa
	add(KeyFormat, FormatVersion)
	add(KeyDataset, m.Dataset)
	add(KeyClasses, i(m.Classes))
	add(KeyInputName, model.InputName)
	add(KeyOutputName, model.OutputName)
	add(KeyInputShape, model.FormatInts(m.InputShape))
	add(KeyInputRange, convention.FormatRange(m.InputRange))
	add(KeyNormalization, m.Normalization)
	add(KeyArchitecture, m.Arch.Kind)
	add(KeyHidden, model.FormatInts(m.Arch.Hidden))
	if m.Arch.Kind == model.CNN {
		add(KeyChannels, model.FormatInts(m.Arch.Channels))
		add(KeyKernel, i(m.Arch.Kernel))
	}
	add(KeyEpoch, i(m.Epoch))
	add(KeyEpochs, i(m.Epochs))
	add(KeySeed, strconv.FormatUint(m.Seed, 10))
	add(KeyBatchSize, i(m.BatchSize))
	add(KeyTrainImages, i(m.TrainImages))
	add(KeyTestImages, i(m.TestImages))
	o := m.Optim
	add(KeyOptimizer, o.Name)
	add(KeyLR, f(o.LR))
	add(KeyEpochLR, f(m.EpochLR))
	switch o.Name {
	case optim.SGD:
		add(KeyMomentum, f(o.Momentum))
	case optim.Adam:
		add(KeyBeta1, f(o.Beta1))
		add(KeyBeta2, f(o.Beta2))
		add(KeyEps, f(o.Eps))
	}
	add(KeyWeightDecay, f(o.WeightDecay))
	add(KeySchedule, o.Schedule.Kind)
	switch o.Schedule.Kind {
	case optim.StepDecay:
		add(KeyStepSize, i(o.Schedule.StepSize))
		add(KeyGamma, f(o.Schedule.Gamma))
	case optim.Cosine:
		add(KeyMinLR, f(o.Schedule.MinLR))
	}
	a := m.Adversarial
	if a.Method == "" {
		add(KeyAdversarial, "none")
	} else {
		add(KeyAdversarial, a.Method)
		add(KeyAdvNorm, a.Norm)
		add(KeyAdvEps, f(a.Eps))
		add(KeyAdvStep, f(a.Step))
		add(KeyAdvSteps, i(a.Steps))
		add(KeyAdvFrac, f(a.Frac))
		add(KeyAdvRandom, strconv.FormatBool(a.RandomStart))
	}
	add(KeyTrainLoss, f(m.TrainLoss))
	add(KeyTrainAcc, f(m.TrainAccuracy))
	if m.hasAdvRecord() {
		add(KeyAdvLoss, f(m.AdvLoss))
		add(KeyAdvAcc, f(m.AdvAccuracy))
	}
	add(KeyTestLoss, f(m.TestLoss))
	add(KeyTestAcc, f(m.TestAccuracy))
	add(KeySeconds, f(m.Seconds))
	return out
}

// hasAdvRecord reports whether m carries AdvLoss and AdvAccuracy: adversarial
// training, an epoch after the initialisation.
func (m *Metadata) hasAdvRecord() bool { return m.Adversarial.Method != "" && m.Epoch > 0 }

// ParseMetadata reads metadata written by Props. Keys it does not know are
// ignored; missing keys leave their fields zero, except that a missing
// format key, dataset, architecture, input shape or epoch is an error
// (the file is then not a marginaudit checkpoint). Malformed values fail
// with an error wrapping ErrMetadata that names the key.
func ParseMetadata(props []*onnxpb.StringStringEntryProto) (*Metadata, error) {
	kv := map[string]string{}
	for _, p := range props {
		kv[p.GetKey()] = p.GetValue()
	}
	for _, k := range []string{KeyFormat, KeyDataset, KeyArchitecture, KeyInputShape, KeyEpoch} {
		if _, ok := kv[k]; !ok {
			return nil, fmt.Errorf("%w: no %q key (not a marginaudit checkpoint?)", ErrMetadata, k)
		}
	}
	if v := kv[KeyFormat]; v != FormatVersion {
		return nil, fmt.Errorf("%w: %s = %q, this version reads %q", ErrMetadata, KeyFormat, v, FormatVersion)
	}
	p := &parser{kv: kv}
	m := &Metadata{
		Dataset:       kv[KeyDataset],
		Classes:       p.int(KeyClasses),
		InputShape:    p.ints(KeyInputShape),
		Normalization: kv[KeyNormalization],
		Arch: model.Arch{
			Kind:     kv[KeyArchitecture],
			Hidden:   p.ints(KeyHidden),
			Channels: p.ints(KeyChannels),
			Kernel:   p.int(KeyKernel),
		},
		Epoch:       p.int(KeyEpoch),
		Epochs:      p.int(KeyEpochs),
		Seed:        p.uint(KeySeed),
		BatchSize:   p.int(KeyBatchSize),
		TrainImages: p.int(KeyTrainImages),
		TestImages:  p.int(KeyTestImages),
		Optim: optim.Config{
			Name:        kv[KeyOptimizer],
			LR:          p.float(KeyLR),
			Momentum:    p.float(KeyMomentum),
			Beta1:       p.float(KeyBeta1),
			Beta2:       p.float(KeyBeta2),
			Eps:         p.float(KeyEps),
			WeightDecay: p.float(KeyWeightDecay),
			Schedule: optim.Schedule{
				Kind:     kv[KeySchedule],
				StepSize: p.int(KeyStepSize),
				Gamma:    p.float(KeyGamma),
				MinLR:    p.float(KeyMinLR),
			},
		},
		EpochLR:       p.float(KeyEpochLR),
		TrainLoss:     p.float(KeyTrainLoss),
		TrainAccuracy: p.float(KeyTrainAcc),
		AdvLoss:       p.float(KeyAdvLoss),
		AdvAccuracy:   p.float(KeyAdvAcc),
		TestLoss:      p.float(KeyTestLoss),
		TestAccuracy:  p.float(KeyTestAcc),
		Seconds:       p.float(KeySeconds),
	}
	if m.Arch.Kind != model.CNN {
		m.Arch.Channels = nil
	}
	if r := kv[KeyInputRange]; r != "" {
		var err error
		if m.InputRange, err = convention.ParseRange(r); err != nil {
			p.fail(KeyInputRange, r)
		}
	}
	if len(m.InputShape) != 3 && p.err == nil {
		p.fail(KeyInputShape, kv[KeyInputShape])
	}
	if adv := kv[KeyAdversarial]; adv != "" && adv != "none" {
		m.Adversarial = Adversarial{
			Method: adv, Norm: kv[KeyAdvNorm],
			Eps: p.float(KeyAdvEps), Step: p.float(KeyAdvStep), Steps: p.int(KeyAdvSteps),
			Frac: p.float(KeyAdvFrac), RandomStart: p.bool(KeyAdvRandom),
		}
	}
	if p.err != nil {
		return nil, p.err
	}
	return m, nil
}

// parser converts metadata values, keeping the first error.
type parser struct {
	kv  map[string]string
	err error
}

func (p *parser) fail(key, v string) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s = %q", ErrMetadata, key, v)
	}
}

func (p *parser) int(key string) int {
	v, ok := p.kv[key]
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.fail(key, v)
	}
	return n
}

func (p *parser) uint(key string) uint64 {
	v, ok := p.kv[key]
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		p.fail(key, v)
	}
	return n
}

func (p *parser) float(key string) float64 {
	v, ok := p.kv[key]
	if !ok {
		return 0
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil && !math.IsInf(x, 0) {
		p.fail(key, v)
	}
	return x
}

func (p *parser) bool(key string) bool {
	v, ok := p.kv[key]
	if !ok {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(key, v)
	}
	return b
}

func (p *parser) ints(key string) []int {
	v, ok := p.kv[key]
	if !ok {
		return nil
	}
	n, err := model.ParseInts(v)
	if err != nil {
		p.fail(key, v)
	}
	return n
}
