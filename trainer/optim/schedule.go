package optim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Learning-rate schedule kinds.
const (
	Constant  = "constant"
	StepDecay = "step"
	Cosine    = "cosine"
)

// Schedule gives the learning rate of each epoch. The rate is constant
// within an epoch, so it depends only on the epoch number and a resumed run
// follows the same schedule.
type Schedule struct {
	// Kind is Constant (the default), StepDecay or Cosine.
	Kind string
	// StepSize is the number of epochs between two decays of StepDecay
	// (default 1).
	StepSize int
	// Gamma is StepDecay's decay factor (default 0.1).
	Gamma float64
	// MinLR is the rate Cosine reaches after the last epoch (default 0).
	MinLR float64
}

// WithDefaults returns s with unset fields set to their defaults and the
// fields its kind does not use cleared.
func (s Schedule) WithDefaults() Schedule {
	s.Kind = strings.ToLower(s.Kind)
	if s.Kind == "" {
		s.Kind = Constant
	}
	if s.Kind != StepDecay {
		s.StepSize, s.Gamma = 0, 0
	} else {
		if s.StepSize == 0 {
			s.StepSize = 1
		}
		if s.Gamma == 0 {
			s.Gamma = 0.1
		}
	}
	if s.Kind != Cosine {
		s.MinLR = 0
	}
	return s
}

// Validate checks s (after WithDefaults); see Config.Validate.
func (s Schedule) Validate() error {
	switch s.Kind {
	case Constant, Cosine:
	case StepDecay:
		if s.StepSize <= 0 {
			return bad("StepSize", s.StepSize, "a number of epochs ≥ 1")
		}
		if !(s.Gamma > 0) || s.Gamma > 1 {
			return bad("Gamma", s.Gamma, "a factor in (0, 1]")
		}
	default:
		return bad("Kind", strconv.Quote(s.Kind), fmt.Sprintf("%s, %s or %s", Constant, StepDecay, Cosine))
	}
	if !(s.MinLR >= 0) || math.IsInf(s.MinLR, 0) {
		return bad("MinLR", s.MinLR, "a finite learning rate ≥ 0")
	}
	return nil
}

// LR returns the learning rate of epoch (1-based) in a run of epochs epochs
// with base rate base:
//
//   - Constant: base;
//   - StepDecay: base · Gamma^⌊(epoch−1)/StepSize⌋ (PyTorch's StepLR, stepped
//     once per epoch);
//   - Cosine: MinLR + (base − MinLR)·(1 + cos(π·(epoch−1)/epochs))/2
//     (PyTorch's CosineAnnealingLR with T_max = epochs, stepped per epoch):
//     base in the first epoch, falling towards MinLR.
func (s Schedule) LR(base float64, epoch, epochs int) float64 {
	e := max(epoch-1, 0)
	switch s.Kind {
	case StepDecay:
		if s.StepSize > 0 {
			return base * math.Pow(s.Gamma, float64(e/s.StepSize))
		}
	case Cosine:
		if epochs > 0 {
			return s.MinLR + (base-s.MinLR)*(1+math.Cos(math.Pi*float64(min(e, epochs))/float64(epochs)))/2
		}
	}
	return base
}

// String formats s as in "constant", "step(size=10,gamma=0.1)" or
// "cosine(min=0)".
func (s Schedule) String() string {
	switch s.Kind {
	case StepDecay:
		return fmt.Sprintf("step(size=%d,gamma=%g)", s.StepSize, s.Gamma)
	case Cosine:
		return fmt.Sprintf("cosine(min=%g)", s.MinLR)
	}
	return s.Kind
}
