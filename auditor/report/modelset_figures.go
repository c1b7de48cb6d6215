package report

import (
	"fmt"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/internal/english"
)

// The figures of a model set, one model per audit.
const (
	FigModels       = "models"       // mean margin ± SE per model, one panel per split
	FigDistribution = "distribution" // the models' margin histograms overlaid
	FigRobustness   = "robustness"   // R(ε): the fraction of images with a margin above ε, per model
)

// curvePoints is the number of radii at which R(ε) is drawn.
const curvePoints = 201

// namedFigure is a figure with its file name.
type namedFigure struct {
	Figure
	fig  *figure
	name string
}

// modelSetFigures draws the models side by side: per norm their mean
// margins, per split and norm their margin distributions and R(ε) curves.
func modelSetFigures(audits []*audit, opts *Options) []namedFigure {
	var out []namedFigure
	splits := present(audits, []auditor.Split{auditor.Train, auditor.Test}, (*audit).hasSplit)
	norms := present(audits, []auditor.Norm{auditor.L2, auditor.LInf}, (*audit).hasNorm)
	for _, n := range norms {
		f, fig := modelsFigure(audits, splits, n, opts)
		out = append(out, namedFigure{fig, f, "models-" + string(n)})
	}
	for _, s := range splits {
		for _, n := range norms {
			f, fig := distributionFigure(audits, s, n, opts)
			out = append(out, namedFigure{fig, f, fmt.Sprintf("distribution-%s-%s", s, n)})
			f, fig = robustnessFigure(audits, s, n, opts)
			out = append(out, namedFigure{fig, f, fmt.Sprintf("robustness-%s-%s", s, n)})
		}
	}
	return out
}

// present returns the values of all, in order, that some audit has.
func present[T any](audits []*audit, all []T, has func(*audit, T) bool) []T {
	var out []T
	for _, v := range all {
		if slices.ContainsFunc(audits, func(a *audit) bool { return has(a, v) }) {
			out = append(out, v)
		}
	}
	return out
}

// modelCell returns the margins of the one model of a on a split and norm,
// and its failed attacks; nil when not audited.
func modelCell(a *audit, s auditor.Split, n auditor.Norm) *cell {
	return a.cells[cellKey{a.epochs[0], s, n}]
}

// setText names the models with their data and images, for captions.
func setText(audits []*audit, s auditor.Split, n auditor.Norm) string {
	var parts []string
	for _, a := range audits {
		c := modelCell(a, s, n)
		if c == nil {
			parts = append(parts, fmt.Sprintf("%s (not audited)", a.Label))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s (%s, %s, %s)", a.Label, a.names[a.epochs[0]], english.Plural(len(c.correct)+len(c.incorrect), "margin"), english.Plural(c.failures, "failed attack")))
	}
	return strings.Join(parts, "; ")
}

// modelsFigure: mean margin ± SE of each model, one panel per split.
func modelsFigure(audits []*audit, splits []auditor.Split, n auditor.Norm, opts *Options) (*figure, Figure) {
	ticks := make([]plot.Tick, len(audits))
	for i, a := range audits {
		ticks[i] = plot.Tick{Value: float64(i), Label: a.Label}
	}
	var row []*plot.Plot
	var legend []legendItem
	for _, s := range splits {
		p := newPanel(fmt.Sprintf("%s split", s), "model", marginAxis("mean ", n, audits[0]))
		p.X.Min, p.X.Max = -0.5, float64(len(audits))-0.5
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
		p.Y.Min = 0
		for i, a := range audits {
			g := a.group(a.epochs[0], s, n, auditor.All)
			if g == nil {
				continue
			}
			thumbs := series{x: []float64{float64(i)}, y: []float64{float64(g.Margin.Mean)}, se: []float64{float64(g.Margin.SE)},
				color: auditColors[i%len(auditColors)], shape: auditShapes[i%len(auditShapes)], points: true}.add(p)
			if len(row) == 0 {
				legend = append(legend, legendItem{a.Label, thumbs})
			}
		}
		row = append(row, p)
	}
	f := &figure{
		title:  fmt.Sprintf("mean %s margin per model (%s)", normName(n), dataName(audits[0])),
		legend: legend,
		panels: [][]*plot.Plot{row},
		w:      10 * vg.Inch, h: 4.2 * vg.Inch,
	}
	var parts []string
	for _, s := range splits {
		parts = append(parts, fmt.Sprintf("%s split: %s", s, setText(audits, s, n)))
	}
	caption := fmt.Sprintf("Mean %s margin of the images attacked successfully, ± one standard error, of each model: %s. Margins: %s; attacks that failed after all restarts have no margin and are left out.",
		normName(n), strings.Join(parts, ". "), attackSettings(audits[0], n, opts))
	return f, Figure{Kind: FigModels, Caption: caption, Norm: n}
}

// distributionFigure: the models' margin histograms overlaid on common
// bins, each normalised to unit area.
func distributionFigure(audits []*audit, s auditor.Split, n auditor.Norm, opts *Options) (*figure, Figure) {
	var pooled []float64
	for _, a := range audits {
		if c := modelCell(a, s, n); c != nil {
			pooled = append(append(pooled, c.correct...), c.incorrect...)
		}
	}
	hi, cut := histRange(pooled)
	bins := histBins(len(pooled) / max(1, len(audits)))
	p := newPanel(fmt.Sprintf("%s split", s), marginAxis("", n, audits[0]), "density (1 / margin unit)")
	var legend []legendItem
	for i, a := range audits {
		c := modelCell(a, s, n)
		if c == nil || len(c.correct)+len(c.incorrect) == 0 {
			continue
		}
		// A step outline per model: boxes of several models would hide
		// each other.
		w := hi / float64(bins)
		steps := plotter.XYs{{X: 0, Y: 0}}
		for j, d := range densities(append(slices.Clone(c.correct), c.incorrect...), hi, bins) {
			steps = append(steps, plotter.XY{X: float64(j) * w, Y: d}, plotter.XY{X: float64(j+1) * w, Y: d})
		}
		steps = append(steps, plotter.XY{X: hi, Y: 0})
		line := &plotter.Line{XYs: steps, LineStyle: modelLine(i)}
		p.Add(line)
		legend = append(legend, legendItem{a.Label, []plot.Thumbnailer{line}})
	}
	p.X.Min, p.X.Max = 0, hi
	p.Y.Min = 0
	f := &figure{
		title:  fmt.Sprintf("%s margins of the %s images per model (%s)", normName(n), s, dataName(audits[0])),
		legend: legend,
		panels: [][]*plot.Plot{{p}},
		w:      10 * vg.Inch, h: 4.2 * vg.Inch,
	}
	caption := fmt.Sprintf("Histograms of the %s margins of the %s images, correctly classified and misclassified together (a misclassified image's margin is its distance to the boundary of its predicted class), one step outline per model on common bins, each normalised to unit area: %s.",
		normName(n), s, setText(audits, s, n))
	if cut > 0 {
		caption += fmt.Sprintf(" The largest margins lie beyond 1.25 times the 99.5th percentile, so the axis ends at that percentile (%s); the %d margins beyond it count in the densities but are not drawn.", fmtG(hi), cut)
	}
	caption += " Margins: " + attackSettings(audits[0], n, opts) + "; attacks that failed after all restarts have no margin and are left out."
	return f, Figure{Kind: FigDistribution, Caption: caption, Split: s, Norm: n}
}

// robustnessFigure: R(ε), the fraction of images whose margin exceeds ε,
// per model.
func robustnessFigure(audits []*audit, s auditor.Split, n auditor.Norm, opts *Options) (*figure, Figure) {
	hi := 0.0
	for _, a := range audits {
		if c := modelCell(a, s, n); c != nil {
			for _, m := range append(slices.Clone(c.correct), c.incorrect...) {
				hi = max(hi, m)
			}
		}
	}
	hi, eps := epsGrid(hi)
	p := newPanel(fmt.Sprintf("%s split", s), "ε, "+marginAxis("", n, audits[0]), "fraction of images with margin > ε")
	var legend []legendItem
	for i, a := range audits {
		c := modelCell(a, s, n)
		if c == nil {
			continue
		}
		r := robustCurve(append(slices.Clone(c.correct), c.incorrect...), c.failures, eps)
		xy := make(plotter.XYs, len(eps))
		for j := range eps {
			xy[j] = plotter.XY{X: eps[j], Y: r[j]}
		}
		line := &plotter.Line{XYs: xy, LineStyle: modelLine(i)}
		p.Add(line)
		legend = append(legend, legendItem{a.Label, []plot.Thumbnailer{line}})
	}
	p.X.Min, p.X.Max = 0, hi
	p.Y.Min, p.Y.Max = 0, 1
	f := &figure{
		title:  fmt.Sprintf("fraction of the %s images whose %s margin exceeds ε, per model (%s)", s, normName(n), dataName(audits[0])),
		legend: legend,
		panels: [][]*plot.Plot{{p}},
		w:      10 * vg.Inch, h: 4.2 * vg.Inch,
	}
	caption := fmt.Sprintf("R(ε), the fraction of the %s images whose %s margin exceeds ε, as ε grows, for each model: %s. Correctly classified and misclassified images count alike, each with its margin. An image whose attack failed after all restarts has no margin: DeepFool found no perturbation, so its margin exceeds every ε drawn, and it counts as above every ε. Margins: %s.",
		s, normName(n), setText(audits, s, n), attackSettings(audits[0], n, opts))
	return f, Figure{Kind: FigRobustness, Caption: caption, Split: s, Norm: n}
}

// modelDashes tell the models' lines apart where colours fail.
var modelDashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)}, {vg.Points(8), vg.Points(2), vg.Points(2), vg.Points(2)}}

// modelLine is the line of the i-th model.
func modelLine(i int) draw.LineStyle {
	return draw.LineStyle{Color: auditColors[i%len(auditColors)], Width: vg.Points(1.5), Dashes: modelDashes[i%len(modelDashes)]}
}
