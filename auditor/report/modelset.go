package report

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/compare"
	"github.com/marginaudit/marginaudit/internal/english"
)

// A model set is several audits of one model each, compared side by side:
// each model is named by its audit's label. See the package documentation
// for when the report treats its inputs as one.

// ModelSet is the comparison of the models of a model set: their margins
// side by side, and each model paired with the baseline image by image
// (package compare, as `marginaudit diff` does).
type ModelSet struct {
	Baseline string        `json:"baseline"` // label of the model the others are paired with
	Level    float64       `json:"level"`    // confidence level of the intervals of the pairs
	Margins  []ModelMargin `json:"margins"`  // by model (as given), split, norm
	Pairs    []ModelPair   `json:"pairs"`    // every other model with the baseline, as given
}

// ModelMargin describes the margins of one model on one split and norm.
type ModelMargin struct {
	Model      string        `json:"model"`      // the audit's label
	Checkpoint string        `json:"checkpoint"` // the model's file
	Split      auditor.Split `json:"split"`
	Norm       auditor.Norm  `json:"norm"`
	Images     int           `json:"images"`   // images attacked
	Failures   int           `json:"failures"` // attacks that failed after all restarts: no margin
	Accuracy   auditor.Float `json:"accuracy"` // clean accuracy on the split
	Margin     auditor.Dist  `json:"margin"`   // margins of the successful attacks: mean, SE, quantiles
}

// ModelPair is one model paired with the baseline on the images both
// audited: compare.Compare's margins, clean accuracy and PGD robust
// accuracy (candidate − baseline). When the audits were made with other
// settings or on other images, Comparable is false, Reason says what
// differs, and the lists are empty.
type ModelPair struct {
	Model      string                 `json:"model"`
	Baseline   string                 `json:"baseline"`
	Comparable bool                   `json:"comparable"`
	Reason     string                 `json:"reason,omitempty"`
	Margins    []compare.MarginDiff   `json:"margins"`
	Accuracy   []compare.AccuracyDiff `json:"accuracy"`
	Robust     []compare.RobustDiff   `json:"robust_accuracy"`
}

// modelSet decides whether the audits form a model set: two audits or
// more, each of one checkpoint, with no epoch (auditor.FromPosition), or
// any epoch when Options.Models asks for a model set. It marks the audits
// as separate models.
func modelSet(audits []*audit, opts *Options) (bool, error) {
	set := len(audits) >= 2
	for _, a := range audits {
		switch {
		case len(a.epochs) != 1:
			if opts.Models {
				return false, fmt.Errorf("report: a model set takes one model per audit, and audit %q holds %d checkpoints (%s)",
					a.Label, len(a.epochs), strings.Join(a.checkpoints(), ", "))
			}
			set = false
		case !a.separate && !opts.Models:
			set = false
		}
	}
	if opts.Models && !set {
		return false, errors.New("report: a model set takes two audits or more")
	}
	if opts.Baseline != "" && !set {
		return false, fmt.Errorf("report: baseline %q given, but the audits are not a model set", opts.Baseline)
	}
	if set && opts.Baseline != "" && !slices.ContainsFunc(audits, func(a *audit) bool { return a.Label == opts.Baseline }) {
		return false, fmt.Errorf("report: no audit is labelled %q, the baseline", opts.Baseline)
	}
	if set {
		for _, a := range audits {
			a.member = true
			a.separate = true
		}
	}
	return set, nil
}

// checkpoints returns the audit's checkpoint files by epoch.
func (a *audit) checkpoints() []string {
	out := make([]string, len(a.epochs))
	for i, e := range a.epochs {
		out[i] = a.names[e]
	}
	return out
}

// observeModelSet computes the margins side by side and the pairs with
// the baseline (the first audit unless Options.Baseline names one).
func observeModelSet(audits []*audit, opts *Options) (*ModelSet, error) {
	base := audits[0]
	for _, a := range audits {
		if a.Label == opts.Baseline {
			base = a
		}
	}
	ms := &ModelSet{Baseline: base.Label, Level: compare.DefaultLevel, Margins: []ModelMargin{}, Pairs: []ModelPair{}}
	for _, a := range audits {
		e := a.epochs[0]
		for _, s := range a.splits {
			acc, _ := a.accuracy(e, s)
			for _, n := range a.norms {
				g := a.group(e, s, n, auditor.All)
				if g == nil {
					continue
				}
				ms.Margins = append(ms.Margins, ModelMargin{Model: a.Label, Checkpoint: a.names[e], Split: s, Norm: n,
					Images: g.Images, Failures: g.Failures, Accuracy: acc.Accuracy, Margin: g.Margin})
			}
		}
	}
	bm, err := base.folder.Model(base.names[base.epochs[0]])
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	for _, a := range audits {
		if a == base {
			continue
		}
		pair := ModelPair{Model: a.Label, Baseline: base.Label,
			Margins: []compare.MarginDiff{}, Accuracy: []compare.AccuracyDiff{}, Robust: []compare.RobustDiff{}}
		cm, err := a.folder.Model(a.names[a.epochs[0]])
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		res, err := compare.Compare(bm, cm, compare.Options{Level: ms.Level, Refined: opts.Refined})
		var mismatch *compare.MismatchError
		switch {
		case errors.As(err, &mismatch):
			pair.Reason = "audited with other settings or on other images: " + strings.Join(mismatch.Differences(), "; ")
		case err != nil:
			return nil, fmt.Errorf("report: models %s and %s: %w", base.Label, a.Label, err)
		default:
			pair.Comparable = true
			pair.Margins, pair.Accuracy, pair.Robust = res.Margins, res.Accuracy, res.Robust
		}
		ms.Pairs = append(ms.Pairs, pair)
	}
	return ms, nil
}

// modelSetSections states the margins side by side and the pairs with the
// baseline as sentences.
func (o *Observations) modelSetSections(marginKind string) []section {
	ms := o.ModelSet
	s1 := section{Heading: fmt.Sprintf("Margins per model (%s): mean ± standard error of the images attacked successfully, median, clean accuracy:", marginKind)}
	for _, m := range ms.Margins {
		line := fmt.Sprintf("%s: %s ± %s, median %s (%d images", where(m.Model, m.Split, m.Norm),
			fmtV(m.Margin.Mean), fmtV(m.Margin.SE), fmtV(m.Margin.Median), m.Images)
		if m.Failures > 0 {
			line += ", " + english.Plural(m.Failures, "failed attack") + " left out"
		}
		s1.Lines = append(s1.Lines, line+fmt.Sprintf("); accuracy %s.", fmtR(m.Accuracy)))
	}
	level := fmtG(100*ms.Level) + "%"
	s2 := section{Heading: fmt.Sprintf("Each model paired with %s on the same images: mean margin change with its %s t-interval, Wilcoxon signed-rank test, share of images whose margin dropped; accuracy and PGD robust accuracy changes with McNemar's test:", ms.Baseline, level)}
	for _, p := range ms.Pairs {
		vs := p.Model + " vs " + p.Baseline
		if !p.Comparable {
			s2.Lines = append(s2.Lines, fmt.Sprintf("%s: not compared, %s.", vs, p.Reason))
			continue
		}
		for _, m := range p.Margins {
			s2.Lines = append(s2.Lines, fmt.Sprintf("%s, %s split, %s margin: %s → %s, change %s [%s, %s] (%s), Wilcoxon %s; dropped on %d of %d images (%s)%s.",
				vs, m.Split, normName(m.Norm), fmtV(m.BaselineMean), fmtV(m.CandidateMean), fmtSigned(m.Change), fmtSigned(m.ChangeLo), fmtSigned(m.ChangeHi),
				fmtPct(m.RelativeChange), pEq(m.Wilcoxon.P), m.Dropped, m.Pairs, fmtShare(m.DroppedShare), failedText(m)))
		}
		for _, a := range p.Accuracy {
			s2.Lines = append(s2.Lines, fmt.Sprintf("%s, %s split, accuracy: %s → %s (%s), McNemar %s (%d lost, %d gained).",
				vs, a.Split, fmtR(a.Baseline), fmtR(a.Candidate), fmtSigned(a.Change), pEq(a.McNemar.P), a.McNemar.Lost, a.McNemar.Gained))
		}
		for _, r := range p.Robust {
			test := "McNemar not computed (the audits did not record which images are robust)"
			if m := r.McNemar; m != nil {
				test = fmt.Sprintf("McNemar %s (%d lost, %d gained)", pEq(m.P), m.Lost, m.Gained)
			}
			s2.Lines = append(s2.Lines, fmt.Sprintf("%s, %s split, PGD %s robust accuracy at ε = %s: %s → %s (%s), %s.",
				vs, r.Split, normName(r.Norm), fmtG(r.Eps), fmtR(r.Baseline), fmtR(r.Candidate), fmtSigned(r.Change), test))
		}
	}
	if len(ms.Pairs) == 0 {
		s2.Lines = append(s2.Lines, "no other model.")
	}
	return []section{s1, s2}
}

// failedText counts the images left out of a pair's margins.
func failedText(m compare.MarginDiff) string {
	if n := m.BaselineFailed + m.CandidateFailed + m.BothFailed; n > 0 {
		return fmt.Sprintf("; %s whose attack failed on one model or both left out", english.Plural(n, "image"))
	}
	return ""
}

func fmtSigned(v auditor.Float) string {
	if math.IsNaN(float64(v)) {
		return "undefined"
	}
	return fmt.Sprintf("%+.4g", float64(v))
}

func fmtShare(v auditor.Float) string {
	if math.IsNaN(float64(v)) {
		return "undefined"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(v))
}

// robustCurve returns R(ε) at each ε of eps: the fraction of the images
// whose margin exceeds ε. An image whose attack failed found no
// perturbation within the attack's reach, so its margin is taken to exceed
// every ε: it counts as above.
func robustCurve(margins []float64, failed int, eps []float64) []float64 {
	s := slices.Clone(margins)
	slices.Sort(s)
	n := float64(len(s) + failed)
	out := make([]float64, len(eps))
	for i, e := range eps {
		// The margins ≤ e are the first k of the sorted sample.
		k, _ := slices.BinarySearchFunc(s, e, func(m, e float64) int {
			if m <= e {
				return -1
			}
			return 1
		})
		out[i] = float64(len(s)-k+failed) / n
	}
	return out
}

// epsGrid returns the radii at which R(ε) curves are drawn: curvePoints
// from 0 to hi, the largest margin (1 when there is none), and that end.
func epsGrid(hi float64) (float64, []float64) {
	if hi <= 0 {
		hi = 1
	}
	eps := make([]float64, curvePoints)
	for i := range eps {
		eps[i] = hi * float64(i) / float64(curvePoints-1)
	}
	return hi, eps
}

// modelSetIntros are the page's sections of the figures of a model set;
// nil for other reports.
func modelSetIntros(o *Observations) map[string]pageSection {
	if o.ModelSet == nil {
		return nil
	}
	return map[string]pageSection{
		FigModels:       {Title: "Mean margin per model", Intro: "How far the images are from the decision boundary of each model, side by side."},
		FigDistribution: {Title: "Margin distributions per model", Intro: "The margins of each model's images overlaid, each normalised to unit area."},
		FigRobustness:   {Title: "Fraction of images beyond each radius", Intro: "R(ε): the fraction of the images whose margin exceeds ε, per model; the higher the curve, the more robust the model."},
		FigHistogram:    {Title: "Correctly classified vs misclassified images", Intro: "Histograms of the margins of each model's correctly classified and misclassified images, each normalised to unit area."},
		FigCalibration:  {Title: "Calibration", Intro: fmt.Sprintf("How well the clean max-softmax confidence matches the accuracy: each model's reliability diagram (%d equal-width bins) and its expected and maximum calibration errors.", CalibrationBins)},
	}
}

// modelSetTables lays out the margins per model and the pairs with the
// baseline as tables; none for other reports.
func modelSetTables(o *Observations) []pageTable {
	ms := o.ModelSet
	if ms == nil {
		return nil
	}
	m := pageTable{Title: "Margins per model", Header: []string{"model", "checkpoint", "split", "norm", "images", "failed", "accuracy", "mean", "SE", "median"}}
	for _, r := range ms.Margins {
		m.Rows = append(m.Rows, []string{r.Model, r.Checkpoint, string(r.Split), normName(r.Norm), fmt.Sprint(r.Images), fmt.Sprint(r.Failures),
			fmtR(r.Accuracy), fmtV(r.Margin.Mean), fmtV(r.Margin.SE), fmtV(r.Margin.Median)})
	}
	level := fmtG(100*ms.Level) + "%"
	p := pageTable{Title: "Margins paired with " + ms.Baseline + " (candidate − baseline; Wilcoxon signed-rank test)",
		Header: []string{"model", "split", "norm", "pairs", "failed (model/baseline/both)", "baseline mean", "mean", "change", level + " CI", "dropped", "p"}}
	for _, pr := range ms.Pairs {
		if !pr.Comparable {
			p.Rows = append(p.Rows, []string{pr.Model, "not compared: " + pr.Reason})
		}
		for _, d := range pr.Margins {
			p.Rows = append(p.Rows, []string{pr.Model, string(d.Split), normName(d.Norm), fmt.Sprint(d.Pairs),
				fmt.Sprintf("%d/%d/%d", d.CandidateFailed, d.BaselineFailed, d.BothFailed), fmtV(d.BaselineMean), fmtV(d.CandidateMean),
				fmtSigned(d.Change), fmt.Sprintf("[%s, %s]", fmtSigned(d.ChangeLo), fmtSigned(d.ChangeHi)), fmtShare(d.DroppedShare), fmtP(d.Wilcoxon.P)})
		}
	}
	return []pageTable{m, p}
}

// renameForModelSet makes the titles of the tables of observations (3)
// and (4) speak of models only, in a model set.
func renameForModelSet(o *Observations, ts []pageTable) []pageTable {
	if o.ModelSet == nil {
		return ts
	}
	for i := range ts {
		t := &ts[i]
		t.Title = strings.NewReplacer("(3) ", "", "(4) ", "", "(5) ", "", "per epoch or model", "per model").Replace(t.Title)
		for j, h := range t.Header {
			if h == "epoch or model" {
				t.Header[j] = "model"
			}
		}
	}
	return ts
}
