package auditor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/marginaudit/marginaudit/auditor/attack"
)

// Identification of summary.json; Version changes only when a field changes
// meaning or disappears (adding fields does not change it).
const (
	SummaryFormat  = "marginaudit-summary"
	SummaryVersion = 1
)

// Summary is the content of summary.json: accuracy, margin statistics,
// transitions and PGD robust accuracy of an audit. Every list is sorted
// (see Summarize) and present even when empty. The schema is documented in
// the package documentation.
type Summary struct {
	Format      string              `json:"format"`      // SummaryFormat
	Version     int                 `json:"version"`     // SummaryVersion
	Settings    *Settings           `json:"settings"`    // the audit's settings; null when unknown
	Checkpoints []CheckpointSummary `json:"checkpoints"` // by epoch
	Groups      []Group             `json:"groups"`      // by epoch, split, norm, group
	Transitions []Transition        `json:"transitions"` // by split, then epoch
	PGD         []PGDAccuracy       `json:"pgd"`         // by epoch, split, norm, eps
}

// CheckpointSummary is the clean accuracy of one checkpoint on each split,
// and how its model was run (see ModelInfo; absent when not recorded).
type CheckpointSummary struct {
	Checkpoint string     `json:"checkpoint"`
	Epoch      int        `json:"epoch"`
	Accuracy   []Accuracy `json:"accuracy"`         // train before test; only audited splits
	Scores     string     `json:"scores,omitempty"` // the class scores the attacks used
	Batch      string     `json:"batch,omitempty"`  // how a fixed batch was handled; absent when symbolic
	// EpochFrom says where the epoch came from: "metadata", "name", or
	// "position" for checkpoints without epochs (separate models numbered
	// in the order given); absent when not recorded.
	EpochFrom EpochSource `json:"epoch_from,omitempty"`
	// InputRange is the pixel range [lo, hi] the attacks used, and
	// Normalization the normalisation inside the graph ("none" or
	// "mean=a,b,c;std=d,e,f"): from the settings or the checkpoint's
	// metadata; absent when not recorded.
	InputRange    []float64 `json:"input_range,omitempty"`
	Normalization string    `json:"normalization,omitempty"`
}

// describeModels sets the scores, batch, epoch source and input
// convention of the checkpoints that models describe.
func (s *Summary) describeModels(models []ModelInfo) {
	by := map[string]*ModelInfo{}
	for i := range models {
		by[models[i].Checkpoint] = &models[i]
	}
	for i := range s.Checkpoints {
		c := &s.Checkpoints[i]
		if m := by[c.Checkpoint]; m != nil && m.Epoch == c.Epoch {
			c.Scores, c.Batch, c.EpochFrom, c.Normalization = m.Scores, m.Batch, m.EpochFrom, m.Normalization
			if m.InputRange != [2]float64{} {
				c.InputRange = []float64{m.InputRange[0], m.InputRange[1]}
			}
		}
	}
}

// Accuracy is the fraction of audited images of a split that a checkpoint
// classifies correctly. Every audited image counts once, whatever the
// number of norms and whether its attacks succeeded.
type Accuracy struct {
	Split    Split `json:"split"`
	Images   int   `json:"images"`
	Correct  int   `json:"correct"`
	Accuracy Float `json:"accuracy"` // Correct / Images
}

// GroupKind selects the images of a Group by their clean prediction.
type GroupKind string

// The groups of images, in the order the summary lists them.
const (
	All       GroupKind = "all"
	Correct   GroupKind = "correct"   // Label == Pred
	Incorrect GroupKind = "incorrect" // Label != Pred
)

var groupKinds = []GroupKind{All, Correct, Incorrect}

// Group holds the margin statistics of one (epoch, split, norm, group).
//
// Images whose DeepFool attack failed (Success false) have no DeepFool
// margin: they are counted in Failures and left out of Margin, so
// Images = Margin.N + Failures. In a refined audit every image has a
// refined margin or is censored (nothing flipped it within the input
// range): censored images are counted in Censored and left out of
// MarginRefined, whose statistics are those of the uncensored margins, so
// Images = MarginRefined.N + Censored; each censored margin lies beyond
// its radius tried, the largest perturbation the input range allows.
type Group struct {
	Checkpoint    string    `json:"checkpoint"`
	Epoch         int       `json:"epoch"`
	Split         Split     `json:"split"`
	Norm          Norm      `json:"norm"`
	Group         GroupKind `json:"group"`
	Images        int       `json:"images"`         // images of the group
	Failures      int       `json:"failures"`       // attacks that failed after all retries
	Margin        Dist      `json:"margin"`         // margins of the successful attacks
	MarginRefined *Dist     `json:"margin_refined"` // uncensored refined margins; null when the audit did not refine
	Censored      int       `json:"censored"`       // refined images nothing flipped (0 without refinement)
	// MarginLower describes the certified lower bounds of every image of
	// the group (0 for a misclassified one); absent when the audit did not
	// certify.
	MarginLower *Dist `json:"margin_lower,omitempty"`
}

// Dist describes a sample of margins. Fields that are undefined for the
// sample size (all of them for N = 0, SE for N = 1) are NaN, null in JSON.
//
// Mean is the arithmetic mean and SE its standard error: the sample
// standard deviation (with the n − 1 denominator) divided by √N. The
// quantiles are those of gonum's stat.Quantile with stat.Empirical on the
// sorted sample x₁ ≤ … ≤ x_N: the p-quantile is x_k with k the smallest
// index for which k ≥ p·N, an observed value, never an interpolation. So
// Median of {1, 2, 3, 4} is 2, Q1 is 1 and Q3 is 3.
type Dist struct {
	N      int   `json:"n"`
	Mean   Float `json:"mean"`
	SE     Float `json:"se"`
	Min    Float `json:"min"`
	Q1     Float `json:"q1"`     // 0.25-quantile
	Median Float `json:"median"` // 0.5-quantile
	Q3     Float `json:"q3"`     // 0.75-quantile
	Max    Float `json:"max"`
}

// Transition counts how the images of a split change from correctly to
// incorrectly classified (and back) between two adjacent audited epochs.
// Only images audited at both epochs are counted; the others are counted
// in OnlyFrom and OnlyTo (both zero when the audits used the same images).
type Transition struct {
	Split              Split  `json:"split"`
	FromEpoch          int    `json:"from_epoch"`
	ToEpoch            int    `json:"to_epoch"`
	FromCheckpoint     string `json:"from_checkpoint"`
	ToCheckpoint       string `json:"to_checkpoint"`
	CorrectCorrect     int    `json:"correct_correct"`
	CorrectIncorrect   int    `json:"correct_incorrect"`
	IncorrectCorrect   int    `json:"incorrect_correct"`
	IncorrectIncorrect int    `json:"incorrect_incorrect"`
	OnlyFrom           int    `json:"only_from"` // images audited at FromEpoch only
	OnlyTo             int    `json:"only_to"`   // images audited at ToEpoch only
}

// PGDResult is the robust accuracy of one checkpoint on one split under a
// PGD attack of one norm and radius: of Images images, Robust are still
// classified correctly after the attack.
type PGDResult struct {
	Checkpoint string  `json:"checkpoint"`
	Epoch      int     `json:"epoch"`
	Split      Split   `json:"split"`
	Norm       Norm    `json:"norm"`
	Eps        float64 `json:"eps"`
	Images     int     `json:"images"`
	Robust     int     `json:"robust"`
}

// PGDAccuracy is a PGDResult with its robust accuracy, Robust / Images.
type PGDAccuracy struct {
	PGDResult
	RobustAccuracy Float `json:"robust_accuracy"`
}

func (p *PGDResult) validate() error {
	if err := checkName(p.Checkpoint); err != nil {
		return err
	}
	switch {
	case p.Epoch < 0:
		return fmt.Errorf("negative epoch %d", p.Epoch)
	case p.Images < 0 || p.Robust < 0 || p.Robust > p.Images:
		return fmt.Errorf("robust %d of %d images is impossible", p.Robust, p.Images)
	case !(p.Eps >= 0) || math.IsInf(p.Eps, 0):
		return fmt.Errorf("eps %v is not a finite number ≥ 0", p.Eps)
	}
	if _, err := ParseSplit(string(p.Split)); err != nil {
		return err
	}
	if _, err := attack.ParseNorm(string(p.Norm)); err != nil {
		return err
	}
	return nil
}

// Float is a float64 that is written to JSON as null when it is NaN or
// infinite (undefined statistics), and read back from null as NaN.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = Float(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Float(v)
	return nil
}

// WriteSummary writes s as indented JSON followed by a newline.
func WriteSummary(w io.Writer, s *Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("auditor: encoding summary: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("auditor: writing summary: %w", err)
	}
	return nil
}

// ReadSummary reads a summary written by WriteSummary; name (usually the
// file name) appears in errors. It rejects another format or a newer
// version.
func ReadSummary(r io.Reader, name string) (*Summary, error) {
	var s Summary
	dec := json.NewDecoder(r)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("auditor: %s: %w", name, err)
	}
	if s.Format != SummaryFormat {
		return nil, fmt.Errorf("auditor: %s: format is %q, want %q", name, s.Format, SummaryFormat)
	}
	if s.Version < 1 || s.Version > SummaryVersion {
		return nil, fmt.Errorf("auditor: %s: unsupported summary version %d (this build reads 1 to %d)", name, s.Version, SummaryVersion)
	}
	return &s, nil
}

// TransitionsHeader is the header row of transitions.csv; its names and
// order are stable.
var TransitionsHeader = []string{
	"split", "from_epoch", "to_epoch",
	"correct_correct", "correct_incorrect", "incorrect_correct", "incorrect_incorrect",
}

// WriteTransitions writes transitions.csv: the header and one row per
// transition, in the given order.
func WriteTransitions(w io.Writer, ts []Transition) error {
	var b bytes.Buffer
	b.WriteString(strings.Join(TransitionsHeader, ",") + "\n")
	for _, t := range ts {
		b.WriteString(strings.Join([]string{
			string(t.Split), strconv.Itoa(t.FromEpoch), strconv.Itoa(t.ToEpoch),
			strconv.Itoa(t.CorrectCorrect), strconv.Itoa(t.CorrectIncorrect),
			strconv.Itoa(t.IncorrectCorrect), strconv.Itoa(t.IncorrectIncorrect),
		}, ",") + "\n")
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("auditor: writing transitions: %w", err)
	}
	return nil
}
