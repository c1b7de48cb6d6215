package report

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/internal/english"
)

// The figures of the bracket of refined audits.
const (
	FigBracket = "bracket" // mean DeepFool and refined margins per epoch
	FigBand    = "band"    // R(ε) of the DeepFool and refined margins as a band, at chosen epochs
)

// Bracket is the bracket of one (audit, epoch, split, norm) of an audit
// made with refinement: how far the refined margins (FMN, confirmed by a
// forward run) lie below DeepFool's, and, when the audit certified, the
// certified lower bounds below both. The means are over the Paired images
// that have both margins, so that MeanLower ≤ MeanRefined ≤ MeanDeepFool
// image by image; DeepFoolFailures images have no DeepFool margin, Censored images
// no refined one (nothing flipped them within the input range), and both
// are left out of the means and counted here.
type Bracket struct {
	Audit            string        `json:"audit"`
	Epoch            int           `json:"epoch"`
	Split            auditor.Split `json:"split"`
	Norm             auditor.Norm  `json:"norm"`
	Images           int           `json:"images"`
	DeepFoolFailures int           `json:"deepfool_failures"` // no DeepFool margin (the refinement's search may have found one)
	Censored         int           `json:"censored"`          // no refined margin: nothing flipped within the input range
	Paired           int           `json:"paired"`            // images with both margins: the means' sample
	MeanDeepFool     auditor.Float `json:"mean_deepfool"`
	MeanRefined      auditor.Float `json:"mean_refined"`
	Ratio            auditor.Float `json:"ratio"` // MeanRefined / MeanDeepFool
	// MeanLower is the mean certified lower bound of the Paired images (0
	// for a misclassified one), and LowerRatio MeanLower / MeanRefined;
	// null when the audit did not certify.
	MeanLower  auditor.Float `json:"mean_lower"`
	LowerRatio auditor.Float `json:"lower_ratio"`
}

// bracketCell holds the margins of one (epoch, split, norm) of a refined
// audit, as margins.csv has them.
type bracketCell struct {
	images             int
	deepFool, refined  []float64 // DeepFool's successes; uncensored refined margins
	dfFailed, censored int
	pairedDF, pairedRf []float64 // images with both
	pairedLo           []float64 // their certified lower bounds, when certified
	lower              []float64 // every image's certified lower bound, when certified
}

// bracketCells sorts the records of a refined audit by (epoch, split,
// norm); nil when no record has a refined margin.
func bracketCells(recs []auditor.Record) map[cellKey]*bracketCell {
	if !slices.ContainsFunc(recs, func(r auditor.Record) bool { return r.Refined() }) {
		return nil
	}
	out := map[cellKey]*bracketCell{}
	for i := range recs {
		r := &recs[i]
		k := cellKey{r.Epoch, r.Split, r.Norm}
		c := out[k]
		if c == nil {
			c = new(bracketCell)
			out[k] = c
		}
		c.images++
		if r.Success {
			c.deepFool = append(c.deepFool, r.Margin)
		} else {
			c.dfFailed++
		}
		switch {
		case r.HasRefinedMargin():
			c.refined = append(c.refined, r.MarginRefined)
		case r.Censored:
			c.censored++
		}
		if r.Certified {
			c.lower = append(c.lower, r.MarginLower)
		}
		if r.Success && r.HasRefinedMargin() {
			c.pairedDF = append(c.pairedDF, r.Margin)
			c.pairedRf = append(c.pairedRf, r.MarginRefined)
			if r.Certified {
				c.pairedLo = append(c.pairedLo, r.MarginLower)
			}
		}
	}
	return out
}

// brackets returns the brackets of a refined audit, by epoch, split and
// norm; none for other audits.
func brackets(a *audit) []Bracket {
	var out []Bracket
	for _, e := range a.epochs {
		for _, s := range a.splits {
			for _, n := range a.norms {
				c := a.bracket[cellKey{e, s, n}]
				if c == nil {
					continue
				}
				b := Bracket{Audit: a.Label, Epoch: e, Split: s, Norm: n, Images: c.images, DeepFoolFailures: c.dfFailed,
					Censored: c.censored, Paired: len(c.pairedDF), MeanDeepFool: mean(c.pairedDF), MeanRefined: mean(c.pairedRf)}
				b.Ratio = ratio(b.MeanRefined, b.MeanDeepFool)
				b.MeanLower, b.LowerRatio = auditor.Float(math.NaN()), auditor.Float(math.NaN())
				if len(c.lower) > 0 {
					b.MeanLower = mean(c.pairedLo)
					b.LowerRatio = ratio(b.MeanLower, b.MeanRefined)
				}
				out = append(out, b)
			}
		}
	}
	return out
}

// mean is the mean of x, NaN when empty.
func mean(x []float64) auditor.Float {
	if len(x) == 0 {
		return auditor.Float(math.NaN())
	}
	s := 0.0
	for _, v := range x {
		s += v
	}
	return auditor.Float(s / float64(len(x)))
}

// bracketCounts says how many images of an audit's norm have no DeepFool
// margin and how many are censored, and how the figures treat them.
func bracketCounts(a *audit, n auditor.Norm) string {
	failed, censored := 0, 0
	for k, c := range a.bracket {
		if k.norm == n {
			failed += c.dfFailed
			censored += c.censored
		}
	}
	return fmt.Sprintf("%s DeepFool failed on (left out of DeepFool's means; the refinement started them from a search: PGD on the logit gap at growing radii, else the nearest constant image classified otherwise) and %s (no attack flipped them within the input range; left out of the refined means)",
		english.Plural(failed, "image"), english.Plural(censored, "censored image"))
}

// certifiedText describes the certified lower bounds of a figure's
// caption; "" when the audit did not certify.
func certifiedText(a *audit) string {
	if !a.settings.Certify {
		return ""
	}
	return fmt.Sprintf(" The certified lower bound (linear bound propagation, CROWN, %d bisection steps up to the refined margin) is at most the refined margin on every image; it is 0 for a misclassified image, whose prediction is wrong already.", a.settings.CertifySettings.Steps)
}

// bracketFigure: the mean DeepFool and refined margins per epoch, one
// panel per split.
func bracketFigure(a *audit, n auditor.Norm) (*figure, Figure) {
	var row []*plot.Plot
	var legend []legendItem
	for _, s := range a.splits {
		p := newPanel(fmt.Sprintf("%s split", s), a.unit(), marginAxis("mean ", n, a))
		checkpointAxis(p, a, a.epochs)
		var x, df, rf, lo []float64
		for _, b := range brackets(a) {
			if b.Split == s && b.Norm == n {
				x, df, rf = append(x, float64(b.Epoch)), append(df, float64(b.MeanDeepFool)), append(rf, float64(b.MeanRefined))
				lo = append(lo, float64(b.MeanLower))
			}
		}
		tdf := series{x: x, y: df, color: vermillion, shape: draw.TriangleGlyph{}, dashes: []vg.Length{vg.Points(5), vg.Points(3)}, points: a.separate}.add(p)
		trf := series{x: x, y: rf, color: blue, shape: draw.CircleGlyph{}, points: a.separate}.add(p)
		tlo := series{x: x, y: lo, color: bluishGreen, shape: draw.SquareGlyph{}, dashes: []vg.Length{vg.Points(2), vg.Points(2)}, points: a.separate}.add(p)
		p.Y.Min = 0
		row = append(row, p)
		if legend == nil {
			legend = []legendItem{{"DeepFool (upper bound)", tdf}, {"refined by FMN (tighter upper bound)", trf}}
			if a.settings.Certify {
				legend = append(legend, legendItem{"certified (lower bound)", tlo})
			}
		}
	}
	f := &figure{
		title:  fmt.Sprintf("%s: the bracket of the %s margins per %s (%s)", a.Label, normName(n), a.unit(), dataName(a)),
		legend: legend,
		panels: [][]*plot.Plot{row},
		w:      10 * vg.Inch, h: 4.2 * vg.Inch,
	}
	caption := fmt.Sprintf("Audit %s on %s, %s. Mean %s margin per %s of the images that have both margins: DeepFool's and the one FMN refined from it (%d steps), whose adversarial point a forward run confirmed. Both are upper bounds of the distance to the decision boundary; the refined one is at most DeepFool's on every image.%s Left out and counted: %s.",
		a.Label, dataName(a), splitsText(a, a.splits), normName(n), a.unit(), a.settings.RefineParams.Steps, certifiedText(a), bracketCounts(a, n))
	return f, Figure{Kind: FigBracket, Caption: caption, Audit: a.Label, Norm: n}
}

// bandFigure: R(ε) of the DeepFool and of the refined margins at chosen
// epochs, one panel per epoch, the band between them shaded.
func bandFigure(a *audit, s auditor.Split, n auditor.Norm, epochs []int) (*figure, Figure) {
	cols := len(epochs)
	if cols == 4 {
		cols = 2
	}
	var panels [][]*plot.Plot
	dfStyle := draw.LineStyle{Color: vermillion, Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}
	rfStyle := draw.LineStyle{Color: blue, Width: vg.Points(1.5)}
	loStyle := draw.LineStyle{Color: bluishGreen, Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}
	fill := withAlpha(skyBlue, 90)
	var counts []string
	for i, e := range epochs {
		if i%cols == 0 {
			panels = append(panels, nil)
		}
		c := a.bracket[cellKey{e, s, n}]
		if c == nil {
			c = new(bracketCell)
		}
		hi := 0.0
		for _, m := range append(slices.Clone(c.deepFool), c.refined...) {
			hi = max(hi, m)
		}
		hi, eps := epsGrid(hi)
		upper := robustCurve(c.deepFool, c.dfFailed, eps)
		refined := robustCurve(c.refined, c.censored, eps)
		lower := refined
		if len(c.lower) > 0 {
			lower = robustCurve(c.lower, 0, eps)
		}
		p := newPanel(a.at(e), "ε, "+marginAxis("", n, a), "fraction of images with margin > ε")
		band := make(plotter.XYs, 0, 2*len(eps))
		du, dl := make(plotter.XYs, len(eps)), make(plotter.XYs, len(eps))
		for j := range eps {
			du[j], dl[j] = plotter.XY{X: eps[j], Y: upper[j]}, plotter.XY{X: eps[j], Y: lower[j]}
			band = append(band, du[j])
		}
		for j := len(eps) - 1; j >= 0; j-- {
			band = append(band, dl[j])
		}
		if poly, err := plotter.NewPolygon(band); err == nil {
			poly.Color, poly.LineStyle.Width = fill, 0
			p.Add(poly)
		}
		dr := make(plotter.XYs, len(eps))
		for j := range eps {
			dr[j] = plotter.XY{X: eps[j], Y: refined[j]}
		}
		p.Add(&plotter.Line{XYs: du, LineStyle: dfStyle}, &plotter.Line{XYs: dr, LineStyle: rfStyle})
		if len(c.lower) > 0 {
			p.Add(&plotter.Line{XYs: dl, LineStyle: loStyle})
		}
		p.X.Min, p.X.Max = 0, hi
		p.Y.Min, p.Y.Max = 0, 1
		panels[len(panels)-1] = append(panels[len(panels)-1], p)
		counts = append(counts, fmt.Sprintf("%s: %d of %d images DeepFool failed on, %d censored", a.at(e), c.dfFailed, c.images, c.censored))
	}
	legend := []legendItem{
		{"DeepFool", []plot.Thumbnailer{&plotter.Line{LineStyle: dfStyle}}},
		{"refined by FMN", []plot.Thumbnailer{&plotter.Line{LineStyle: rfStyle}}},
	}
	bandText := "the band between the two curves is what the refinement removed"
	if a.settings.Certify {
		legend = append(legend, legendItem{"certified", []plot.Thumbnailer{&plotter.Line{LineStyle: loStyle}}})
		bandText = "the certified curve (dotted) counts the images whose certified lower bound exceeds ε, so the true R(ε) lies between it and the refined curve; the band spans from the certified to DeepFool's curve"
	}
	legend = append(legend, legendItem{"band", []plot.Thumbnailer{swatch{fill}}})
	h := 4.2 * vg.Inch
	if len(panels) > 1 {
		h = 7.4 * vg.Inch
	}
	f := &figure{
		title:  fmt.Sprintf("%s: fraction of the %s images whose %s margin exceeds ε (%s)", a.Label, s, normName(n), dataName(a)),
		legend: legend,
		panels: panels,
		w:      10 * vg.Inch, h: h,
	}
	caption := fmt.Sprintf("Audit %s on %s, %s, %s. R(ε), the fraction of the images whose %s margin exceeds ε, from DeepFool's margins (dashed) and from those FMN refined (%d steps, solid); both are upper bounds of each image's distance to the boundary, so the true R(ε) lies at or below the refined curve; %s. Correctly classified and misclassified images count alike. An image DeepFool failed on counts above every ε in DeepFool's curve; a censored image (no attack flipped it within the input range, up to the largest perturbation the range allows) counts above every ε in the refined curve. %s.",
		a.Label, dataName(a), splitsText(a, []auditor.Split{s}), a.listed(epochs), normName(n), a.settings.RefineParams.Steps, bandText, strings.Join(counts, "; "))
	return f, Figure{Kind: FigBand, Caption: caption, Audit: a.Label, Split: s, Norm: n}
}

// bracketTable lays out the brackets.
func bracketTable(o *Observations) []pageTable {
	if len(o.Brackets) == 0 {
		return nil
	}
	t := pageTable{Title: "The bracket: mean certified lower bound, refined and DeepFool margins of the images with both margins, per epoch or model",
		Header: []string{"audit", "epoch or model", "split", "norm", "images", "DeepFool failed", "censored", "paired", "mean certified", "mean refined", "mean DeepFool", "refined / DeepFool", "certified / refined"}}
	for _, b := range o.Brackets {
		t.Rows = append(t.Rows, []string{b.Audit, o.point(b.Audit, b.Epoch), string(b.Split), normName(b.Norm), fmt.Sprint(b.Images),
			fmt.Sprint(b.DeepFoolFailures), fmt.Sprint(b.Censored), fmt.Sprint(b.Paired), fmtV(b.MeanLower), fmtV(b.MeanRefined), fmtV(b.MeanDeepFool), fmtR(b.Ratio), fmtR(b.LowerRatio)})
	}
	return []pageTable{t}
}
