package attack

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/marginaudit/marginaudit/internal/option"
)

// checkOptionError fails unless err wraps ErrOptions and names field.
func checkOptionError(t *testing.T, name string, err error, field string) {
	t.Helper()
	var oe *option.Error
	switch {
	case field == "" && err != nil:
		t.Errorf("%s: %v, want no error", name, err)
	case field == "":
	case !errors.Is(err, ErrOptions) || !errors.As(err, &oe):
		t.Errorf("%s: %v, want an *option.Error wrapping ErrOptions", name, err)
	case oe.Field != field || oe.Want == "":
		t.Errorf("%s: %v names %q, want %q and the allowed values", name, err, oe.Field, field)
	}
}

func TestDeepFoolOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*DeepFoolOptions)
		field string // "" for valid options
	}{
		{"defaults", func(*DeepFoolOptions) {}, ""},
		{"no overshoot", func(o *DeepFoolOptions) { o.Overshoot = 0 }, ""},
		{"no retries", func(o *DeepFoolOptions) { o.Retries = 0 }, ""},
		{"two candidates", func(o *DeepFoolOptions) { o.Candidates = 2 }, ""},
		{"no norm", func(o *DeepFoolOptions) { o.Norm = "" }, "norm"},
		{"l1", func(o *DeepFoolOptions) { o.Norm = "l1" }, "norm"},
		{"negative overshoot", func(o *DeepFoolOptions) { o.Overshoot = -1 }, "overshoot"},
		{"NaN overshoot", func(o *DeepFoolOptions) { o.Overshoot = math.NaN() }, "overshoot"},
		{"zero iterations", func(o *DeepFoolOptions) { o.MaxIter = 0 }, "max_iter"},
		{"negative iterations", func(o *DeepFoolOptions) { o.MaxIter = -1 }, "max_iter"},
		{"one candidate", func(o *DeepFoolOptions) { o.Candidates = 1 }, "candidates"},
		{"negative candidates", func(o *DeepFoolOptions) { o.Candidates = -2 }, "candidates"},
		{"negative retries", func(o *DeepFoolOptions) { o.Retries = -1 }, "retries"},
		{"negative noise", func(o *DeepFoolOptions) { o.NoiseStd = -0.1 }, "noise_std"},
		{"negative batch", func(o *DeepFoolOptions) { o.BatchSize = -3 }, "batch_size"},
	} {
		o := DefaultDeepFoolOptions(L2)
		tc.mod(&o)
		checkOptionError(t, tc.name, o.Validate(), tc.field)
	}
}

func TestRefineParamsValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     RefineParams
		field string
	}{
		{"default", DefaultRefineParams(), ""},
		{"off", RefineParams{}, ""},
		{"one step", RefineParams{Refine: true, Steps: 1}, ""},
		{"no steps", RefineParams{Refine: true}, "fmn_steps"},
		{"negative steps", RefineParams{Refine: true, Steps: -1}, "fmn_steps"},
		{"steps without refine", RefineParams{Steps: 25}, "fmn_steps"},
	} {
		checkOptionError(t, tc.name, tc.p.Validate(), tc.field)
	}
}

func TestPGDOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*PGDOptions)
		field string
	}{
		{"defaults", func(*PGDOptions) {}, ""},
		{"zero radius", func(o *PGDOptions) { o.Eps = 0 }, ""},
		{"absolute step", func(o *PGDOptions) { o.Step = 0.01 }, ""},
		{"no norm", func(o *PGDOptions) { o.Norm = "" }, "norm"},
		{"negative radius", func(o *PGDOptions) { o.Eps = -1 }, "eps"},
		{"infinite radius", func(o *PGDOptions) { o.Eps = math.Inf(1) }, "eps"},
		{"no steps", func(o *PGDOptions) { o.Steps = 0 }, "steps"},
		{"negative step", func(o *PGDOptions) { o.Step = -0.1 }, "step_size"},
		{"infinite step", func(o *PGDOptions) { o.Step = math.Inf(1) }, "step_size"},
		{"negative batch", func(o *PGDOptions) { o.BatchSize = -1 }, "batch_size"},
	} {
		o := DefaultPGDOptions(LInf, 0.1)
		tc.mod(&o)
		checkOptionError(t, tc.name, o.Validate(), tc.field)
	}
}

// The step is absolute: Step as given, or 2.5·ε/steps when 0.
func TestPGDStepFor(t *testing.T) {
	p := DefaultPGDParams()
	if got, want := p.StepFor(0.1), 2.5*0.1/20; got != want {
		t.Errorf("default step at ε = 0.1: %v, want %v", got, want)
	}
	p.Step = 0.01
	if got := p.StepFor(0.3); got != 0.01 {
		t.Errorf("step 0.01 at ε = 0.3: %v, want 0.01", got)
	}
}

func TestValidateNorms(t *testing.T) {
	for _, tc := range []struct {
		norms []Norm
		empty bool
		ok    bool
	}{
		{[]Norm{L2, LInf}, false, true},
		{nil, true, true},
		{nil, false, false},
		{[]Norm{L2, L2}, false, false},
		{[]Norm{"l1"}, false, false},
	} {
		err := ValidateNorms("norms", tc.norms, tc.empty)
		if tc.ok {
			checkOptionError(t, joinNorms(tc.norms), err, "")
		} else {
			checkOptionError(t, joinNorms(tc.norms), err, "norms")
		}
	}
}

// A norm marshals as its name, in JSON too, and unknown names are refused.
func TestNormText(t *testing.T) {
	b, err := json.Marshal([]Norm{L2, LInf})
	if err != nil || string(b) != `["l2","linf"]` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var back []Norm
	if err := json.Unmarshal(b, &back); err != nil || len(back) != 2 || back[0] != L2 || back[1] != LInf {
		t.Errorf("Unmarshal = %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`["L2"]`), &back); !errors.Is(err, ErrOptions) {
		t.Errorf(`Unmarshal ["L2"]: %v, want ErrOptions`, err)
	}
	if _, err := json.Marshal(Norm("l1")); !errors.Is(err, ErrOptions) {
		t.Errorf("Marshal l1: %v, want ErrOptions", err)
	}
}
