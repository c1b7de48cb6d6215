package auditor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/bound"
	"github.com/marginaudit/marginaudit/internal/convention"
	"github.com/marginaudit/marginaudit/internal/option"
)

// How Settings.Sample picks the N images of a split.
const (
	SampleFirst  = "first"  // the first N
	SampleRandom = "random" // a random subset drawn with Settings.Seed
)

// Settings are everything that determines an audit's results: the data,
// the attacks and their parameters. An audit store refuses to mix results
// of different settings. Settings that only change speed (threads, batch
// size) or the set of checkpoints do not belong here: more checkpoints
// may be added to an audit later.
//
// Settings are stored as settings.json with the JSON names below; a field
// added in a later version compares as different from its absence, so such
// an audit is redone rather than silently mixed.
type Settings struct {
	// Data names the images: "mnist", "fashion-mnist", "cifar10", or the
	// paths of the image and label arrays of a custom data set.
	Data   string  `json:"data"`
	Splits []Split `json:"splits"`
	// N is the number of images per split: the first N, or a random subset
	// of N drawn with Seed when Sample is "random".
	N      int    `json:"n"`
	Sample string `json:"sample"` // SampleFirst or SampleRandom
	Seed   int64  `json:"seed"`   // seed of the subset and of the attacks' random noise

	// Range is the pixel range [lo, hi] of the inputs; Mean and Std the
	// per-channel normalisation applied inside the graph, empty when taken
	// from each checkpoint's metadata or when there is none.
	Range [2]float64 `json:"range"`
	Mean  []float64  `json:"mean"`
	Std   []float64  `json:"std"`
	// Layout is "nchw" or "nhwc" when the models' layout is given, ""
	// when detected (see attack.Layout). It decides the axis of a
	// per-channel normalisation; stored only when given, so that audits
	// made before layouts were known resume with the default.
	Layout string `json:"layout,omitempty"`
	// Output names the graph output holding the class scores when it is
	// not the first; stored only when given, like Layout.
	Output string `json:"output,omitempty"`

	// Norms are the norms of the DeepFool margins; DeepFoolParams the
	// attack's parameters (overshoot, max_iter, candidates, retries,
	// noise_std) and RefineParams those of the FMN refinement (refine,
	// fmn_steps), stored under their own JSON names. Audits that stored
	// "refine": true before FMN refined by bisection; they lack fmn_steps
	// and so compare as different.
	Norms []Norm `json:"norms"`
	attack.DeepFoolParams
	attack.RefineParams
	// CertifySettings ask for certified lower bounds (certify,
	// certify_steps), stored only when asked, so that audits made before
	// them resume.
	CertifySettings

	PGD PGDSettings `json:"pgd"`
}

// CertifySettings are the parameters of the certified lower bounds of the
// margins (package bound: linear bound propagation, CROWN, with a
// bisection on the radius up to the refined margin, or DeepFool's).
type CertifySettings struct {
	// Certify computes each image's certified lower bound, margin_lower.
	Certify bool `json:"certify,omitempty"`
	// Steps is the number of bisection steps on the radius: 1 to 60 with
	// Certify, 0 without.
	Steps int `json:"certify_steps,omitempty"`
}

// DefaultCertifySettings returns certified bounds with bound.DefaultSteps
// bisection steps.
func DefaultCertifySettings() CertifySettings {
	return CertifySettings{Certify: true, Steps: bound.DefaultSteps}
}

func (c *CertifySettings) validate() error {
	switch {
	case c.Certify && (c.Steps < 1 || c.Steps > 60):
		return &option.Error{Kind: ErrSettings, Field: "certify_steps", Value: c.Steps, Want: "1 to 60 with certify"}
	case !c.Certify && c.Steps != 0:
		return &option.Error{Kind: ErrSettings, Field: "certify_steps", Value: c.Steps, Want: "0 without certify"}
	}
	return nil
}

// PGDSettings are the parameters of the PGD robust-accuracy attacks: one
// attack per norm and radius, each with the PGDParams (steps, step_size
// in pixel units, 0 for 2.5·ε/steps, random_start). An audit without PGD
// has no Eps and zero PGDParams.
type PGDSettings struct {
	Norms []Norm    `json:"norms"`
	Eps   []float64 `json:"eps"` // radii, in pixel units
	attack.PGDParams
}

// ErrSettings is wrapped by the errors of Settings.Validate.
var ErrSettings = errors.New("auditor: bad settings")

// Validate checks every setting before any work: the image choice, the
// pixel range and normalisation, and the attacks' parameters (with
// attack's own Validate). Its errors wrap ErrSettings; errors.As finds an
// *option.Error naming the setting by its dotted JSON name, such as "n",
// "max_iter" or "pgd.eps". Auditing checks the settings again against each
// checkpoint (the candidates against its classes, the range against its
// images).
func (s *Settings) Validate() error {
	bad := func(field string, value any, want string) error {
		return &option.Error{Kind: ErrSettings, Field: field, Value: value, Want: want}
	}
	switch {
	case s.Data == "":
		return bad("data", `""`, "a data set name or the image and label files")
	case len(s.Splits) == 0:
		return bad("splits", "(none)", "train, test or both")
	case s.N < 1:
		return bad("n", s.N, "a number of images ≥ 1")
	case s.Sample != SampleFirst && s.Sample != SampleRandom:
		return bad("sample", strconv.Quote(s.Sample), SampleFirst+" or "+SampleRandom)
	case s.Range != [2]float64{} && !(s.Range[0] < s.Range[1] && option.Finite(s.Range[0]) && option.Finite(s.Range[1])):
		return bad("range", s.Range, "finite lo < hi, or [0, 0] for the checkpoints' own")
	}
	for i, sp := range s.Splits {
		if _, err := ParseSplit(string(sp)); err != nil {
			return bad("splits", strconv.Quote(string(sp)), "train or test")
		}
		if slices.Contains(s.Splits[:i], sp) {
			return bad("splits", joinList(s.Splits), "each split at most once")
		}
	}
	if err := convention.CheckNormalization(s.Mean, s.Std); err != nil {
		return option.Nest(ErrSettings, "", err)
	}
	if s.Layout != "" && s.Layout != "nchw" && s.Layout != "nhwc" {
		return bad("layout", strconv.Quote(s.Layout), `"" (detect), nchw or nhwc`)
	}
	if err := attack.ValidateNorms("norms", s.Norms, false); err != nil {
		return option.Nest(ErrSettings, "", err)
	}
	if err := s.DeepFoolParams.Validate(); err != nil {
		return option.Nest(ErrSettings, "", err)
	}
	if err := s.RefineParams.Validate(); err != nil {
		return option.Nest(ErrSettings, "", err)
	}
	if err := s.CertifySettings.validate(); err != nil {
		return err
	}
	return option.Nest(ErrSettings, "pgd.", s.PGD.validate())
}

// validate checks the PGD settings: none at all, or radii, norms and
// parameters.
func (p *PGDSettings) validate() error {
	if len(p.Eps) == 0 {
		if len(p.Norms) > 0 || p.PGDParams != (attack.PGDParams{}) {
			return &option.Error{Kind: ErrSettings, Field: "eps", Value: "(none)", Want: "radii for the PGD norms and parameters given"}
		}
		return nil
	}
	for i, eps := range p.Eps {
		if !(eps >= 0) || !option.Finite(eps) {
			return &option.Error{Kind: ErrSettings, Field: "eps", Value: eps, Want: "finite radii ≥ 0"}
		}
		if slices.Contains(p.Eps[:i], eps) {
			return &option.Error{Kind: ErrSettings, Field: "eps", Value: joinList(p.Eps), Want: "each radius at most once"}
		}
	}
	if err := attack.ValidateNorms("norms", p.Norms, false); err != nil {
		return err
	}
	return p.PGDParams.Validate()
}

// joinList writes a list as a flag takes it, "a,b,c".
func joinList[T any](v []T) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

// SettingDiff is one setting that differs between two Settings: its
// dotted JSON name (such as "n" or "pgd.eps") and both values as JSON text,
// "(absent)" when a side lacks the field.
type SettingDiff struct {
	Field string
	Old   string // value of the stored (earlier) settings
	New   string // value of the requested settings
}

// String formats the difference as "FIELD: OLD before, NEW now".
func (d SettingDiff) String() string {
	return fmt.Sprintf("%s: %s before, %s now", d.Field, d.Old, d.New)
}

// DiffSettings lists the settings that differ between old and new, sorted
// by field name; nil when they are equal.
func DiffSettings(old, new *Settings) ([]SettingDiff, error) {
	a, err := json.Marshal(old.canonical())
	if err != nil {
		return nil, fmt.Errorf("auditor: encoding settings: %w", err)
	}
	b, err := json.Marshal(new.canonical())
	if err != nil {
		return nil, fmt.Errorf("auditor: encoding settings: %w", err)
	}
	return diffJSON(a, b)
}

// canonical returns a copy of s with empty lists as nil, so that an empty
// list and no list compare (and are stored) alike.
func (s *Settings) canonical() *Settings {
	c := *s
	if len(c.Splits) == 0 {
		c.Splits = nil
	}
	if len(c.Mean) == 0 {
		c.Mean = nil
	}
	if len(c.Std) == 0 {
		c.Std = nil
	}
	if len(c.Norms) == 0 {
		c.Norms = nil
	}
	if len(c.PGD.Norms) == 0 {
		c.PGD.Norms = nil
	}
	if len(c.PGD.Eps) == 0 {
		c.PGD.Eps = nil
	}
	return &c
}

const absent = "(absent)"

// diffJSON compares two JSON objects field by field, descending into
// nested objects; arrays and other values compare as a whole.
func diffJSON(old, new []byte) ([]SettingDiff, error) {
	fa, err := flatten(old)
	if err != nil {
		return nil, err
	}
	fb, err := flatten(new)
	if err != nil {
		return nil, err
	}
	var out []SettingDiff
	for k, va := range fa {
		vb, ok := fb[k]
		if !ok {
			vb = absent
		}
		if va != vb {
			out = append(out, SettingDiff{Field: k, Old: va, New: vb})
		}
	}
	for k, vb := range fb {
		if _, ok := fa[k]; !ok {
			out = append(out, SettingDiff{Field: k, Old: absent, New: vb})
		}
	}
	slices.SortFunc(out, func(x, y SettingDiff) int { return strings.Compare(x.Field, y.Field) })
	return out, nil
}

// flatten maps the dotted names of the leaves of a JSON object to their
// compact JSON text.
func flatten(data []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("settings are not a JSON object: %w", err)
	}
	out := map[string]string{}
	var walk func(prefix string, m map[string]any) error
	walk = func(prefix string, m map[string]any) error {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				if err := walk(prefix+k+".", sub); err != nil {
					return err
				}
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			out[prefix+k] = string(b)
		}
		return nil
	}
	if err := walk("", v); err != nil {
		return nil, err
	}
	return out, nil
}

// SettingsError reports that an audit directory holds results computed
// with other settings than those requested.
type SettingsError struct {
	Path  string // the stored settings.json
	Diffs []SettingDiff
}

// Error names the settings file and lists every difference.
func (e *SettingsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "auditor: %s: the results there were computed with other settings (", e.Path)
	for i, d := range e.Diffs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(d.String())
	}
	b.WriteString(")")
	return b.String()
}
