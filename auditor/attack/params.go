package attack

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/marginaudit/marginaudit/internal/option"
)

// ErrOptions is wrapped by every error that reports options an attack
// cannot take; errors.As finds an *option.Error naming the option (by its
// JSON name) and the values it allows.
var ErrOptions = errors.New("attack: bad options")

// Norm is the norm that measures perturbations. It marshals as its name,
// "l2" or "linf", the name margins.csv and settings.json use.
type Norm string

const (
	// L2 is the Euclidean norm.
	L2 Norm = "l2"
	// LInf is the maximum norm.
	LInf Norm = "linf"
)

// ParseNorm returns the norm named s ("l2" or "linf").
func ParseNorm(s string) (Norm, error) {
	if n := Norm(s); n.valid() {
		return n, nil
	}
	return "", fmt.Errorf("%w: unknown norm %q (want l2 or linf)", ErrOptions, s)
}

// String returns the norm's name.
func (n Norm) String() string { return string(n) }

// MarshalText returns the norm's name; a norm other than L2 and LInf is an
// error.
func (n Norm) MarshalText() ([]byte, error) {
	if !n.valid() {
		return nil, fmt.Errorf("%w: unknown norm %q (want l2 or linf)", ErrOptions, string(n))
	}
	return []byte(n), nil
}

// UnmarshalText reads a norm's name (see ParseNorm).
func (n *Norm) UnmarshalText(b []byte) error {
	v, err := ParseNorm(string(b))
	if err != nil {
		return err
	}
	*n = v
	return nil
}

func (n Norm) valid() bool { return n == L2 || n == LInf }

// The defaults of the study's attacks, from which DefaultDeepFoolParams and
// DefaultPGDParams are built.
const (
	// DefaultOvershoot is Foolbox 3's overshoot of DeepFool's cumulative
	// perturbation.
	DefaultOvershoot = 0.02
	// DefaultMaxIter is Foolbox 3's number of DeepFool steps per attempt.
	DefaultMaxIter = 50
	// DefaultRetries is how often the study restarts DeepFool from a noisy
	// image when it has not flipped the label.
	DefaultRetries = 10
	// DefaultNoiseScale is the standard deviation of the retries' noise
	// as a share of the input range hi − lo.
	DefaultNoiseScale = 0.01
	// DefaultDeepFoolBatch is how many images DeepFool attacks together.
	// Small batches keep a step's Jacobian graph intermediates (batch ×
	// candidates rows of every activation) in cache: on a Fashion-MNIST
	// CNN (32 and 64 channels), 500 images with one thread took 12–19 %
	// less CPU with 16 or 8 than with 64, and no more with two threads
	// (bench/deepfool/README.md).
	DefaultDeepFoolBatch = 16
	// DefaultPGDSteps is the study's number of PGD steps for robust
	// accuracy.
	DefaultPGDSteps = 20
	// DefaultPGDStepScale gives the PGD step when none is set: α =
	// DefaultPGDStepScale·ε/steps, so that the steps can cross the ball
	// 1.25 times (Madry et al., ICLR 2018, 2.5·ε/100 for 100 steps).
	DefaultPGDStepScale = 2.5
	// DefaultRobustBatch is how many images one run of RobustAccuracy
	// attacks.
	DefaultRobustBatch = 128
)

// DeepFoolParams are the parameters that decide DeepFool's results, other
// than the norm and the seed: what an audit stores in settings.json, under
// the JSON names below.
type DeepFoolParams struct {
	// Overshoot scales the cumulative perturbation: x = x₀ + (1+Overshoot)·P.
	Overshoot float64 `json:"overshoot"`
	// MaxIter is the most steps per attempt (≥ 1).
	MaxIter int `json:"max_iter"`
	// Candidates is how many of the highest clean scores take part,
	// including the predicted class: 0 means all K, otherwise 2 ≤ k ≤ K.
	// The work per step scales with Candidates − 1.
	Candidates int `json:"candidates"`
	// Retries is how many times an image that has not flipped after MaxIter
	// steps is attacked again from a noisy start.
	Retries int `json:"retries"`
	// NoiseStd is the standard deviation σ of the Gaussian noise of the
	// retries, in pixel units; 0 means DefaultNoiseScale·(hi − lo).
	NoiseStd float64 `json:"noise_std,omitempty"`
}

// DefaultDeepFoolParams returns the parameters of the study (and of
// Foolbox 3, but for the candidates and the retries): overshoot 0.02, at
// most 50 steps, all classes as candidates, 10 noisy retries.
func DefaultDeepFoolParams() DeepFoolParams {
	return DeepFoolParams{Overshoot: DefaultOvershoot, MaxIter: DefaultMaxIter, Retries: DefaultRetries}
}

// Validate checks the parameters that do not depend on a classifier (the
// candidates' upper bound, the number of classes, is checked by DeepFool).
// Its errors wrap ErrOptions and name the option by its JSON name.
func (p DeepFoolParams) Validate() error {
	switch {
	case !(p.Overshoot >= 0) || !option.Finite(p.Overshoot):
		return bad("overshoot", p.Overshoot, "a finite value ≥ 0")
	case p.MaxIter < 1:
		return bad("max_iter", p.MaxIter, "an integer ≥ 1")
	case p.Candidates < 0 || p.Candidates == 1:
		return bad("candidates", p.Candidates, "0 (all classes) or an integer ≥ 2")
	case p.Retries < 0:
		return bad("retries", p.Retries, "an integer ≥ 0")
	case !(p.NoiseStd >= 0) || !option.Finite(p.NoiseStd):
		return bad("noise_std", p.NoiseStd, "a finite value ≥ 0 (0: the default)")
	}
	return nil
}

// RefineParams are the parameters that decide the refinement of DeepFool's
// margins by [FMN]: what an audit stores in settings.json, under the JSON
// names below, beside DeepFoolParams.
//
// Audits made before FMN stored "refine": true for a bisection along
// DeepFool's direction (and "refine_steps" for its halvings); FMN's
// budget has its own name, "fmn_steps", so that such settings and these
// compare as different and a resumed audit never mixes the two.
type RefineParams struct {
	// Refine runs FMN from DeepFool's points (or from a PGD search where
	// DeepFool failed) for the refined margins.
	Refine bool `json:"refine"`
	// Steps is FMN's step budget per image: ≥ 1 with Refine, 0 (and not
	// stored) without.
	Steps int `json:"fmn_steps,omitempty"`
}

// DefaultRefineParams returns the refinement of the study: FMN with
// DefaultFMNSteps steps.
func DefaultRefineParams() RefineParams {
	return RefineParams{Refine: true, Steps: DefaultFMNSteps}
}

// Validate checks p; its errors wrap ErrOptions and name the option by
// its JSON name.
func (p RefineParams) Validate() error {
	switch {
	case p.Refine && p.Steps < 1:
		return bad("fmn_steps", p.Steps, "an integer ≥ 1 with refine")
	case !p.Refine && p.Steps != 0:
		return bad("fmn_steps", p.Steps, "0 without refine")
	}
	return nil
}

// PGDParams are the parameters that decide the results of PGD at a given
// radius and norm: what an audit stores in settings.json, under the JSON
// names below.
type PGDParams struct {
	// Steps is the number of gradient steps (≥ 1).
	Steps int `json:"steps"`
	// Step is the step size α in pixel units, the same for every radius:
	// each step moves α·sign(∇) (L∞) or α·∇/‖∇‖₂ (L2). 0 means
	// DefaultPGDStepScale·ε/Steps for each radius ε.
	Step float64 `json:"step_size"`
	// RandomStart starts from a uniformly random point of the ε-ball
	// (clipped to the range) instead of the clean image.
	RandomStart bool `json:"random_start"`
}

// DefaultPGDParams returns the parameters of the study's robust accuracy:
// 20 steps of 2.5·ε/20 from a random start.
func DefaultPGDParams() PGDParams {
	return PGDParams{Steps: DefaultPGDSteps, RandomStart: true}
}

// Validate checks p; its errors wrap ErrOptions and name the option by its
// JSON name.
func (p PGDParams) Validate() error {
	switch {
	case p.Steps < 1:
		return bad("steps", p.Steps, "an integer ≥ 1")
	case !(p.Step >= 0) || !option.Finite(p.Step):
		return bad("step_size", p.Step, "a finite step in pixel units > 0, or 0 for 2.5·ε/steps")
	}
	return nil
}

// StepFor returns the step size at radius eps: Step, or the default
// DefaultPGDStepScale·eps/Steps when Step is 0.
func (p PGDParams) StepFor(eps float64) float64 {
	if p.Step != 0 {
		return p.Step
	}
	return DefaultPGDStepScale * eps / float64(p.Steps)
}

// ValidateNorms checks a list of norms: each L2 or LInf, none twice, at
// least one unless empty is allowed. field names the list in the error.
func ValidateNorms(field string, norms []Norm, empty bool) error {
	if len(norms) == 0 && !empty {
		return bad(field, "(none)", "l2, linf or both")
	}
	for i, n := range norms {
		if !n.valid() {
			return bad(field, strconv.Quote(string(n)), "l2, linf or both")
		}
		if slices.Contains(norms[:i], n) {
			return bad(field, joinNorms(norms), "each norm at most once")
		}
	}
	return nil
}

func joinNorms(norms []Norm) string {
	s := make([]string, len(norms))
	for i, n := range norms {
		s[i] = string(n)
	}
	return strings.Join(s, ",")
}

// bad returns the *option.Error of an attack option.
func bad(field string, value any, want string) error {
	return &option.Error{Kind: ErrOptions, Field: field, Value: value, Want: want}
}
