package auditor

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/marginaudit/marginaudit/auditor/attack"
)

// Split names the part of a data set an image comes from.
type Split string

// The splits of a data set, in the order the auditor reports them.
const (
	Train Split = "train"
	Test  Split = "test"
)

// ParseSplit returns the split named s ("train" or "test").
func ParseSplit(s string) (Split, error) {
	switch Split(s) {
	case Train, Test:
		return Split(s), nil
	}
	return "", fmt.Errorf("auditor: unknown split %q (want train or test)", s)
}

func (s Split) order() int {
	if s == Train {
		return 0
	}
	return 1
}

// Norm names the norm in which a margin is measured: the attacks' norm,
// "l2" or "linf" in margins.csv and settings.json.
type Norm = attack.Norm

// The norms of a margin, in the order the auditor reports them.
const (
	L2   = attack.L2   // Euclidean norm of the perturbation
	LInf = attack.LInf // largest absolute pixel change of the perturbation
)

// normOrder is the place of n in reports: L2 first.
func normOrder(n Norm) int {
	if n == L2 {
		return 0
	}
	return 1
}

// Record is the outcome of one margin measurement: one image of one split,
// attacked in one norm on one checkpoint. It is one row of margins.csv.
type Record struct {
	Checkpoint string // file name of the checkpoint, without its folder
	Epoch      int    // the checkpoint's epoch (≥ 0)
	Split      Split  // train or test
	Index      int    // position of the image in its split (≥ 0)
	Label      int    // true class (≥ 0)
	Pred       int    // class the checkpoint predicts for the clean image (≥ 0)
	Correct    bool   // Label == Pred
	Norm       Norm   // norm of Margin

	// Margin is the norm of the perturbation the attack found: an upper
	// bound of the distance to the decision boundary. It is finite and ≥ 0
	// when Success is true; a failed attack may record NaN.
	Margin float64
	// MarginRefined is the margin the FMN refinement confirmed (≤ Margin
	// where DeepFool succeeded; found from a PGD search where it failed),
	// or NaN when the audit did not refine (an empty field in
	// margins.csv). For a censored image it is the largest radius tried.
	MarginRefined float64
	// Censored is true when the refinement flipped nothing within the
	// input range: the margin exceeds MarginRefined, the largest radius
	// tried, as far as the attacks can tell. Only refined records can be
	// censored.
	Censored bool
	// MarginLower is the certified lower bound of the distance to the
	// decision boundary when Certified (≤ MarginRefined and ≤ Margin
	// where they are margins); 0 for a misclassified image, whose
	// prediction is already wrong. Without Certified it is 0 and
	// margin_lower is empty.
	MarginLower float64
	Certified   bool

	Iterations int  // attack iterations of the last attempt (≥ 0)
	Retries    int  // restarts from a noisy image (≥ 0)
	Success    bool // whether the attack changed the prediction
}

// Refined reports whether r has a refined margin.
func (r *Record) Refined() bool { return !math.IsNaN(r.MarginRefined) }

// HasRefinedMargin reports whether r has a refined margin that is one: a
// refined record that is not censored.
func (r *Record) HasRefinedMargin() bool { return r.Refined() && !r.Censored }

// key identifies a row: two records with the same key may not coexist.
type recordKey struct {
	checkpoint string
	split      Split
	index      int
	norm       Norm
}

func (r *Record) key() recordKey {
	return recordKey{r.Checkpoint, r.Split, r.Index, r.Norm}
}

// fieldError is a problem with one field of a record; column is the 0-based
// column of margins.csv.
type fieldError struct {
	column int
	msg    string
}

func (e *fieldError) Error() string { return e.msg }

// validate checks the invariants of a record documented on Record and
// names the first bad column.
func (r *Record) validate() *fieldError {
	bad := func(col int, format string, args ...any) *fieldError {
		return &fieldError{col, fmt.Sprintf(format, args...)}
	}
	if err := checkName(r.Checkpoint); err != nil {
		return bad(colCheckpoint, "%v", err)
	}
	if r.Epoch < 0 {
		return bad(colEpoch, "negative epoch %d", r.Epoch)
	}
	if _, err := ParseSplit(string(r.Split)); err != nil {
		return bad(colSplit, "unknown split %q (want train or test)", r.Split)
	}
	if r.Index < 0 {
		return bad(colIndex, "negative index %d", r.Index)
	}
	if r.Label < 0 {
		return bad(colLabel, "negative label %d", r.Label)
	}
	if r.Pred < 0 {
		return bad(colPred, "negative prediction %d", r.Pred)
	}
	if r.Correct != (r.Label == r.Pred) {
		return bad(colCorrect, "correct is %t but label %d and prediction %d say %t", r.Correct, r.Label, r.Pred, r.Label == r.Pred)
	}
	if _, err := attack.ParseNorm(string(r.Norm)); err != nil {
		return bad(colNorm, "unknown norm %q (want l2 or linf)", r.Norm)
	}
	switch m := r.Margin; {
	case math.IsNaN(m):
		if r.Success {
			return bad(colMargin, "margin is NaN but the attack succeeded")
		}
	case m < 0 || math.IsInf(m, 0):
		return bad(colMargin, "margin %v is not a finite number ≥ 0", m)
	}
	if m := r.MarginRefined; !math.IsNaN(m) && (m < 0 || math.IsInf(m, 0)) {
		return bad(colMarginRefined, "refined margin %v is not a finite number ≥ 0", m)
	}
	if r.Censored && !r.Refined() {
		return bad(colCensored, "censored without a refined margin (the radius tried)")
	}
	switch m := r.MarginLower; {
	case !r.Certified:
		if m != 0 {
			return bad(colMarginLower, "a lower bound %v without a certificate", m)
		}
	case !(m >= 0) || math.IsInf(m, 0):
		return bad(colMarginLower, "certified lower bound %v is not a finite number ≥ 0", m)
	case r.Success && m > r.Margin:
		return bad(colMarginLower, "certified lower bound %v exceeds the margin %v", m, r.Margin)
	case r.HasRefinedMargin() && m > r.MarginRefined:
		return bad(colMarginLower, "certified lower bound %v exceeds the refined margin %v", m, r.MarginRefined)
	}
	if r.Iterations < 0 {
		return bad(colIterations, "negative iterations %d", r.Iterations)
	}
	if r.Retries < 0 {
		return bad(colRetries, "negative retries %d", r.Retries)
	}
	return nil
}

// checkName checks that a checkpoint name is a plain file name: it becomes
// the name of the checkpoint's part file in an audit store and a CSV field.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty checkpoint name")
	case !utf8.ValidString(name):
		return fmt.Errorf("checkpoint name %q is not valid UTF-8", name)
	case strings.ContainsFunc(name, unicode.IsControl):
		return fmt.Errorf("checkpoint name %q contains a control character", name)
	case strings.ContainsAny(name, `/\`) || name != filepath.Base(name):
		return fmt.Errorf("checkpoint name %q is not a plain file name", name)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("checkpoint name %q starts with a dot", name)
	}
	return nil
}
