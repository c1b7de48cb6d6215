package compare

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/marginaudit/marginaudit/auditor"
)

// Identification of a Result in JSON; Version changes only when a field
// changes meaning or disappears.
const (
	ResultFormat  = "marginaudit-diff"
	ResultVersion = 1
)

// DefaultLevel is the confidence level of the intervals.
const DefaultLevel = 0.95

// Options configure Compare.
type Options struct {
	// Level is the confidence level of the interval of the mean margin
	// change; 0 means DefaultLevel.
	Level float64
	// Refined compares the refined margins (audits made with --refine):
	// every image's margin_refined, also where DeepFool failed, leaving
	// out the censored images (see MarginDiff).
	Refined bool
}

// Float is a float64 written to JSON as null when undefined (NaN).
type Float = auditor.Float

// Model names one side of a comparison.
type Model struct {
	Dir        string `json:"dir"`
	Checkpoint string `json:"checkpoint"`
	Epoch      int    `json:"epoch"`
}

// Result is the comparison of a candidate model with a baseline on the
// same images. Its JSON form is the output of `marginaudit diff --json`;
// the package documentation describes the schema.
type Result struct {
	Format    string         `json:"format"`  // ResultFormat
	Version   int            `json:"version"` // ResultVersion
	Baseline  Model          `json:"baseline"`
	Candidate Model          `json:"candidate"`
	Level     float64        `json:"level"`           // of the margin intervals
	Refined   bool           `json:"refined"`         // refined margins compared
	Margins   []MarginDiff   `json:"margins"`         // by split, norm
	Accuracy  []AccuracyDiff `json:"accuracy"`        // by split
	Robust    []RobustDiff   `json:"robust_accuracy"` // by split, norm, eps
	Gates     []GateResult   `json:"gates"`           // in the order given; empty without gates
}

// MarginDiff compares the margins of one split and norm, image by image.
//
// Only images with a margin on both models form the paired sample: a
// failed attack (success false, margin NaN in margins.csv) found no
// perturbation, so its margin is unknown — larger than what the attack
// could reach, with no finite upper bound — and no value is imputed. Such
// images are counted in BaselineFailed, CandidateFailed and BothFailed and
// left out of every statistic below. With Options.Refined the margin is
// margin_refined wherever the refinement confirmed a point, including the
// images DeepFool failed on, and the failures are the censored images
// (nothing flipped them; their margin_refined is the largest radius
// tried, not a margin), whatever DeepFool found.
type MarginDiff struct {
	Split           auditor.Split `json:"split"`
	Norm            auditor.Norm  `json:"norm"`
	Images          int           `json:"images"`           // images of the split
	Pairs           int           `json:"pairs"`            // a margin on both models
	BaselineFailed  int           `json:"baseline_failed"`  // no margin on the baseline only
	CandidateFailed int           `json:"candidate_failed"` // no margin on the candidate only
	BothFailed      int           `json:"both_failed"`      // no margin on either
	BaselineMean    Float         `json:"baseline_mean"`    // mean margin of the pairs
	CandidateMean   Float         `json:"candidate_mean"`   // mean margin of the pairs
	// Change is the mean paired difference, candidate − baseline, with its
	// standard error and t-interval at Result.Level.
	Change   Float `json:"change"`
	ChangeSE Float `json:"change_se"`
	ChangeLo Float `json:"change_lo"`
	ChangeHi Float `json:"change_hi"`
	// RelativeChange is Change / BaselineMean; a drop is negative.
	RelativeChange Float        `json:"relative_change"`
	Dropped        int          `json:"dropped"`       // pairs whose margin is smaller on the candidate
	DroppedShare   Float        `json:"dropped_share"` // Dropped / Pairs
	Wilcoxon       WilcoxonJSON `json:"wilcoxon"`
}

// WilcoxonJSON is a WilcoxonResult as JSON.
type WilcoxonJSON struct {
	N      int    `json:"n"`
	Zeros  int    `json:"zeros"`
	WPlus  Float  `json:"w_plus"`
	WMinus Float  `json:"w_minus"`
	Z      Float  `json:"z"`
	P      Float  `json:"p"`
	Method Method `json:"method"`
}

// AccuracyDiff compares the clean accuracy of one split.
type AccuracyDiff struct {
	Split     auditor.Split `json:"split"`
	Images    int           `json:"images"`
	Baseline  Float         `json:"baseline"`
	Candidate Float         `json:"candidate"`
	Change    Float         `json:"change"` // candidate − baseline
	McNemar   McNemarJSON   `json:"mcnemar"`
}

// RobustDiff compares the PGD robust accuracy of one split, norm and
// radius.
type RobustDiff struct {
	Split     auditor.Split `json:"split"`
	Norm      auditor.Norm  `json:"norm"`
	Eps       float64       `json:"eps"`
	Images    int           `json:"images"`
	Baseline  Float         `json:"baseline"`
	Candidate Float         `json:"candidate"`
	Change    Float         `json:"change"` // candidate − baseline
	// McNemar is the paired test of the images' robustness; null when the
	// audits recorded only the counts of robust images, not which ones.
	McNemar *McNemarJSON `json:"mcnemar"`
}

// McNemarJSON is a McNemarResult as JSON.
type McNemarJSON struct {
	Lost   int    `json:"lost"`
	Gained int    `json:"gained"`
	Stat   Float  `json:"stat"`
	P      Float  `json:"p"`
	Method Method `json:"method"`
}

func mcnemarJSON(r McNemarResult) McNemarJSON {
	return McNemarJSON{Lost: r.Lost, Gained: r.Gained, Stat: Float(r.Stat), P: Float(r.P), Method: r.Method}
}

// MismatchError reports two audits that cannot be compared: they were made
// with different settings or on different images.
type MismatchError struct {
	Baseline, Candidate string // the audit folders
	// Settings lists the settings that differ; Old is the baseline's value,
	// New the candidate's.
	Settings []auditor.SettingDiff
	Images   []string // how the audited images differ
}

// Error names every difference.
func (e *MismatchError) Error() string {
	return fmt.Sprintf("compare: %s and %s were not audited alike (%s)", e.Baseline, e.Candidate, strings.Join(e.Differences(), "; "))
}

// Differences describes each difference: the settings', then the images'.
func (e *MismatchError) Differences() []string {
	var parts []string
	for _, d := range e.Settings {
		parts = append(parts, fmt.Sprintf("%s: %s in the baseline, %s in the candidate", d.Field, d.Old, d.New))
	}
	return append(parts, e.Images...)
}

// Compare compares the candidate's results with the baseline's, image by
// image. It returns a *MismatchError when the audits differ in settings or
// in the images of a split (their indices or labels).
func Compare(base, cand *Audit, opt Options) (*Result, error) {
	if opt.Level == 0 {
		opt.Level = DefaultLevel
	}
	if !(opt.Level > 0 && opt.Level < 1) {
		return nil, fmt.Errorf("compare: confidence level %v is not between 0 and 1", opt.Level)
	}
	settings, err := auditor.DiffSettings(&base.Settings, &cand.Settings)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	bi, ci := byImage(base.Records), byImage(cand.Records)
	images := imageMismatches(bi, ci)
	if len(settings) > 0 || len(images) > 0 {
		return nil, &MismatchError{Baseline: base.Dir, Candidate: cand.Dir, Settings: settings, Images: images}
	}
	res := &Result{
		Format: ResultFormat, Version: ResultVersion,
		Baseline:  Model{base.Dir, base.Checkpoint, base.Epoch},
		Candidate: Model{cand.Dir, cand.Checkpoint, cand.Epoch},
		Level:     opt.Level, Refined: opt.Refined,
		Margins: []MarginDiff{}, Accuracy: []AccuracyDiff{}, Robust: []RobustDiff{}, Gates: []GateResult{},
	}
	for _, k := range sortedKeys(bi) {
		if k.norm == firstNorm(bi, k.split) {
			res.Accuracy = append(res.Accuracy, accuracyDiff(k.split, bi[k], ci[k]))
		}
		m, err := marginDiff(k, bi[k], ci[k], opt)
		if err != nil {
			return nil, err
		}
		res.Margins = append(res.Margins, m)
	}
	res.Robust = robustDiffs(base, cand)
	return res, nil
}

type cellKey struct {
	split auditor.Split
	norm  auditor.Norm
}

// byImage groups records by split and norm, each group sorted by index.
func byImage(recs []auditor.Record) map[cellKey][]auditor.Record {
	out := map[cellKey][]auditor.Record{}
	for _, r := range recs {
		k := cellKey{r.Split, r.Norm}
		out[k] = append(out[k], r)
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b auditor.Record) int { return cmp.Compare(a.Index, b.Index) })
	}
	return out
}

func sortedKeys(m map[cellKey][]auditor.Record) []cellKey {
	keys := make([]cellKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	order := func(s auditor.Split) int {
		return cmp.Or(map[auditor.Split]int{auditor.Train: 1, auditor.Test: 2}[s], 3)
	}
	slices.SortFunc(keys, func(a, b cellKey) int {
		return cmp.Or(cmp.Compare(order(a.split), order(b.split)), strings.Compare(string(a.split), string(b.split)), strings.Compare(string(a.norm), string(b.norm)))
	})
	return keys
}

// firstNorm returns the first norm (in sortedKeys order) of split in m.
func firstNorm(m map[cellKey][]auditor.Record, split auditor.Split) auditor.Norm {
	var first auditor.Norm
	for k := range m {
		if k.split == split && (first == "" || k.norm < first) {
			first = k.norm
		}
	}
	return first
}

// imageMismatches describes how the audited images of the two audits
// differ: groups only one has, and per group the first image only one
// has or whose label differs.
func imageMismatches(base, cand map[cellKey][]auditor.Record) []string {
	var out []string
	for _, k := range sortedKeys(base) {
		if _, ok := cand[k]; !ok {
			out = append(out, fmt.Sprintf("%s %s: audited in the baseline only", k.split, k.norm))
		}
	}
	for _, k := range sortedKeys(cand) {
		b, ok := base[k]
		if !ok {
			out = append(out, fmt.Sprintf("%s %s: audited in the candidate only", k.split, k.norm))
			continue
		}
		if msg := pairMismatch(b, cand[k]); msg != "" {
			out = append(out, fmt.Sprintf("%s %s: %s", k.split, k.norm, msg))
		}
	}
	return out
}

// pairMismatch compares two groups sorted by index.
func pairMismatch(b, c []auditor.Record) string {
	for i := range min(len(b), len(c)) {
		switch {
		case b[i].Index < c[i].Index:
			return fmt.Sprintf("image %d audited in the baseline only (%d images there, %d in the candidate)", b[i].Index, len(b), len(c))
		case b[i].Index > c[i].Index:
			return fmt.Sprintf("image %d audited in the candidate only (%d images there, %d in the baseline)", c[i].Index, len(c), len(b))
		case b[i].Label != c[i].Label:
			return fmt.Sprintf("image %d has label %d in the baseline and %d in the candidate", b[i].Index, b[i].Label, c[i].Label)
		}
	}
	switch {
	case len(b) > len(c):
		return fmt.Sprintf("image %d audited in the baseline only (%d images there, %d in the candidate)", b[len(c)].Index, len(b), len(c))
	case len(c) > len(b):
		return fmt.Sprintf("image %d audited in the candidate only (%d images there, %d in the baseline)", c[len(b)].Index, len(c), len(b))
	}
	return ""
}

// marginDiff compares the margins of one group; b and c hold the same
// images in the same order.
func marginDiff(k cellKey, b, c []auditor.Record, opt Options) (MarginDiff, error) {
	m := MarginDiff{Split: k.split, Norm: k.norm, Images: len(b)}
	var bm, cm, d []float64
	for i := range b {
		x, okb, err := margin(&b[i], opt.Refined)
		if err != nil {
			return m, err
		}
		y, okc, err := margin(&c[i], opt.Refined)
		if err != nil {
			return m, err
		}
		switch {
		case !okb && !okc:
			m.BothFailed++
			continue
		case !okb:
			m.BaselineFailed++
			continue
		case !okc:
			m.CandidateFailed++
			continue
		}
		bm, cm, d = append(bm, x), append(cm, y), append(d, y-x)
		if y < x {
			m.Dropped++
		}
	}
	m.Pairs = len(d)
	m.BaselineMean = Float(TInterval(bm, opt.Level).Mean)
	m.CandidateMean = Float(TInterval(cm, opt.Level).Mean)
	ti := TInterval(d, opt.Level)
	m.Change, m.ChangeSE, m.ChangeLo, m.ChangeHi = Float(ti.Mean), Float(ti.SE), Float(ti.Lo), Float(ti.Hi)
	m.RelativeChange = Float(math.NaN())
	if m.BaselineMean != 0 {
		m.RelativeChange = m.Change / m.BaselineMean
	}
	m.DroppedShare = Float(math.NaN())
	if m.Pairs > 0 {
		m.DroppedShare = Float(float64(m.Dropped) / float64(m.Pairs))
	}
	w := Wilcoxon(d)
	m.Wilcoxon = WilcoxonJSON{N: w.N, Zeros: w.Zeros, WPlus: Float(w.WPlus), WMinus: Float(w.WMinus), Z: Float(w.Z), P: Float(w.P), Method: w.Method}
	return m, nil
}

// margin returns the margin of r, refined when asked, and whether it has
// one: DeepFool's where it succeeded; or the refined one wherever the
// refinement confirmed a point, DeepFool's failures included, and none
// where it was censored (margin_refined is then the radius tried, not a
// margin). A record of an audit made without refinement has no refined
// margin to compare: an error.
func margin(r *auditor.Record, refined bool) (float64, bool, error) {
	if !refined {
		return r.Margin, r.Success, nil
	}
	if !r.Refined() {
		return 0, false, fmt.Errorf("compare: %s %s image %d (%s) has no refined margin: audit with refinement or compare unrefined margins",
			r.Checkpoint, r.Split, r.Index, r.Norm)
	}
	return r.MarginRefined, r.HasRefinedMargin(), nil
}

// accuracyDiff compares the clean predictions of one split, given the
// records of one norm (every norm has the same clean prediction).
func accuracyDiff(split auditor.Split, b, c []auditor.Record) AccuracyDiff {
	a := AccuracyDiff{Split: split, Images: len(b)}
	var nb, nc, lost, gained int
	for i := range b {
		if b[i].Correct {
			nb++
		}
		if c[i].Correct {
			nc++
		}
		switch {
		case b[i].Correct && !c[i].Correct:
			lost++
		case !b[i].Correct && c[i].Correct:
			gained++
		}
	}
	n := float64(len(b))
	a.Baseline, a.Candidate = Float(float64(nb)/n), Float(float64(nc)/n)
	a.Change = a.Candidate - a.Baseline
	a.McNemar = mcnemarJSON(McNemar(lost, gained))
	return a
}

// robustDiffs compares the PGD results both audits have (the settings are
// equal, so both have the same), with McNemar's test where both recorded
// every image's outcome.
func robustDiffs(base, cand *Audit) []RobustDiff {
	cands := map[attackKey]auditor.PGDResult{}
	for _, p := range cand.PGD {
		cands[attackKey{p.Split, p.Norm, p.Eps}] = p
	}
	bo, co := outcomes(base.Robust), outcomes(cand.Robust)
	out := []RobustDiff{}
	for _, b := range base.PGD {
		k := attackKey{b.Split, b.Norm, b.Eps}
		c, ok := cands[k]
		if !ok {
			continue
		}
		r := RobustDiff{Split: b.Split, Norm: b.Norm, Eps: b.Eps, Images: b.Images,
			Baseline: Float(ratio(b.Robust, b.Images)), Candidate: Float(ratio(c.Robust, c.Images))}
		r.Change = r.Candidate - r.Baseline
		if lost, gained, ok := discordant(bo[k], co[k], b.Images); ok {
			m := mcnemarJSON(McNemar(lost, gained))
			r.McNemar = &m
		}
		out = append(out, r)
	}
	return out
}

// attackKey names one PGD attack of an audit.
type attackKey struct {
	split auditor.Split
	norm  auditor.Norm
	eps   float64
}

// outcomes maps each attack to each image's outcome.
func outcomes(rows []auditor.RobustImage) map[attackKey]map[int]bool {
	out := map[attackKey]map[int]bool{}
	for _, r := range rows {
		k := attackKey{r.Split, r.Norm, r.Eps}
		if out[k] == nil {
			out[k] = map[int]bool{}
		}
		out[k][r.Index] = r.Robust
	}
	return out
}

// discordant counts the images robust on the baseline only (lost) and on
// the candidate only (gained); ok is false unless both recorded the same n
// images.
func discordant(b, c map[int]bool, n int) (lost, gained int, ok bool) {
	if len(b) != n || len(c) != n {
		return 0, 0, false
	}
	for i, rb := range b {
		rc, found := c[i]
		switch {
		case !found:
			return 0, 0, false
		case rb && !rc:
			lost++
		case !rb && rc:
			gained++
		}
	}
	return lost, gained, true
}

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}
