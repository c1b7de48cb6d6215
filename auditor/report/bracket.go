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
)

// The figures of the bracket of refined audits.
const (
	FigBracket = "bracket" // mean DeepFool and refined margins per epoch
	FigBand    = "band"    // R(ε) of the DeepFool and refined margins as a band, at chosen epochs
)

// Bracket is the bracket of one (audit, epoch, split, norm) of an audit
// made with refinement: how far the refined margins (FMN, confirmed by a
// forward run) lie below DeepFool's. The means are over the Paired images
// that have both margins, so that MeanRefined ≤ MeanDeepFool image by
// image; DeepFoolFailures images have no DeepFool margin, Censored images
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
}

// bracketCell holds the margins of one (epoch, split, norm) of a refined
// audit, as margins.csv has them.
type bracketCell struct {
	images             int
	deepFool, refined  []float64 // DeepFool's successes; uncensored refined margins
	dfFailed, censored int
	pairedDF, pairedRf []float64 // images with both
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
		if r.Success && r.HasRefinedMargin() {
			c.pairedDF = append(c.pairedDF, r.Margin)
			c.pairedRf = append(c.pairedRf, r.MarginRefined)
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
	return fmt.Sprintf("%s (left out of DeepFool's means; the refinement searched them from a PGD start) and %s (no attack flipped them within the input range; left out of the refined means)",
		plural(failed, "image DeepFool failed on"), plural(censored, "censored image"))
}

// bracketFigure: the mean DeepFool and refined margins per epoch, one
// panel per split.
func bracketFigure(a *audit, n auditor.Norm) (*figure, Figure) {
	var row []*plot.Plot
	var legend []legendItem
	for _, s := range a.splits {
		p := newPanel(fmt.Sprintf("%s split", s), a.unit(), marginAxis("mean ", n, a))
		checkpointAxis(p, a, a.epochs)
		var x, df, rf []float64
		for _, b := range brackets(a) {
			if b.Split == s && b.Norm == n {
				x, df, rf = append(x, float64(b.Epoch)), append(df, float64(b.MeanDeepFool)), append(rf, float64(b.MeanRefined))
			}
		}
		tdf := series{x: x, y: df, color: vermillion, shape: draw.TriangleGlyph{}, dashes: []vg.Length{vg.Points(5), vg.Points(3)}, points: a.separate}.add(p)
		trf := series{x: x, y: rf, color: blue, shape: draw.CircleGlyph{}, points: a.separate}.add(p)
		p.Y.Min = 0
		row = append(row, p)
		if legend == nil {
			legend = []legendItem{{"DeepFool (upper bound)", tdf}, {"refined by FMN (tighter upper bound)", trf}}
		}
	}
	f := &figure{
		title:  fmt.Sprintf("%s: the bracket of the %s margins per %s (%s)", a.Label, normName(n), a.unit(), dataName(a)),
		legend: legend,
		panels: [][]*plot.Plot{row},
		w:      10 * vg.Inch, h: 4.2 * vg.Inch,
	}
	caption := fmt.Sprintf("Audit %s on %s, %s. Mean %s margin per %s of the images that have both margins: DeepFool's and the one FMN refined from it (%d steps), whose adversarial point a forward run confirmed. Both are upper bounds of the distance to the decision boundary; the refined one is at most DeepFool's on every image. Left out and counted: %s.",
		a.Label, dataName(a), splitsText(a, a.splits), normName(n), a.unit(), a.settings.RefineParams.Steps, bracketCounts(a, n))
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
		if hi <= 0 {
			hi = 1
		}
		eps := make([]float64, curvePoints)
		for j := range eps {
			eps[j] = hi * float64(j) / float64(curvePoints-1)
		}
		upper := robustCurve(c.deepFool, c.dfFailed, eps)
		lower := robustCurve(c.refined, c.censored, eps)
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
		p.Add(&plotter.Line{XYs: du, LineStyle: dfStyle}, &plotter.Line{XYs: dl, LineStyle: rfStyle})
		p.X.Min, p.X.Max = 0, hi
		p.Y.Min, p.Y.Max = 0, 1
		panels[len(panels)-1] = append(panels[len(panels)-1], p)
		counts = append(counts, fmt.Sprintf("%s: %d of %d images DeepFool failed on, %d censored", a.at(e), c.dfFailed, c.images, c.censored))
	}
	legend := []legendItem{
		{"DeepFool", []plot.Thumbnailer{&plotter.Line{LineStyle: dfStyle}}},
		{"refined by FMN", []plot.Thumbnailer{&plotter.Line{LineStyle: rfStyle}}},
		{"band: where the empirical R(ε) lies", []plot.Thumbnailer{swatch{fill}}},
	}
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
	caption := fmt.Sprintf("Audit %s on %s, %s, %s. R(ε), the fraction of the images whose %s margin exceeds ε, from DeepFool's margins (dashed) and from those FMN refined (%d steps, solid); both are upper bounds of each image's distance to the boundary, so the true R(ε) lies at or below the refined curve, and the band between the two curves is what the refinement removed. Correctly classified and misclassified images count alike. An image DeepFool failed on counts above every ε in DeepFool's curve; a censored image (no attack flipped it within the input range, up to the largest perturbation the range allows) counts above every ε in the refined curve. %s.",
		a.Label, dataName(a), splitsText(a, []auditor.Split{s}), a.listed(epochs), normName(n), a.settings.RefineParams.Steps, strings.Join(counts, "; "))
	return f, Figure{Kind: FigBand, Caption: caption, Audit: a.Label, Split: s, Norm: n}
}

// bracketTable lays out the brackets.
func bracketTable(o *Observations) []pageTable {
	if len(o.Brackets) == 0 {
		return nil
	}
	t := pageTable{Title: "The bracket: mean DeepFool and refined margins of the images with both, per epoch or model",
		Header: []string{"audit", "epoch or model", "split", "norm", "images", "DeepFool failed", "censored", "paired", "mean DeepFool", "mean refined", "refined / DeepFool"}}
	for _, b := range o.Brackets {
		t.Rows = append(t.Rows, []string{b.Audit, o.point(b.Audit, b.Epoch), string(b.Split), normName(b.Norm), fmt.Sprint(b.Images),
			fmt.Sprint(b.DeepFoolFailures), fmt.Sprint(b.Censored), fmt.Sprint(b.Paired), fmtV(b.MeanDeepFool), fmtV(b.MeanRefined), fmtR(b.Ratio)})
	}
	return []pageTable{t}
}
