package report

import (
	"context"
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/internal/english"
)

// drawFigures draws every figure of the report into outDir/figures, in the
// order the page shows them: margins per epoch, audits compared, correct vs
// incorrect per epoch, histograms, transitions, calibration (from
// obs.Calibration), galleries (whose images it adds to obs.Gallery).
func drawFigures(ctx context.Context, audits []*audit, obs *Observations, outDir string, opts *Options) ([]Figure, []string, error) {
	var figs []Figure
	var notes []string
	emit := func(fig Figure, f *figure, name string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		base := filepath.Join(outDir, FiguresDir, name)
		if err := f.save(base); err != nil {
			return err
		}
		fig.PNG = FiguresDir + "/" + name + ".png"
		fig.SVG = FiguresDir + "/" + name + ".svg"
		fig.Title = f.title
		figs = append(figs, fig)
		return nil
	}
	if len(audits) > 0 && audits[0].member {
		for _, f := range modelSetFigures(audits, opts) {
			if err := emit(f.Figure, f.fig, f.name); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, a := range audits {
		if a.member {
			continue // one model: its mean margin is in the models figure
		}
		for _, n := range a.norms {
			f, fig := marginFigure(a, n, opts)
			if err := emit(fig, f, fmt.Sprintf("margin-%s-%s", a.slug, n)); err != nil {
				return nil, nil, err
			}
		}
	}
	if len(audits) > 1 {
		for _, n := range []auditor.Norm{auditor.L2, auditor.LInf} {
			// Separate models have no epochs to line up with others'.
			var with []*audit
			for _, a := range audits {
				if a.hasNorm(n) && !a.separate {
					with = append(with, a)
				}
			}
			if len(with) < 2 {
				continue
			}
			f, fig := compareFigure(with, n, opts)
			if err := emit(fig, f, fmt.Sprintf("compare-%s", n)); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, a := range audits {
		if a.member {
			continue // one model: the histograms below show its groups
		}
		for _, n := range a.norms {
			f, fig := groupsFigure(a, n, opts)
			if err := emit(fig, f, fmt.Sprintf("groups-%s-%s", a.slug, n)); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, a := range audits {
		want := opts.Epochs
		if a.member {
			want = nil // its one model
		}
		epochs, n := histEpochs(a, want)
		notes = append(notes, n...)
		if len(epochs) == 0 {
			continue
		}
		for _, s := range a.splits {
			for _, n := range a.norms {
				f, fig := histogramFigure(a, s, n, epochs, opts)
				if err := emit(fig, f, fmt.Sprintf("hist-%s-%s-%s", a.slug, s, n)); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	for _, a := range audits {
		if a.member || a.bracket == nil {
			continue
		}
		for _, n := range a.norms {
			f, fig := bracketFigure(a, n)
			if err := emit(fig, f, fmt.Sprintf("bracket-%s-%s", a.slug, n)); err != nil {
				return nil, nil, err
			}
		}
		epochs, _ := histEpochs(a, opts.Epochs)
		if len(epochs) == 0 {
			continue
		}
		for _, s := range a.splits {
			for _, n := range a.norms {
				f, fig := bandFigure(a, s, n, epochs)
				if err := emit(fig, f, fmt.Sprintf("band-%s-%s-%s", a.slug, s, n)); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	for _, a := range audits {
		if a.member {
			continue
		}
		if a.separate {
			notes = append(notes, fmt.Sprintf("audit %s compares separate models, not epochs of a training run: no transitions between epochs, no comparison with other audits per epoch", a.Label))
			continue
		}
		for _, s := range a.splits {
			f, fig, err := sankeyFigure(a, s)
			if err != nil {
				return nil, nil, figErr(fmt.Sprintf("sankey-%s-%s", a.slug, s), err)
			}
			if f == nil {
				notes = append(notes, fmt.Sprintf("audit %s, %s split: fewer than two epochs, no transitions to draw", a.Label, s))
				continue
			}
			if err := emit(fig, f, fmt.Sprintf("sankey-%s-%s", a.slug, s)); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, a := range audits {
		if a.conf == nil {
			continue
		}
		epochs, _ := histEpochs(a, opts.Epochs)
		fs, infos, names := calibrationFigures(a, obs.Calibration, epochs)
		for i := range fs {
			if err := emit(infos[i], fs[i], names[i]); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, a := range audits {
		epochs, _ := histEpochs(a, opts.Epochs)
		cells, n, err := gallery(a, epochs, opts.DataDir)
		if err != nil {
			return nil, nil, err
		}
		notes = append(notes, n...)
		for _, s := range a.splits {
			for _, nm := range a.norms {
				f, fig, shown := galleryFigure(a, s, nm, epochs, cells, opts)
				if f == nil {
					continue
				}
				if err := emit(fig, f, fmt.Sprintf("gallery-%s-%s-%s", a.slug, s, nm)); err != nil {
					return nil, nil, err
				}
				obs.Gallery = append(obs.Gallery, shown...)
			}
		}
	}
	return figs, notes, nil
}

// normName is the printed name of a norm.
func normName(n auditor.Norm) string {
	switch n {
	case auditor.L2:
		return "L2"
	case auditor.LInf:
		return "L∞"
	}
	return string(n)
}

// marginAxis is the axis label of margins, with their unit: the pixel
// range when one applies to every checkpoint of a.
func marginAxis(prefix string, n auditor.Norm, a *audit) string {
	unit := "pixel space"
	if r, ok := a.pixelRange(); ok {
		unit = fmt.Sprintf("pixel space, range [%s, %s]", fmtG(r[0]), fmtG(r[1]))
	}
	return fmt.Sprintf("%s%s margin (%s)", prefix, normName(n), unit)
}

func fmtG(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func splitsText(a *audit, splits []auditor.Split) string {
	var parts []string
	for _, s := range splits {
		parts = append(parts, fmt.Sprintf("%s split (n = %d images)", s, a.images(s)))
	}
	return strings.Join(parts, " and ")
}

// attackSettings describes how the margins were measured.
func attackSettings(a *audit, n auditor.Norm, opts *Options) string {
	s := a.settings
	cand := "all classes as candidates"
	if s.Candidates > 0 {
		cand = fmt.Sprintf("the top %d classes as candidates", s.Candidates)
	}
	margin := "DeepFool margins (upper bounds of the distance to the decision boundary)"
	switch {
	case opts.Refined && s.RefineParams.Steps > 0:
		margin = fmt.Sprintf("DeepFool margins refined by FMN (%d steps from DeepFool's point, or from a PGD search where DeepFool failed; upper bounds of the distance to the decision boundary that a forward run confirmed)", s.RefineParams.Steps)
	case opts.Refined:
		margin = "DeepFool margins refined by bisection to the boundary crossing"
	}
	return fmt.Sprintf("%s, %s norm; DeepFool with overshoot %s, at most %d iterations, %s, up to %d noisy restarts",
		margin, normName(n), fmtG(s.Overshoot), s.MaxIter, cand, s.Retries)
}

// attackText is attackSettings with the number of images without a
// margin and how the statistics treat them: attacks that failed after all
// restarts, or with refined margins the censored images.
func attackText(a *audit, n auditor.Norm, opts *Options) string {
	return attackSettings(a, n, opts) + "; " + failuresText(a.failures(n), opts)
}

// failuresText counts the images without a margin and says that they are
// left out of the means.
func failuresText(f int, opts *Options) string {
	if opts.Refined {
		return fmt.Sprintf("%s (no attack flipped them within the input range) left out of the means", english.Plural(f, "censored image"))
	}
	return fmt.Sprintf("%s after all restarts, left out of the means", english.Plural(f, "failed attack"))
}

func dataName(a *audit) string {
	if a.settings.Data == "" {
		return "unnamed data"
	}
	return a.settings.Data
}

// values extracts per-epoch statistics of one group.
func groupSeries(a *audit, s auditor.Split, n auditor.Norm, kind auditor.GroupKind) (x, mean, se []float64) {
	for _, e := range a.epochs {
		g := a.group(e, s, n, kind)
		if g == nil {
			continue
		}
		x = append(x, float64(e))
		mean = append(mean, float64(g.Margin.Mean))
		se = append(se, float64(g.Margin.SE))
	}
	return
}

func splitColor(s auditor.Split) (color.Color, draw.GlyphDrawer) {
	if s == auditor.Train {
		return blue, draw.CircleGlyph{}
	}
	return orange, draw.TriangleGlyph{}
}

// marginFigure: mean margin ± SE per epoch, train and test, with the clean
// (and PGD robust) accuracy in a companion panel.
func marginFigure(a *audit, n auditor.Norm, opts *Options) (*figure, Figure) {
	left := newPanel("mean margin ± standard error", a.unit(), marginAxis("mean ", n, a))
	right := newPanel("accuracy ± standard error", a.unit(), "accuracy (% of audited images)")
	checkpointAxis(left, a, a.epochs)
	checkpointAxis(right, a, a.epochs)
	var legend []legendItem
	for i, s := range a.splits {
		c, shape := splitColor(s)
		x, mean, se := groupSeries(a, s, n, auditor.All)
		thumbs := series{x: x, y: mean, se: se, color: c, shape: shape, dx: dodge(i, len(a.splits)), points: a.separate}.add(left)
		var ax, acc, accSE []float64
		for _, e := range a.epochs {
			if v, ok := a.accuracy(e, s); ok && v.Images > 0 {
				p := float64(v.Accuracy)
				ax = append(ax, float64(e))
				acc = append(acc, 100*p)
				accSE = append(accSE, 100*math.Sqrt(p*(1-p)/float64(v.Images)))
			}
		}
		series{x: ax, y: acc, se: accSE, color: c, shape: shape, dx: dodge(i, len(a.splits)), points: a.separate}.add(right)
		legend = append(legend, legendItem{fmt.Sprintf("%s (n = %d)", s, a.images(s)), thumbs})
	}
	// PGD robust accuracy in the same norm.
	type pk struct {
		split auditor.Split
		eps   float64
	}
	pgd := map[pk][]auditor.PGDAccuracy{}
	var keys []pk
	for _, r := range a.summary.PGD {
		if r.Norm != n {
			continue
		}
		k := pk{r.Split, r.Eps}
		if _, ok := pgd[k]; !ok {
			keys = append(keys, k)
		}
		pgd[k] = append(pgd[k], r)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].split != keys[j].split {
			return keys[i].split == auditor.Train
		}
		return keys[i].eps < keys[j].eps
	})
	dashes := [][]vg.Length{{vg.Points(5), vg.Points(3)}, {vg.Points(2), vg.Points(2)}, {vg.Points(8), vg.Points(3), vg.Points(2), vg.Points(3)}}
	for i, k := range keys {
		c, _ := splitColor(k.split)
		var x, y []float64
		for _, r := range pgd[k] {
			x = append(x, float64(r.Epoch))
			y = append(y, 100*float64(r.RobustAccuracy))
		}
		thumbs := series{x: x, y: y, color: c, shape: draw.CrossGlyph{}, dashes: dashes[i%len(dashes)], points: a.separate}.add(right)
		legend = append(legend, legendItem{fmt.Sprintf("%s, PGD %s ε = %s (robust)", k.split, normName(n), fmtG(k.eps)), thumbs})
	}
	left.Y.Min = 0
	f := &figure{
		title:  fmt.Sprintf("%s: mean %s margin and accuracy per %s (%s)", a.Label, normName(n), a.unit(), dataName(a)),
		legend: legend,
		panels: [][]*plot.Plot{{left, right}},
		w:      10 * vg.Inch, h: 4.2 * vg.Inch,
	}
	per := "per epoch (epoch 0 is the initialisation)"
	if a.separate {
		per = "of each model"
	}
	caption := fmt.Sprintf("Audit %s on %s, %s. Left: mean %s margin of all audited images %s, bars ± one standard error of the mean. Right: clean accuracy on the same images, bars ± one binomial standard error",
		a.Label, dataName(a), splitsText(a, a.splits), normName(n), per)
	if len(keys) > 0 {
		mark := "dashed"
		if a.separate {
			mark = "crosses"
		}
		caption += fmt.Sprintf(", and accuracy under PGD %s attacks (%s)", normName(n), mark)
	}
	caption += ". Margins: " + attackText(a, n, opts) + "."
	return f, Figure{Kind: FigMargin, Caption: caption, Audit: a.Label, Norm: n}
}

// compareFigure: the audits' mean margins overlaid, one panel per split.
func compareFigure(audits []*audit, n auditor.Norm, opts *Options) (*figure, Figure) {
	var splits []auditor.Split
	var epochs []int
	var labels []string
	for _, a := range audits {
		labels = append(labels, a.Label)
		for _, s := range a.splits {
			if !slices.Contains(splits, s) {
				splits = append(splits, s)
			}
		}
		for _, e := range a.epochs {
			if !slices.Contains(epochs, e) {
				epochs = append(epochs, e)
			}
		}
	}
	slices.SortFunc(splits, func(x, y auditor.Split) int { return splitOrder(x) - splitOrder(y) })
	slices.Sort(epochs)
	var row []*plot.Plot
	var legend []legendItem
	for _, s := range splits {
		p := newPanel(fmt.Sprintf("%s split", s), "epoch", marginAxis("mean ", n, audits[0]))
		epochAxis(p, epochs)
		p.Y.Min = 0
		for i, a := range audits {
			if !a.hasSplit(s) {
				continue
			}
			x, mean, se := groupSeries(a, s, n, auditor.All)
			thumbs := series{x: x, y: mean, se: se, color: auditColors[i%len(auditColors)], shape: auditShapes[i%len(auditShapes)], dx: dodge(i, len(audits))}.add(p)
			if len(row) == 0 {
				legend = append(legend, legendItem{a.Label, thumbs})
			}
		}
		row = append(row, p)
	}
	f := &figure{
		title:  fmt.Sprintf("mean %s margin per epoch: %s", normName(n), strings.Join(labels, " vs ")),
		legend: legend,
		panels: [][]*plot.Plot{row},
		w:      10 * vg.Inch, h: 4.2 * vg.Inch,
	}
	var parts, failed []string
	for _, a := range audits {
		var sp []string
		for _, s := range a.splits {
			sp = append(sp, fmt.Sprintf("%s n = %d", s, a.images(s)))
		}
		parts = append(parts, fmt.Sprintf("%s on %s (%s)", a.Label, dataName(a), strings.Join(sp, ", ")))
		failed = append(failed, fmt.Sprintf("%s: %s", a.Label, failuresText(a.failures(n), opts)))
	}
	caption := fmt.Sprintf("Mean %s margin of all audited images per epoch, ± one standard error, of the audits %s. Margins: %s; %s.",
		normName(n), strings.Join(parts, "; "), attackSettings(audits[0], n, opts), strings.Join(failed, ", "))
	return f, Figure{Kind: FigCompare, Caption: caption, Norm: n}
}

func splitOrder(s auditor.Split) int {
	if s == auditor.Train {
		return 0
	}
	return 1
}

// groupsFigure: mean margin of correct vs incorrect images per epoch.
func groupsFigure(a *audit, n auditor.Norm, opts *Options) (*figure, Figure) {
	var row []*plot.Plot
	var legend []legendItem
	kinds := []struct {
		kind  auditor.GroupKind
		name  string
		color color.Color
		shape draw.GlyphDrawer
	}{
		{auditor.Correct, "correctly classified", bluishGreen, draw.CircleGlyph{}},
		{auditor.Incorrect, "misclassified", vermillion, draw.TriangleGlyph{}},
	}
	for _, s := range a.splits {
		p := newPanel(fmt.Sprintf("%s split", s), a.unit(), marginAxis("mean ", n, a))
		checkpointAxis(p, a, a.epochs)
		p.Y.Min = 0
		for i, k := range kinds {
			x, mean, se := groupSeries(a, s, n, k.kind)
			thumbs := series{x: x, y: mean, se: se, color: k.color, shape: k.shape, dx: dodge(i, len(kinds)), points: a.separate}.add(p)
			if len(row) == 0 {
				legend = append(legend, legendItem{k.name, thumbs})
			}
		}
		row = append(row, p)
	}
	f := &figure{
		title:  fmt.Sprintf("%s: mean %s margin of correctly classified vs misclassified images (%s)", a.Label, normName(n), dataName(a)),
		legend: legend,
		panels: [][]*plot.Plot{row},
		w:      10 * vg.Inch, h: 4.2 * vg.Inch,
	}
	caption := fmt.Sprintf("Audit %s on %s, %s. Mean %s margin per %s of the images the checkpoint classifies correctly and of those it misclassifies (measured to the boundary of the predicted class), ± one standard error; a point is missing where a group is empty, a bar where it has one image. Margins: %s.",
		a.Label, dataName(a), splitsText(a, a.splits), normName(n), a.unit(), attackText(a, n, opts))
	return f, Figure{Kind: FigGroups, Caption: caption, Audit: a.Label, Norm: n}
}

// histEpochs returns the epochs of the histograms of a: the wanted ones
// that were audited, or by default the first, second, middle and last.
func histEpochs(a *audit, want []int) ([]int, []string) {
	var notes []string
	var out []int
	if len(want) == 0 {
		e := a.epochs
		for _, i := range []int{0, 1, len(e) / 2, len(e) - 1} {
			if i < len(e) && !slices.Contains(out, e[i]) {
				out = append(out, e[i])
			}
		}
		slices.Sort(out)
		return out, nil
	}
	var missing []string
	for _, e := range want {
		switch {
		case slices.Contains(out, e):
		case slices.Contains(a.epochs, e):
			out = append(out, e)
		default:
			missing = append(missing, strconv.Itoa(e))
		}
	}
	if len(missing) > 0 {
		notes = append(notes, fmt.Sprintf("audit %s has no %s %s: no histogram of it", a.Label, a.unit(), strings.Join(missing, ", ")))
	}
	slices.Sort(out)
	return out, notes
}

// histogramFigure: density histograms of the margins of correct and
// incorrect images, one panel per epoch, on common bins.
func histogramFigure(a *audit, s auditor.Split, n auditor.Norm, epochs []int, opts *Options) (*figure, Figure) {
	cols := len(epochs)
	if cols == 4 {
		cols = 2
	}
	var panels [][]*plot.Plot
	fillC, fillI := withAlpha(bluishGreen, 120), withAlpha(vermillion, 120)
	lineC := draw.LineStyle{Color: bluishGreen, Width: vg.Points(1)}
	lineI := draw.LineStyle{Color: vermillion, Width: vg.Points(1)}
	var cuts []string
	for i, e := range epochs {
		if i%cols == 0 {
			panels = append(panels, nil)
		}
		c := a.cells[cellKey{e, s, n}]
		if c == nil {
			c = new(cell)
		}
		// Each panel has its own scale: margins at initialisation are
		// orders of magnitude smaller than after training.
		pooled := append(slices.Clone(c.correct), c.incorrect...)
		hi, cut := histRange(pooled)
		if cut > 0 {
			cuts = append(cuts, fmt.Sprintf("%d at %s (axis ends at %s)", cut, a.at(e), fmtG(hi)))
		}
		bins := histBins(len(pooled))
		title := fmt.Sprintf("%s: %d correct, %d misclassified", a.at(e), len(c.correct), len(c.incorrect))
		p := newPanel(title, marginAxis("", n, a), "density (1 / margin unit)")
		for _, g := range []struct {
			x    []float64
			fill color.Color
			line draw.LineStyle
		}{{c.correct, fillC, lineC}, {c.incorrect, fillI, lineI}} {
			if len(g.x) == 0 {
				continue
			}
			p.Add(&plotter.Histogram{Bins: densityBins(g.x, hi, bins), Width: hi / float64(bins), FillColor: g.fill, LineStyle: g.line})
		}
		p.X.Min, p.X.Max = 0, hi
		p.Y.Min = 0
		panels[len(panels)-1] = append(panels[len(panels)-1], p)
	}
	legend := []legendItem{
		{"correctly classified", []plot.Thumbnailer{swatch{fillC}}},
		{"misclassified", []plot.Thumbnailer{swatch{fillI}}},
	}
	h := 4.2 * vg.Inch
	if len(panels) > 1 {
		h = 7.4 * vg.Inch
	}
	f := &figure{
		title:  fmt.Sprintf("%s: %s margins of correctly classified vs misclassified %s images (%s)", a.Label, normName(n), s, dataName(a)),
		legend: legend,
		panels: panels,
		w:      10 * vg.Inch, h: h,
	}
	caption := fmt.Sprintf("Audit %s on %s, %s, %s. Histograms of the %s margins of the correctly classified and of the misclassified images, overlaid on common bins within each panel and each normalised to unit area (density), so that groups of different sizes compare; each panel has its own scale.",
		a.Label, dataName(a), splitsText(a, []auditor.Split{s}), a.listed(epochs), normName(n))
	if len(cuts) > 0 {
		caption += " Where the largest margin lies beyond 1.25 times the 99.5th percentile, the axis ends at that percentile; the margins beyond it count in the densities but are not drawn: " + strings.Join(cuts, ", ") + "."
	}
	caption += " Margins: " + attackText(a, n, opts) + "."
	return f, Figure{Kind: FigHistogram, Caption: caption, Audit: a.Label, Split: s, Norm: n}
}

// histBins returns the number of bins for n values: √n between 8 and 30.
func histBins(n int) int {
	return min(30, max(8, int(math.Sqrt(float64(n)))))
}

// histRange returns the upper end of the histograms' axis: the largest
// margin, or the 99.5th percentile when the largest is far beyond it (more
// than 1.25 times), with the number of margins beyond the end.
func histRange(x []float64) (hi float64, cut int) {
	if len(x) == 0 {
		return 1, 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	hi = s[len(s)-1]
	q := s[int(math.Ceil(0.995*float64(len(s))))-1]
	if hi > 1.25*q && q > 0 {
		hi = q
		for _, v := range s {
			if v > hi {
				cut++
			}
		}
	}
	if hi <= 0 {
		hi = 1
	}
	return hi, cut
}

// densityBins bins x on [0, hi] into n bins whose weights are densities:
// count/(len(x)·width), so that the histogram has unit area, and returns
// the non-empty ones. Values beyond hi count in the densities but are not
// drawn.
func densityBins(x []float64, hi float64, n int) []plotter.HistogramBin {
	w := hi / float64(n)
	var out []plotter.HistogramBin
	for i, d := range densities(x, hi, n) {
		// Empty bins are left out, so that no outline runs along the
		// axis where a group has no margins.
		if d > 0 {
			out = append(out, plotter.HistogramBin{Min: float64(i) * w, Max: float64(i+1) * w, Weight: d})
		}
	}
	return out
}

// densities bins x on [0, hi] into n bins and returns each bin's density,
// count/(len(x)·width). Values beyond hi count in the densities but fall
// in no bin.
func densities(x []float64, hi float64, n int) []float64 {
	w := hi / float64(n)
	d := make([]float64, n)
	for _, v := range x {
		i := int(v / w)
		if i >= n {
			if v > hi {
				continue
			}
			i = n - 1
		}
		d[i]++
	}
	for i := range d {
		d[i] /= float64(len(x)) * w
	}
	return d
}

// The flows of the transitions diagram.
const (
	stayCorrect       = "stays correct"
	becomesIncorrect  = "becomes misclassified"
	becomesCorrect    = "becomes correct"
	stayIncorrect     = "stays misclassified"
	stockCorrect      = "correct"
	stockIncorrect    = "misclassified"
	sankeyFlowOpacity = 150
)

// onTop marks the group of the flow a Sankey figure draws over the others.
const onTop = "\x00top"

// smallerCrossing returns the group of the smaller of t's two crossing
// flows (the one drawn on top), or "" when neither is smaller.
func smallerCrossing(t auditor.Transition) string {
	switch {
	case t.CorrectIncorrect < t.IncorrectCorrect:
		return becomesIncorrect
	case t.IncorrectCorrect < t.CorrectIncorrect:
		return becomesCorrect
	}
	return ""
}

// sankeyFigure: correct/incorrect transitions between consecutive epochs;
// nil when the split has fewer than two epochs.
func sankeyFigure(a *audit, s auditor.Split) (*figure, Figure, error) {
	var ts []auditor.Transition
	for _, t := range a.summary.Transitions {
		if t.Split == s {
			ts = append(ts, t)
		}
	}
	if len(ts) == 0 {
		return nil, Figure{}, nil
	}
	epochs := []int{ts[0].FromEpoch}
	var flows []plotter.Flow
	for i, t := range ts {
		epochs = append(epochs, t.ToEpoch)
		for _, f := range []struct {
			from, to, group string
			v               int
		}{
			{stockCorrect, stockCorrect, stayCorrect, t.CorrectCorrect},
			{stockCorrect, stockIncorrect, becomesIncorrect, t.CorrectIncorrect},
			{stockIncorrect, stockCorrect, becomesCorrect, t.IncorrectCorrect},
			{stockIncorrect, stockIncorrect, stayIncorrect, t.IncorrectIncorrect},
		} {
			group := f.group
			if f.group == smallerCrossing(t) {
				group += onTop
			}
			flows = append(flows, plotter.Flow{
				SourceLabel: f.from, SourceCategory: i,
				ReceptorLabel: f.to, ReceptorCategory: i + 1,
				Value: float64(f.v), Group: group,
			})
		}
	}
	sk, err := plotter.NewSankey(flows...)
	if err != nil {
		return nil, Figure{}, err
	}
	flowColor := map[string]color.Color{
		stayCorrect:      withAlpha(bluishGreen, 70),
		stayIncorrect:    withAlpha(vermillion, 70),
		becomesCorrect:   withAlpha(blue, sankeyFlowOpacity+60),
		becomesIncorrect: withAlpha(reddishPurple, sankeyFlowOpacity+60),
	}
	noLine := draw.LineStyle{}
	// The two crossing flows of a transition overlap. The Sankey draws
	// flows in the order that also stacks them in the bars, so the smaller
	// crossing flow, which would disappear under the larger, is drawn by a
	// second Sankey with the same layout, on top of the first.
	sk.FlowStyle = func(group string) (color.Color, draw.LineStyle) {
		if strings.HasSuffix(group, onTop) {
			return color.Transparent, noLine
		}
		return flowColor[group], noLine
	}
	top, err := plotter.NewSankey(flows...)
	if err != nil {
		return nil, Figure{}, err
	}
	top.FlowStyle = func(group string) (color.Color, draw.LineStyle) {
		if g, ok := strings.CutSuffix(group, onTop); ok {
			return flowColor[g], noLine
		}
		return color.Transparent, noLine
	}
	sk.StockStyle = func(label string, _ int) (string, text.Style, vg.Length, vg.Length, color.Color, draw.LineStyle) {
		c := color.Color(bluishGreen)
		if label == stockIncorrect {
			c = vermillion
		}
		return "", sk.TextStyle, 0, 0, c, draw.LineStyle{Color: color.White, Width: vg.Points(0.5)}
	}
	sk.StockBarWidth = vg.Points(10)
	top.StockStyle, top.StockBarWidth = sk.StockStyle, sk.StockBarWidth

	p := newBarePanel("", "epoch", fmt.Sprintf("images of the %s split", s))
	p.Add(sk, top)
	names := make([]string, len(epochs))
	for i, e := range epochs {
		names[i] = strconv.Itoa(e)
	}
	p.NominalX(names...)
	p.X.Tick.Label.Font.Size = 10
	p.X.Label.TextStyle.Font.Size = 11
	// The flows that change groups are thin where accuracy is high: their
	// counts are written above each pair of epochs, in their colours.
	total := 0.0
	for _, t := range ts {
		total = math.Max(total, float64(t.CorrectCorrect+t.CorrectIncorrect+t.IncorrectCorrect+t.IncorrectIncorrect))
	}
	var xys plotter.XYs
	var strs []string
	var styles []text.Style
	for i, t := range ts {
		for j, v := range []struct {
			n int
			c color.Color
			s string
		}{{t.IncorrectCorrect, blue, "+"}, {t.CorrectIncorrect, darkPurple, "−"}} {
			xys = append(xys, plotter.XY{X: float64(i) + 0.5, Y: total * (1.035 + 0.065*float64(j))})
			strs = append(strs, fmt.Sprintf("%s%d", v.s, v.n))
			st := textStyle(10)
			st.Color, st.XAlign, st.YAlign = v.c, draw.XCenter, draw.YBottom
			styles = append(styles, st)
		}
	}
	if lbls, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: strs}); err == nil {
		lbls.TextStyle = styles
		p.Add(lbls)
	}
	p.Y.Min, p.Y.Max = 0, total*1.16
	legend := []legendItem{
		{"correct (bar)", []plot.Thumbnailer{swatch{bluishGreen}}},
		{"misclassified (bar)", []plot.Thumbnailer{swatch{vermillion}}},
		{stayCorrect, []plot.Thumbnailer{swatch{flowColor[stayCorrect]}}},
		{becomesCorrect + " (+n)", []plot.Thumbnailer{swatch{flowColor[becomesCorrect]}}},
		{becomesIncorrect + " (−n)", []plot.Thumbnailer{swatch{flowColor[becomesIncorrect]}}},
		{stayIncorrect, []plot.Thumbnailer{swatch{flowColor[stayIncorrect]}}},
	}
	f := &figure{
		title:  fmt.Sprintf("%s: correct/misclassified transitions between consecutive epochs, %s split (%s)", a.Label, s, dataName(a)),
		legend: legend,
		panels: [][]*plot.Plot{{p}},
		w:      10 * vg.Inch, h: 4.6 * vg.Inch,
	}
	only := 0
	for _, t := range ts {
		only += t.OnlyFrom + t.OnlyTo
	}
	caption := fmt.Sprintf("Audit %s on %s, %s. At each audited epoch the images are split into correctly classified (green bar) and misclassified (red-orange bar); the bands between consecutive epochs carry the images that stay or change, with widths proportional to their numbers. Above each pair of epochs, +n counts the images that become correct and −n those that become misclassified; the table below gives all counts.",
		a.Label, dataName(a), splitsText(a, []auditor.Split{s}))
	if only > 0 {
		caption += fmt.Sprintf(" %d image-epoch pairs audited at only one of two consecutive epochs are not drawn.", only)
	}
	return f, Figure{Kind: FigSankey, Caption: caption, Audit: a.Label, Split: s}, nil
}
