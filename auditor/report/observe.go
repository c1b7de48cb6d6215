package report

import (
	"fmt"
	"math"

	"github.com/marginaudit/marginaudit/auditor"
)

// Identification of the report's summary.json; Version changes only when a
// field changes meaning or disappears (adding fields does not change it).
const (
	ObservationsFormat  = "marginaudit-report"
	ObservationsVersion = 1
)

// Observations are the measured statements of the report, the content of
// the report's summary.json (schema in the package documentation). Every
// list is present, empty when the observation does not apply. Undefined
// statistics are NaN, null in JSON.
type Observations struct {
	Format  string  `json:"format"`  // ObservationsFormat
	Version int     `json:"version"` // ObservationsVersion
	Margin  string  `json:"margin"`  // "margin" or "margin_refined": the column the statistics use
	Alpha   float64 `json:"alpha"`   // significance level of the sentences

	Audits []AuditInfo `json:"audits"`

	Trend            []Trend          `json:"trend"`             // observation (1)
	AdversarialRatio []ModelRatio     `json:"adversarial_ratio"` // observation (2)
	IncorrectRatio   []IncorrectRatio `json:"incorrect_ratio"`   // observation (3)
	Detection        []Detection      `json:"detection"`         // margin as a misclassification detector
	// Brackets are the mean DeepFool and refined margins of the audits
	// made with refinement, per epoch, split and norm.
	Brackets []Bracket `json:"brackets"`
	// ModelSet compares the models of a model set; null for other
	// reports.
	ModelSet *ModelSet `json:"model_set"`
	// Calibration of the clean max-softmax per audit, epoch and split, and
	// its rank correlation with the margin per norm (observation 5; see
	// Calibration and MarginConfidence). Empty without confidence.csv.
	Calibration      []Calibration      `json:"calibration"`
	MarginConfidence []MarginConfidence `json:"margin_confidence"`
	// Gallery lists the images the gallery figures show (see
	// GalleryImage); empty without saved perturbations.
	Gallery []GalleryImage `json:"gallery"`

	Figures []Figure `json:"figures"`
	Notes   []string `json:"notes"` // what was skipped and why
}

// AuditInfo describes one audit of the report.
type AuditInfo struct {
	Label  string `json:"label"`
	Dir    string `json:"dir"`  // as given
	Data   string `json:"data"` // the audit's data set
	Epochs []int  `json:"epochs"`
	// Checkpoints are the checkpoints' file names, parallel to Epochs.
	Checkpoints []string `json:"checkpoints"`
	// SeparateModels is set when the checkpoints had no epochs: separate
	// models numbered in the order given, compared side by side. The
	// trend (1), the ratio to standard training (2) and the transitions
	// are then not computed, and the text names models, not epochs.
	SeparateModels bool `json:"separate_models"`
	// Input is the pixel range and normalisation the attacks used, from
	// the audit's settings or each checkpoint's metadata.
	Input      string            `json:"input"`
	Splits     []auditor.Split   `json:"splits"`
	Norms      []auditor.Norm    `json:"norms"`
	Images     []SplitImages     `json:"images"`     // images audited per split
	Failures   []NormFailures    `json:"failures"`   // failed attacks per norm, over all epochs and splits
	Confidence bool              `json:"confidence"` // whether confidence.csv was present
	Settings   *auditor.Settings `json:"settings"`
}

// SplitImages is the number of images audited on a split.
type SplitImages struct {
	Split  auditor.Split `json:"split"`
	Images int           `json:"images"`
}

// NormFailures is the number of images of one norm without a margin:
// with DeepFool's margins, the attacks that failed after all retries; with
// the refined margins (Observations.Margin "margin_refined"), the censored
// images that nothing flipped within the input range. Either way they are
// left out of the means and counted; R(ε) counts them above every ε.
// Treatment says which, in words.
type NormFailures struct {
	Norm      auditor.Norm `json:"norm"`
	Failures  int          `json:"failures"`
	Attacks   int          `json:"attacks"`
	Treatment string       `json:"treatment"`
}

// Direction is the verdict of a trend test.
type Direction string

// The directions of a trend: increasing or decreasing when the rank
// correlation is significant at Alpha, otherwise none.
const (
	Increasing Direction = "increasing"
	Decreasing Direction = "decreasing"
	NoTrend    Direction = "none"
)

// Trend is observation (1) for one (audit, split, norm): how the mean margin
// of all images moves after the first epoch of training. Epochs are those ≥ 1
// with at least one margin.
type Trend struct {
	Audit          string        `json:"audit"`
	Split          auditor.Split `json:"split"`
	Norm           auditor.Norm  `json:"norm"`
	Epochs         []int         `json:"epochs"`
	FirstEpoch     int           `json:"first_epoch"` // normally 1
	LastEpoch      int           `json:"last_epoch"`
	MeanFirst      auditor.Float `json:"mean_first"`      // mean margin at FirstEpoch
	MeanLast       auditor.Float `json:"mean_last"`       // mean margin at LastEpoch
	RelativeChange auditor.Float `json:"relative_change"` // (MeanLast − MeanFirst)/MeanFirst
	Rho            auditor.Float `json:"spearman_rho"`    // Spearman's ρ of mean margin vs epoch
	P              auditor.Float `json:"p_value"`         // two-sided
	Method         PValueMethod  `json:"p_method"`        // "exact" or "t" (see Spearman)
	Direction      Direction     `json:"direction"`
}

// ModelRatio is observation (2) for one (epoch, split, norm): the mean
// margin of an audit (normally of the adversarially trained model) over the
// mean margin of the audit labelled as standard training. RatioSE is the
// delta-method standard error |r|·√((se/mean)² + (se_std/mean_std)²),
// treating the two audits as independent samples.
type ModelRatio struct {
	Audit        string        `json:"audit"`
	Standard     string        `json:"standard"`
	Epoch        int           `json:"epoch"`
	Split        auditor.Split `json:"split"`
	Norm         auditor.Norm  `json:"norm"`
	Mean         auditor.Float `json:"mean"`
	SE           auditor.Float `json:"se"`
	StandardMean auditor.Float `json:"standard_mean"`
	StandardSE   auditor.Float `json:"standard_se"`
	Ratio        auditor.Float `json:"ratio"`
	RatioSE      auditor.Float `json:"ratio_se"`
}

// IncorrectRatio is observation (3) for one (audit, epoch, split, norm): the
// mean margin of the misclassified images over that of the correctly
// classified ones, with a Mann–Whitney U test of the two samples of margins
// (see MannWhitney: two-sided, normal approximation with tie and continuity
// correction). U is the statistic of the incorrect sample, so
// U/(n_incorrect·n_correct) < ½ when misclassified images have smaller
// margins.
type IncorrectRatio struct {
	Audit         string        `json:"audit"`
	Epoch         int           `json:"epoch"`
	Split         auditor.Split `json:"split"`
	Norm          auditor.Norm  `json:"norm"`
	NCorrect      int           `json:"n_correct"`
	NIncorrect    int           `json:"n_incorrect"`
	MeanCorrect   auditor.Float `json:"mean_correct"`
	MeanIncorrect auditor.Float `json:"mean_incorrect"`
	Ratio         auditor.Float `json:"ratio"`
	U             auditor.Float `json:"mann_whitney_u"`
	Z             auditor.Float `json:"z"`
	P             auditor.Float `json:"p_value"`
	Method        PValueMethod  `json:"p_method"` // "normal"
}

// Detection rates the margin as a detector of misclassified images for one
// (audit, epoch, split, norm): the AUROC of the score −margin (a small
// margin flags a wrong prediction) against the max-softmax baseline, the
// AUROC of −max_softmax on the same images. Both use the rank formula (see
// AUROC); 0.5 is chance. The baseline is NaN (null) when the audit has no
// confidence.csv (audits made before the auditor recorded it) or it lacks
// some of the images.
type Detection struct {
	Audit           string        `json:"audit"`
	Epoch           int           `json:"epoch"`
	Split           auditor.Split `json:"split"`
	Norm            auditor.Norm  `json:"norm"`
	NCorrect        int           `json:"n_correct"`
	NIncorrect      int           `json:"n_incorrect"`
	AUROCMargin     auditor.Float `json:"auroc_margin"`
	AUROCMaxSoftmax auditor.Float `json:"auroc_max_softmax"`
}

// Figure is one figure of the report, written as PNG and SVG.
type Figure struct {
	Kind    string        `json:"kind"` // see FigureKinds
	PNG     string        `json:"png"`  // path relative to the report directory
	SVG     string        `json:"svg"`
	Title   string        `json:"title"`
	Caption string        `json:"caption"`
	Audit   string        `json:"audit,omitempty"` // empty for figures of several audits
	Split   auditor.Split `json:"split,omitempty"`
	Norm    auditor.Norm  `json:"norm,omitempty"`
}

// The kinds of figure in a report.
const (
	FigMargin    = "margin"    // mean margin ± SE per epoch, train and test, accuracy beside it
	FigCompare   = "compare"   // several audits overlaid (standard vs adversarial)
	FigHistogram = "histogram" // margins of correct vs incorrect images at chosen epochs
	FigSankey    = "sankey"    // correct/incorrect transitions between epochs
	FigGroups    = "groups"    // mean margin of correct vs incorrect images per epoch
	// FigCalibration (calibration.go): reliability diagrams and calibration errors per epoch.
	// FigGallery (gallery.go): images closest to and farthest from the boundary.
)

// observe computes the statistics of the audits.
func observe(audits []*audit, opts *Options) (*Observations, []string) {
	var notes []string
	o := &Observations{
		Format: ObservationsFormat, Version: ObservationsVersion,
		Margin: "margin", Alpha: opts.Alpha,
		Audits: []AuditInfo{}, Trend: []Trend{}, AdversarialRatio: []ModelRatio{},
		IncorrectRatio: []IncorrectRatio{}, Detection: []Detection{},
		Calibration: []Calibration{}, MarginConfidence: []MarginConfidence{}, Gallery: []GalleryImage{}, Brackets: []Bracket{},
		Figures: []Figure{}, Notes: []string{},
	}
	if opts.Refined {
		o.Margin = "margin_refined"
	}
	for _, a := range audits {
		info := AuditInfo{
			Label: a.Label, Dir: a.Dir, Data: a.settings.Data,
			Epochs: a.epochs, Splits: a.splits, Norms: a.norms,
			Confidence: a.conf != nil, Settings: a.settings,
			SeparateModels: a.separate, Input: a.inputText(),
		}
		for _, e := range a.epochs {
			info.Checkpoints = append(info.Checkpoints, a.names[e])
		}
		for _, s := range a.splits {
			info.Images = append(info.Images, SplitImages{s, a.images(s)})
		}
		for _, n := range a.norms {
			attacks := 0
			for k, c := range a.cells {
				if k.norm == n {
					attacks += len(c.correct) + len(c.incorrect) + c.failures
				}
			}
			info.Failures = append(info.Failures, NormFailures{n, a.failures(n), attacks, failuresText(a.failures(n), opts)})
		}
		o.Audits = append(o.Audits, info)
		o.Brackets = append(o.Brackets, brackets(a)...)
		if a.conf == nil {
			notes = append(notes, fmt.Sprintf("audit %s has no %s: the max-softmax baseline of the detection AUROC is skipped", a.Label, auditor.ConfidenceFile))
		}
	}

	if audits[0].member {
		notes = append(notes, fmt.Sprintf("the %d audits are a model set, one model each, named by their labels and compared side by side", len(audits)))
	}

	// (1) Trend after epoch 1.
	for _, a := range audits {
		if a.member {
			continue
		}
		if a.separate {
			notes = append(notes, fmt.Sprintf("audit %s compares separate models, not epochs of a training run: no trend of the mean margin", a.Label))
			continue
		}
		for _, s := range a.splits {
			for _, n := range a.norms {
				if t, ok := trend(a, s, n, opts.Alpha); ok {
					o.Trend = append(o.Trend, t)
				} else {
					notes = append(notes, fmt.Sprintf("audit %s, %s %s: no epoch ≥ 1 with margins, no trend", a.Label, s, n))
				}
			}
		}
	}

	// (2) Other audits over the standard one.
	var std *audit
	for _, a := range audits {
		if a.Label == opts.Standard {
			std = a
		}
	}
	switch {
	case len(audits) < 2 || audits[0].member:
	case std == nil:
		notes = append(notes, fmt.Sprintf("no audit is labelled %q: no ratio of mean margins to standard training", opts.Standard))
	default:
		for _, a := range audits {
			if a == std {
				continue
			}
			if a.separate || std.separate {
				notes = append(notes, fmt.Sprintf("audits %s and %s are not both epochs of training runs: no ratio of their margins per epoch", a.Label, std.Label))
				continue
			}
			if a.settings.Data != std.settings.Data {
				notes = append(notes, fmt.Sprintf("audit %s is on data %q, %s on %q: no ratio of their margins", a.Label, a.settings.Data, std.Label, std.settings.Data))
				continue
			}
			o.AdversarialRatio = append(o.AdversarialRatio, modelRatios(a, std)...)
		}
	}

	// (3) Incorrect over correct, and the detection AUROC.
	missingConf := map[string]bool{}
	for _, a := range audits {
		for _, e := range a.epochs {
			for _, s := range a.splits {
				for _, n := range a.norms {
					c := a.cells[cellKey{e, s, n}]
					if c == nil {
						continue
					}
					cor, inc := a.group(e, s, n, auditor.Correct), a.group(e, s, n, auditor.Incorrect)
					mw := MannWhitney(c.incorrect, c.correct)
					o.IncorrectRatio = append(o.IncorrectRatio, IncorrectRatio{
						Audit: a.Label, Epoch: e, Split: s, Norm: n,
						NCorrect: len(c.correct), NIncorrect: len(c.incorrect),
						MeanCorrect: cor.Margin.Mean, MeanIncorrect: inc.Margin.Mean,
						Ratio: ratio(inc.Margin.Mean, cor.Margin.Mean),
						U:     auditor.Float(mw.U), Z: auditor.Float(mw.Z), P: auditor.Float(mw.P), Method: mw.Method,
					})
					d := Detection{
						Audit: a.Label, Epoch: e, Split: s, Norm: n,
						NCorrect: len(c.correct), NIncorrect: len(c.incorrect),
						AUROCMargin:     auditor.Float(AUROC(negate(c.incorrect), negate(c.correct))),
						AUROCMaxSoftmax: auditor.Float(math.NaN()),
					}
					if a.conf != nil {
						pos, okp := confidences(a, e, s, c.incorrectIdx)
						neg, okn := confidences(a, e, s, c.correctIdx)
						if okp && okn {
							d.AUROCMaxSoftmax = auditor.Float(AUROC(negate(pos), negate(neg)))
						} else {
							missingConf[a.Label] = true
						}
					}
					o.Detection = append(o.Detection, d)
				}
			}
		}
	}
	for _, a := range audits {
		if missingConf[a.Label] {
			notes = append(notes, fmt.Sprintf("audit %s: %s lacks some audited images; the max-softmax baseline is skipped where it does", a.Label, auditor.ConfidenceFile))
		}
	}

	// (5) Calibration beside the margins.
	var n []string
	o.Calibration, o.MarginConfidence, n = calibrate(audits)
	notes = append(notes, n...)
	return o, notes
}

// trend computes observation (1) for one series.
func trend(a *audit, split auditor.Split, norm auditor.Norm, alpha float64) (Trend, bool) {
	t := Trend{Audit: a.Label, Split: split, Norm: norm, Epochs: []int{}}
	var x, y []float64
	for _, e := range a.epochs {
		if e < 1 {
			continue
		}
		g := a.group(e, split, norm, auditor.All)
		if g == nil || g.Margin.N == 0 {
			continue
		}
		t.Epochs = append(t.Epochs, e)
		x = append(x, float64(e))
		y = append(y, float64(g.Margin.Mean))
	}
	if len(x) == 0 {
		return t, false
	}
	t.FirstEpoch, t.LastEpoch = t.Epochs[0], t.Epochs[len(t.Epochs)-1]
	t.MeanFirst, t.MeanLast = auditor.Float(y[0]), auditor.Float(y[len(y)-1])
	t.RelativeChange = auditor.Float(RelativeChange(y[0], y[len(y)-1]))
	sp := Spearman(x, y)
	t.Rho, t.P, t.Method = auditor.Float(sp.Rho), auditor.Float(sp.P), sp.Method
	t.Direction = NoTrend
	if sp.P < alpha {
		t.Direction = Increasing
		if sp.Rho < 0 {
			t.Direction = Decreasing
		}
	}
	return t, true
}

// modelRatios computes observation (2) of a over std at their common
// (epoch, split, norm).
func modelRatios(a, std *audit) []ModelRatio {
	var out []ModelRatio
	for _, e := range a.epochs {
		for _, s := range a.splits {
			for _, n := range a.norms {
				g, gs := a.group(e, s, n, auditor.All), std.group(e, s, n, auditor.All)
				if g == nil || gs == nil {
					continue
				}
				m, se := float64(g.Margin.Mean), float64(g.Margin.SE)
				ms, ses := float64(gs.Margin.Mean), float64(gs.Margin.SE)
				out = append(out, ModelRatio{
					Audit: a.Label, Standard: std.Label, Epoch: e, Split: s, Norm: n,
					Mean: g.Margin.Mean, SE: g.Margin.SE, StandardMean: gs.Margin.Mean, StandardSE: gs.Margin.SE,
					Ratio: ratio(g.Margin.Mean, gs.Margin.Mean), RatioSE: auditor.Float(ratioSE(m, se, ms, ses)),
				})
			}
		}
	}
	return out
}

// confidences returns the max-softmax of the images, false when one is
// missing.
func confidences(a *audit, epoch int, split auditor.Split, idx []int) ([]float64, bool) {
	out := make([]float64, len(idx))
	for i, ix := range idx {
		c, ok := a.conf[imageKey{epoch, split, ix}]
		if !ok {
			return nil, false
		}
		out[i] = c
	}
	return out, true
}

func ratio(a, b auditor.Float) auditor.Float {
	if b == 0 {
		return auditor.Float(math.NaN())
	}
	return a / b
}

func negate(x []float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = -v
	}
	return out
}
