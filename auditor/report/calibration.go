package report

import (
	"fmt"
	"image/color"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/marginaudit/marginaudit/auditor"
)

// Calibration beside the margins: how well each checkpoint's clean
// max-softmax confidence matches its accuracy (expected and maximum
// calibration error over equal-width confidence bins, the reliability
// diagram), and whether the images near the decision boundary are the
// over-confident ones (rank correlations of the margin with the confidence
// and with the over-confidence). Both need the audit's confidence.csv.

// CalibrationBins is the number of equal-width confidence bins of the
// report's calibration errors and reliability diagrams: 15, as Guo et al.
// (2017, "On calibration of modern neural networks") and most later work
// use, so that the numbers compare with published ones.
const CalibrationBins = 15

// CalibrationBin is one confidence bin of a reliability diagram: the images
// whose confidence c lies in (Lo, Hi] (the first bin also holds c = 0).
// Accuracy and Confidence are the fraction correct and the mean confidence
// of those images, NaN (null) when the bin is empty.
type CalibrationBin struct {
	Lo         float64       `json:"lo"`
	Hi         float64       `json:"hi"`
	N          int           `json:"n"`
	Accuracy   auditor.Float `json:"accuracy"`
	Confidence auditor.Float `json:"confidence"`
}

// CalibrationResult is the calibration of one sample of predictions.
// ECE = Σ_b (n_b/N)·|acc_b − conf_b| over the bins; MCE = max_b |acc_b −
// conf_b| over the non-empty bins. Both are NaN for an empty sample.
type CalibrationResult struct {
	N    int
	ECE  float64
	MCE  float64
	Bins []CalibrationBin
}

// Calibrate bins the predictions by confidence into bins equal-width bins
// of [0, 1], bin b holding confidences in (b/bins, (b+1)/bins] and the
// first also 0, and returns the expected and maximum calibration error and
// the reliability diagram. It panics if conf and correct differ in length,
// bins < 1, or a confidence is outside [0, 1].
func Calibrate(conf []float64, correct []bool, bins int) CalibrationResult {
	if len(conf) != len(correct) {
		panic("report: Calibrate of samples of different lengths")
	}
	if bins < 1 {
		panic("report: Calibrate with fewer than one bin")
	}
	n := make([]int, bins)
	hits := make([]int, bins)
	sum := make([]float64, bins)
	for i, c := range conf {
		if !(c >= 0 && c <= 1) {
			panic(fmt.Sprintf("report: Calibrate of confidence %v outside [0, 1]", c))
		}
		b := min(max(int(math.Ceil(c*float64(bins)))-1, 0), bins-1)
		n[b]++
		sum[b] += c
		if correct[i] {
			hits[b]++
		}
	}
	res := CalibrationResult{N: len(conf), ECE: math.NaN(), MCE: math.NaN()}
	if res.N > 0 {
		res.ECE, res.MCE = 0, 0
	}
	for b := range bins {
		bin := CalibrationBin{Lo: float64(b) / float64(bins), Hi: float64(b+1) / float64(bins), N: n[b],
			Accuracy: auditor.Float(math.NaN()), Confidence: auditor.Float(math.NaN())}
		if n[b] > 0 {
			acc, mc := float64(hits[b])/float64(n[b]), sum[b]/float64(n[b])
			bin.Accuracy, bin.Confidence = auditor.Float(acc), auditor.Float(mc)
			gap := math.Abs(acc - mc)
			res.ECE += float64(n[b]) / float64(res.N) * gap
			res.MCE = math.Max(res.MCE, gap)
		}
		res.Bins = append(res.Bins, bin)
	}
	return res
}

// Calibration is the calibration of one (audit, epoch, split): the clean
// max-softmax of every audited image against whether the checkpoint
// classified it correctly, over CalibrationBins equal-width bins (see
// Calibrate). Accuracy and MeanConfidence are over the same N images; their
// difference is the overall over-confidence.
type Calibration struct {
	Audit          string           `json:"audit"`
	Epoch          int              `json:"epoch"`
	Split          auditor.Split    `json:"split"`
	N              int              `json:"n"`
	Accuracy       auditor.Float    `json:"accuracy"`
	MeanConfidence auditor.Float    `json:"mean_confidence"`
	ECE            auditor.Float    `json:"ece"`
	MCE            auditor.Float    `json:"mce"`
	Bins           []CalibrationBin `json:"bins"`
}

// MarginConfidence relates the margin to the confidence for one (audit,
// epoch, split, norm), over the N images with both a margin (a successful
// attack) and a confidence:
//
//   - RhoConfidence: Spearman's ρ of the margin with the max-softmax. A
//     margin and a confidence that agree give ρ > 0.
//   - RhoOverconfidence: Spearman's ρ of the margin with the
//     over-confidence max_softmax − correct (correct = 1 or 0), the image's
//     own share of the calibration gap: positive for a confident mistake,
//     near 0 for a confident correct image, negative for a hesitant correct
//     one. ρ < 0 says that the images closest to the boundary are the
//     over-confident ones. Over all images it mixes two effects: when most
//     images are correct it follows RhoConfidence (their over-confidence is
//     conf − 1), so it is given beside
//   - RhoMisclassified: Spearman's ρ of the margin with the max-softmax
//     over the NMisclassified misclassified images alone, whose
//     over-confidence is their confidence: ρ > 0 says that the confident
//     mistakes lie far from the boundary (the margin will not flag them),
//     ρ < 0 that they lie close to it.
//
// P-values as in Spearman (exact up to ExactSpearmanMax pairs, t
// approximation above), two-sided, uncorrected; NaN when ρ is undefined
// (fewer than two images, or a constant sample).
type MarginConfidence struct {
	Audit             string        `json:"audit"`
	Epoch             int           `json:"epoch"`
	Split             auditor.Split `json:"split"`
	Norm              auditor.Norm  `json:"norm"`
	N                 int           `json:"n"`
	RhoConfidence     auditor.Float `json:"spearman_rho_confidence"`
	PConfidence       auditor.Float `json:"p_confidence"`
	RhoOverconfidence auditor.Float `json:"spearman_rho_overconfidence"`
	POverconfidence   auditor.Float `json:"p_overconfidence"`
	Method            PValueMethod  `json:"p_method"` // of the two ρ over all N images
	NMisclassified    int           `json:"n_misclassified"`
	RhoMisclassified  auditor.Float `json:"spearman_rho_misclassified"`
	PMisclassified    auditor.Float `json:"p_misclassified"`
}

// FigCalibration is the kind of the reliability diagrams and calibration
// errors per epoch.
const FigCalibration = "calibration"

// calibrate computes the calibration and the margin–confidence
// correlations of the audits that have confidence.csv.
func calibrate(audits []*audit) ([]Calibration, []MarginConfidence, []string) {
	cals, mcs := []Calibration{}, []MarginConfidence{}
	var notes []string
	for _, a := range audits {
		if a.conf == nil {
			notes = append(notes, fmt.Sprintf("audit %s has no %s: no calibration", a.Label, auditor.ConfidenceFile))
			continue
		}
		missing := 0
		for _, e := range a.epochs {
			for _, s := range a.splits {
				c, ok := a.calibration(e, s)
				if !ok {
					missing++
					continue
				}
				if c.N > 0 {
					cals = append(cals, c)
				}
				for _, n := range a.norms {
					if m, ok := a.marginConfidence(e, s, n); ok {
						mcs = append(mcs, m)
					}
				}
			}
		}
		if missing > 0 {
			notes = append(notes, fmt.Sprintf("audit %s: %s lacks some audited images at %d (%s, split) pairs: no calibration there", a.Label, auditor.ConfidenceFile, missing, a.unit()))
		}
	}
	return cals, mcs, notes
}

// correctness returns whether each audited image of (epoch, split) was
// classified correctly, by image index, from its records (the same for
// every norm), including images whose attacks failed.
func (a *audit) correctness(epoch int, split auditor.Split) map[int]bool {
	out := map[int]bool{}
	for i := range a.records {
		r := &a.records[i]
		if r.Epoch == epoch && r.Split == split {
			out[r.Index] = r.Correct
		}
	}
	return out
}

// calibration computes the calibration of (epoch, split); false when
// confidence.csv lacks one of its images.
func (a *audit) calibration(epoch int, split auditor.Split) (Calibration, bool) {
	cor := a.correctness(epoch, split)
	conf := make([]float64, 0, len(cor))
	ok := make([]bool, 0, len(cor))
	hits, sum := 0, 0.0
	// In index order, so that the sums do not depend on map order.
	for _, ix := range slices.Sorted(maps.Keys(cor)) {
		c := cor[ix]
		p, found := a.conf[imageKey{epoch, split, ix}]
		if !found {
			return Calibration{}, false
		}
		conf, ok = append(conf, p), append(ok, c)
		sum += p
		if c {
			hits++
		}
	}
	r := Calibrate(conf, ok, CalibrationBins)
	out := Calibration{Audit: a.Label, Epoch: epoch, Split: split, N: r.N,
		Accuracy: auditor.Float(math.NaN()), MeanConfidence: auditor.Float(math.NaN()),
		ECE: auditor.Float(r.ECE), MCE: auditor.Float(r.MCE), Bins: r.Bins}
	if r.N > 0 {
		out.Accuracy, out.MeanConfidence = auditor.Float(float64(hits)/float64(r.N)), auditor.Float(sum/float64(r.N))
	}
	return out, true
}

// marginConfidence computes the rank correlations of (epoch, split, norm);
// false when the cell has no margins or confidence.csv lacks an image.
func (a *audit) marginConfidence(epoch int, split auditor.Split, norm auditor.Norm) (MarginConfidence, bool) {
	c := a.cells[cellKey{epoch, split, norm}]
	if c == nil || len(c.correct)+len(c.incorrect) == 0 {
		return MarginConfidence{}, false
	}
	var margin, conf, over []float64
	for _, g := range []struct {
		m       []float64
		idx     []int
		correct float64
	}{{c.correct, c.correctIdx, 1}, {c.incorrect, c.incorrectIdx, 0}} {
		p, ok := confidences(a, epoch, split, g.idx)
		if !ok {
			return MarginConfidence{}, false
		}
		margin = append(margin, g.m...)
		conf = append(conf, p...)
		for _, v := range p {
			over = append(over, v-g.correct)
		}
	}
	sc, so := Spearman(margin, conf), Spearman(margin, over)
	// The misclassified images come last.
	nc := len(c.correct)
	sm := Spearman(margin[nc:], conf[nc:])
	return MarginConfidence{Audit: a.Label, Epoch: epoch, Split: split, Norm: norm, N: len(margin),
		RhoConfidence: auditor.Float(sc.Rho), PConfidence: auditor.Float(sc.P),
		RhoOverconfidence: auditor.Float(so.Rho), POverconfidence: auditor.Float(so.P), Method: sc.Method,
		NMisclassified: len(c.incorrect), RhoMisclassified: auditor.Float(sm.Rho), PMisclassified: auditor.Float(sm.P)}, true
}

// unitTicks labels 0, 0.5 and 1, with minor ticks at the quarters: the
// axes of a reliability diagram, narrow panels.
var unitTicks = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 0.25}, {Value: 0.5, Label: "0.5"}, {Value: 0.75}, {Value: 1, Label: "1"}})

var diagonalStyle = draw.LineStyle{Color: black, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}

// reliabilityFigure: the reliability diagrams at the chosen epochs, one
// row per split.
func reliabilityFigure(a *audit, cals map[imageKey]*Calibration, epochs []int) (*figure, Figure) {
	barFill := withAlpha(blue, 150)
	var panels [][]*plot.Plot
	for _, s := range a.splits {
		var row []*plot.Plot
		for _, e := range epochs {
			p := newPanel(fmt.Sprintf("%s, %s", s, a.at(e)), "confidence (max softmax)", "accuracy")
			p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1.08
			p.X.Tick.Marker, p.Y.Tick.Marker = unitTicks, unitTicks
			p.Add(&plotter.Line{XYs: plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}}, LineStyle: diagonalStyle})
			if c := cals[imageKey{e, s, 0}]; c != nil {
				reliabilityBars(p, c, barFill)
				p.Title.Text += fmt.Sprintf(": ECE %s", fmtR(c.ECE))
			}
			row = append(row, p)
		}
		panels = append(panels, row)
	}
	legend := []legendItem{
		{"fraction correct per confidence bin (number of images above the bar)", []plot.Thumbnailer{swatch{barFill}}},
		{"perfect calibration", []plot.Thumbnailer{&plotter.Line{LineStyle: diagonalStyle}}},
	}
	h := 4.2 * vg.Inch
	if len(panels) > 1 {
		h = 7.4 * vg.Inch
	}
	f := &figure{
		title:  fmt.Sprintf("%s: reliability of the clean max-softmax confidence (%s)", a.Label, dataName(a)),
		legend: legend, panels: panels, w: 10 * vg.Inch, h: h,
	}
	caption := fmt.Sprintf("Audit %s on %s, %s, %s. Reliability diagrams: the audited images binned by the checkpoint's largest softmax probability on the clean image into %d equal-width bins of [0, 1]; each bar is the fraction of a bin's images classified correctly, with the number of images above it; the dashed diagonal is perfect calibration. ECE = Σ (n_bin/N)·|accuracy − mean confidence| over the bins. From %s and the predictions in %s, over all audited images (also those whose attacks failed).",
		a.Label, dataName(a), splitsText(a, a.splits), a.listed(epochs), CalibrationBins, auditor.ConfidenceFile, auditor.MarginsFile)
	return f, Figure{Kind: FigCalibration, Caption: caption, Audit: a.Label}
}

// calibrationErrorFigure: the ECE and MCE per epoch, one panel per split.
func calibrationErrorFigure(a *audit, cals map[imageKey]*Calibration) (*figure, Figure) {
	var row []*plot.Plot
	var legend []legendItem
	for _, s := range a.splits {
		p := newPanel(fmt.Sprintf("%s split", s), a.unit(), "calibration error")
		checkpointAxis(p, a, a.epochs)
		p.Y.Min = 0
		var x, ece, mce []float64
		for _, e := range a.epochs {
			if c := cals[imageKey{e, s, 0}]; c != nil {
				x, ece, mce = append(x, float64(e)), append(ece, float64(c.ECE)), append(mce, float64(c.MCE))
			}
		}
		col, shape := splitColor(s)
		te := series{x: x, y: ece, color: col, shape: shape, points: a.separate}.add(p)
		tm := series{x: x, y: mce, color: col, shape: draw.CrossGlyph{}, dashes: []vg.Length{vg.Points(5), vg.Points(3)}, points: a.separate}.add(p)
		legend = append(legend, legendItem{fmt.Sprintf("%s ECE", s), te}, legendItem{fmt.Sprintf("%s MCE", s), tm})
		row = append(row, p)
	}
	f := &figure{
		title:  fmt.Sprintf("%s: calibration error of the clean max-softmax per %s (%s)", a.Label, a.unit(), dataName(a)),
		legend: legend, panels: [][]*plot.Plot{row}, w: 10 * vg.Inch, h: 4.2 * vg.Inch,
	}
	caption := fmt.Sprintf("Audit %s on %s, %s. The expected calibration error ECE = Σ (n_bin/N)·|accuracy − mean confidence| over %d equal-width bins of the largest softmax probability of the clean image, and the maximum calibration error MCE (the largest such gap of a non-empty bin), per %s; 0 is perfect calibration. From %s and the predictions in %s, over all audited images.",
		a.Label, dataName(a), splitsText(a, a.splits), CalibrationBins, a.unit(), auditor.ConfidenceFile, auditor.MarginsFile)
	return f, Figure{Kind: FigCalibration, Caption: caption, Audit: a.Label}
}

// calibrationFigures draws the calibration figures of a: the reliability
// diagrams at epochs and the calibration errors per epoch.
func calibrationFigures(a *audit, cals []Calibration, epochs []int) (figs []*figure, infos []Figure, names []string) {
	byKey := map[imageKey]*Calibration{}
	for i := range cals {
		if c := &cals[i]; c.Audit == a.Label {
			byKey[imageKey{c.Epoch, c.Split, 0}] = c
		}
	}
	f, info := reliabilityFigure(a, byKey, epochs)
	g, ginfo := calibrationErrorFigure(a, byKey)
	return []*figure{f, g}, []Figure{info, ginfo}, []string{"reliability-" + a.slug, "calibration-" + a.slug}
}

// reliabilityBars draws a reliability diagram's bars and bin counts on p.
func reliabilityBars(p *plot.Plot, c *Calibration, fill color.Color) {
	var bins []plotter.HistogramBin
	var labels plotter.XYLabels
	for _, b := range c.Bins {
		if b.N == 0 {
			continue
		}
		bins = append(bins, plotter.HistogramBin{Min: b.Lo, Max: b.Hi, Weight: float64(b.Accuracy)})
		labels.XYs = append(labels.XYs, plotter.XY{X: (b.Lo + b.Hi) / 2, Y: float64(b.Accuracy) + 0.01})
		labels.Labels = append(labels.Labels, strconv.Itoa(b.N))
	}
	if len(bins) == 0 {
		return
	}
	p.Add(&plotter.Histogram{Bins: bins, Width: 1 / float64(CalibrationBins), FillColor: fill, LineStyle: draw.LineStyle{Color: blue, Width: vg.Points(0.5)}})
	if l, err := plotter.NewLabels(labels); err == nil {
		for i := range l.TextStyle {
			l.TextStyle[i] = textStyle(6)
			l.TextStyle[i].XAlign, l.TextStyle[i].YAlign = draw.XCenter, draw.YBottom
		}
		p.Add(l)
	}
}

// calibrationSection states the calibration at the last epoch of each
// (audit, split) and the margin–confidence correlation there.
func (o *Observations) calibrationSection() section {
	sec := section{Heading: fmt.Sprintf("(5) Calibration of the clean max-softmax (ECE and MCE over %d equal-width bins) and Spearman ρ of the margin with the over-confidence (max_softmax − correct) at the last epoch:", CalibrationBins)}
	if o.ModelSet != nil { // one checkpoint per model, no training run: no number, no last epoch
		sec.Heading = fmt.Sprintf("Calibration of the clean max-softmax (ECE and MCE over %d equal-width bins) and Spearman ρ of the margin with the over-confidence (max_softmax − correct) per model:", CalibrationBins)
	}
	type key struct {
		audit string
		split auditor.Split
	}
	last := map[key]Calibration{}
	var keys []key
	for _, c := range o.Calibration {
		k := key{c.Audit, c.Split}
		if _, ok := last[k]; !ok {
			keys = append(keys, k)
		}
		last[k] = c
	}
	for _, k := range keys {
		c := last[k]
		line := fmt.Sprintf("%s, %s split: ECE %s, MCE %s at %s (accuracy %s, mean confidence %s, n = %d)",
			k.audit, k.split, fmtR(c.ECE), fmtR(c.MCE), o.at(k.audit, c.Epoch), fmtR(c.Accuracy), fmtR(c.MeanConfidence), c.N)
		var rhos []string
		for _, m := range o.MarginConfidence {
			if m.Audit == k.audit && m.Split == k.split && m.Epoch == c.Epoch {
				r := fmt.Sprintf("%s ρ = %s (%s)", normName(m.Norm), fmtRho(m.RhoOverconfidence), pEq(m.POverconfidence))
				if !math.IsNaN(float64(m.RhoMisclassified)) {
					r += fmt.Sprintf(" [the %d misclassified alone: ρ(margin, confidence) = %s, %s]", m.NMisclassified, fmtRho(m.RhoMisclassified), pEq(m.PMisclassified))
				}
				rhos = append(rhos, r)
			}
		}
		if len(rhos) > 0 {
			line += "; margin vs over-confidence: " + strings.Join(rhos, ", ")
		}
		sec.Lines = append(sec.Lines, line+".")
	}
	if len(o.Calibration) == 0 {
		sec.Lines = append(sec.Lines, fmt.Sprintf("not measured: no audit has %s.", auditor.ConfidenceFile))
	}
	return sec
}

// calibrationTables lays out the calibration and the margin–confidence
// correlations per epoch.
func calibrationTables(o *Observations) []pageTable {
	var ts []pageTable
	if len(o.Calibration) > 0 {
		t := pageTable{Title: fmt.Sprintf("(5) Calibration of the clean max-softmax per epoch or model (%d equal-width bins)", CalibrationBins),
			Header: []string{"audit", "epoch or model", "split", "n", "accuracy", "mean confidence", "ECE", "MCE"}}
		for _, c := range o.Calibration {
			t.Rows = append(t.Rows, []string{c.Audit, o.point(c.Audit, c.Epoch), string(c.Split), strconv.Itoa(c.N),
				fmtR(c.Accuracy), fmtR(c.MeanConfidence), fmtR(c.ECE), fmtR(c.MCE)})
		}
		ts = append(ts, t)
	}
	if len(o.MarginConfidence) > 0 {
		t := pageTable{Title: "(5) Spearman ρ of the margin with the confidence and with the over-confidence (max_softmax − correct), and with the confidence of the misclassified images alone, per epoch or model",
			Header: []string{"audit", "epoch or model", "split", "norm", "n", "ρ confidence", "p", "ρ over-confidence", "p", "n misclassified", "ρ confidence, misclassified", "p"}}
		for _, m := range o.MarginConfidence {
			t.Rows = append(t.Rows, []string{m.Audit, o.point(m.Audit, m.Epoch), string(m.Split), normName(m.Norm), strconv.Itoa(m.N),
				fmtRho(m.RhoConfidence), fmtP(m.PConfidence), fmtRho(m.RhoOverconfidence), fmtP(m.POverconfidence),
				strconv.Itoa(m.NMisclassified), fmtRho(m.RhoMisclassified), fmtP(m.PMisclassified)})
		}
		ts = append(ts, t)
	}
	return ts
}
