package report

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// The building blocks of the figures: a figure is a title, a legend row
// above the panels (so that no legend hides data), and a grid of aligned
// panels. PNGs are rendered at 96 dpi, so 1 pt of font is 1⅓ px on a screen
// at 1x: tick labels of 10 pt are 13 px high.

const figureDPI = 96

var sans = font.Font{Typeface: "Liberation", Variant: "Sans"}

// svgFontFamily names the fonts of SVG text: Liberation Sans and the fonts
// with its metrics.
const svgFontFamily = "font-family:'Liberation Sans',Arimo,Arial,Helvetica,sans-serif;"

// Colours of the Okabe–Ito palette, distinguishable with the common forms
// of colour blindness.
var (
	black         = color.RGBA{0x00, 0x00, 0x00, 0xff}
	orange        = color.RGBA{0xe6, 0x9f, 0x00, 0xff}
	skyBlue       = color.RGBA{0x56, 0xb4, 0xe9, 0xff}
	bluishGreen   = color.RGBA{0x00, 0x9e, 0x73, 0xff}
	blue          = color.RGBA{0x00, 0x72, 0xb2, 0xff}
	vermillion    = color.RGBA{0xd5, 0x5e, 0x00, 0xff}
	reddishPurple = color.RGBA{0xcc, 0x79, 0xa7, 0xff}
	darkPurple    = color.RGBA{0x9a, 0x3f, 0x73, 0xff} // reddish purple darkened for text on white
	gridGrey      = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}

	auditColors = []color.Color{black, vermillion, blue, bluishGreen, reddishPurple, orange, skyBlue}
	auditShapes = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.TriangleGlyph{}, draw.SquareGlyph{}, draw.PyramidGlyph{}, draw.RingGlyph{}, draw.BoxGlyph{}, draw.CrossGlyph{}}
)

func withAlpha(c color.RGBA, a uint8) color.NRGBA {
	return color.NRGBA{c.R, c.G, c.B, a}
}

func textStyle(size vg.Length) text.Style {
	return text.Style{Color: black, Font: font.From(sans, size), Handler: plot.DefaultTextHandler}
}

// legendItem is one entry of a figure's legend.
type legendItem struct {
	text   string
	thumbs []plot.Thumbnailer
}

// figure is a titled grid of panels with one legend row.
type figure struct {
	title  string
	legend []legendItem
	panels [][]*plot.Plot // rows of panels; nil panels stay empty
	w, h   vg.Length
}

// newPanel returns a plot with the report's fonts, a light grid and the
// given title and axis labels.
func newPanel(title, xLabel, yLabel string) *plot.Plot {
	p := newBarePanel(title, xLabel, yLabel)
	g := plotter.NewGrid()
	g.Vertical.Color, g.Horizontal.Color = gridGrey, gridGrey
	g.Vertical.Width, g.Horizontal.Width = vg.Points(0.5), vg.Points(0.5)
	p.Add(g)
	return p
}

// newBarePanel is newPanel without the grid.
func newBarePanel(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = font.From(sans, 12)
	p.Title.Padding = vg.Points(6)
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		ax.Label.TextStyle.Font = font.From(sans, 11)
		ax.Tick.Label.Font = font.From(sans, 10)
	}
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	p.X.Tick.Marker, p.Y.Tick.Marker = niceTicks{}, niceTicks{}
	return p
}

// draw renders the figure onto dc.
func (f *figure) draw(dc draw.Canvas) {
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	pad := vg.Points(6)
	top := dc.Max.Y - pad
	if f.title != "" {
		ts := textStyle(14)
		ts.XAlign, ts.YAlign = draw.XCenter, draw.YTop
		dc.FillText(ts, vg.Point{X: (dc.Min.X + dc.Max.X) / 2, Y: top}, f.title)
		top -= ts.Height(f.title) + pad
	}
	if len(f.legend) > 0 {
		top -= drawLegendRow(dc, top, f.legend) + pad/2
	}
	area := dc
	area.Max.Y = top
	rows, cols := len(f.panels), 0
	for _, r := range f.panels {
		cols = max(cols, len(r))
	}
	// Panel titles are drawn here rather than by the plots, at one height
	// per row: plot.Align lines up the data areas, and a plot places its
	// title at the top of its tile, which differs between the panels of a
	// row when their glyphs need different padding.
	grid := make([][]*plot.Plot, rows)
	titles := make([][]string, rows)
	for i, r := range f.panels {
		grid[i] = make([]*plot.Plot, cols)
		titles[i] = make([]string, cols)
		copy(grid[i], r)
		for j, p := range r {
			if p != nil {
				titles[i][j], p.Title.Text = p.Title.Text, ""
			}
		}
	}
	defer func() {
		for i, r := range grid {
			for j, p := range r {
				if p != nil {
					p.Title.Text = titles[i][j]
				}
			}
		}
	}()
	ts := textStyle(12)
	ts.XAlign, ts.YAlign = draw.XCenter, draw.YBottom
	var titleH vg.Length
	for _, r := range titles {
		for _, t := range r {
			if t != "" {
				titleH = ts.FontExtents().Height + vg.Points(4)
			}
		}
	}
	tiles := draw.Tiles{
		Rows: rows, Cols: cols,
		PadX: vg.Points(28), PadY: vg.Points(18) + titleH,
		PadTop: titleH, PadLeft: vg.Points(6), PadRight: vg.Points(12), PadBottom: vg.Points(6),
	}
	cs := plot.Align(grid, tiles, area)
	for i, r := range grid {
		var rowTop vg.Length
		for j, p := range r {
			if p != nil {
				p.Draw(cs[i][j])
				rowTop = max(rowTop, cs[i][j].Max.Y)
			}
		}
		for j, p := range r {
			if p != nil && titles[i][j] != "" {
				dc := p.DataCanvas(cs[i][j])
				dc.FillText(ts, vg.Point{X: (dc.Min.X + dc.Max.X) / 2, Y: rowTop + vg.Points(4)}, titles[i][j])
			}
		}
	}
}

// drawLegendRow draws the items side by side, centred below top, wrapping
// to more rows when they do not fit, and returns the height used.
func drawLegendRow(dc draw.Canvas, top vg.Length, items []legendItem) vg.Length {
	ts := textStyle(11)
	ts.YAlign = draw.YCenter
	thumbW, gap, sep := vg.Points(26), vg.Points(5), vg.Points(20)
	lineH := ts.FontExtents().Height * 1.35
	width := func(it legendItem) vg.Length { return thumbW + gap + ts.Width(it.text) }
	avail := dc.Max.X - dc.Min.X - vg.Points(20)
	var rows [][]legendItem
	var cur []legendItem
	var curW vg.Length
	for _, it := range items {
		w := width(it)
		if len(cur) > 0 && curW+sep+w > avail {
			rows = append(rows, cur)
			cur, curW = nil, 0
		}
		if len(cur) > 0 {
			curW += sep
		}
		cur = append(cur, it)
		curW += w
	}
	rows = append(rows, cur)
	y := top
	for _, row := range rows {
		var total vg.Length
		for i, it := range row {
			if i > 0 {
				total += sep
			}
			total += width(it)
		}
		x := (dc.Min.X+dc.Max.X)/2 - total/2
		mid := y - lineH/2
		for _, it := range row {
			icon := draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
				Min: vg.Point{X: x, Y: mid - lineH*0.32},
				Max: vg.Point{X: x + thumbW, Y: mid + lineH*0.32},
			}}
			for _, t := range it.thumbs {
				t.Thumbnail(&icon)
			}
			dc.FillText(ts, vg.Point{X: x + thumbW + gap, Y: mid}, it.text)
			x += width(it) + sep
		}
		y -= lineH
	}
	return top - y
}

// save writes the figure as base.png and base.svg. A panic of the plotting
// library on data it cannot draw becomes an error naming the figure.
func (f *figure) save(base string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = figErr(base, fmt.Errorf("drawing failed: %v", r))
		}
	}()
	img := vgimg.NewWith(vgimg.UseWH(f.w, f.h), vgimg.UseDPI(figureDPI))
	f.draw(draw.New(img))
	if err := writeFile(base+".png", func(w io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
		return err
	}); err != nil {
		return err
	}
	svg := vgsvg.New(f.w, f.h)
	f.draw(draw.New(svg))
	var buf bytes.Buffer
	if _, err := svg.WriteTo(&buf); err != nil {
		return fmt.Errorf("report: writing %s.svg: %w", base, err)
	}
	// Text was laid out with Liberation Sans; Arimo and Arial have the same
	// metrics, so a viewer without Liberation keeps labels where they were.
	out := bytes.ReplaceAll(buf.Bytes(), []byte("font-family:Liberation Sans;"), []byte(svgFontFamily))
	return writeFile(base+".svg", func(w io.Writer) error {
		_, err := w.Write(out)
		return err
	})
}

// series is one line of means with standard-error bars.
type series struct {
	x, y, se []float64 // se may be nil; NaN y are skipped, NaN se draw no bar
	color    color.Color
	shape    draw.GlyphDrawer
	dashes   []vg.Length
	dx       float64 // horizontal dodge, so that bars of close series do not hide each other
	// points draws no line: the x values are separate models, between
	// which nothing changes gradually.
	points bool
}

type errorPoints struct {
	plotter.XYs
	plotter.YErrors
}

// add draws s on p and returns its legend thumbnails. The line breaks
// where a value is undefined (an empty group), so that no line bridges an
// epoch without data.
func (s series) add(p *plot.Plot) []plot.Thumbnailer {
	var pts, seg plotter.XYs
	var bars errorPoints
	style := draw.LineStyle{Color: s.color, Width: vg.Points(1.5), Dashes: s.dashes}
	flush := func() {
		if len(seg) > 1 && !s.points {
			p.Add(&plotter.Line{XYs: seg, LineStyle: style})
		}
		seg = nil
	}
	for i, y := range s.y {
		if math.IsNaN(y) {
			flush()
			continue
		}
		pt := plotter.XY{X: s.x[i] + s.dx, Y: y}
		pts = append(pts, pt)
		seg = append(seg, pt)
		if s.se != nil && s.se[i] > 0 && !math.IsInf(s.se[i], 0) {
			bars.XYs = append(bars.XYs, pt)
			bars.YErrors = append(bars.YErrors, struct{ Low, High float64 }{s.se[i], s.se[i]})
		}
	}
	flush()
	line := &plotter.Line{LineStyle: style} // for the legend
	dots := &plotter.Scatter{XYs: pts, GlyphStyle: draw.GlyphStyle{Color: s.color, Radius: vg.Points(3), Shape: s.shape}}
	if len(pts) > 0 {
		p.Add(dots)
	}
	if len(bars.XYs) > 0 {
		eb, err := plotter.NewYErrorBars(bars)
		if err == nil {
			eb.LineStyle = draw.LineStyle{Color: s.color, Width: vg.Points(1)}
			eb.CapWidth = vg.Points(5)
			p.Add(eb)
		}
	}
	if s.points {
		return []plot.Thumbnailer{dots}
	}
	return []plot.Thumbnailer{line, dots}
}

// dodge returns the horizontal offset of series i of n, within ±0.12 epoch.
func dodge(i, n int) float64 {
	if n < 2 {
		return 0
	}
	return -0.12 + 0.24*float64(i)/float64(n-1)
}

// epochTicks labels whole epochs, every 1, 2, 5, 10, … so that at most 12
// are labelled.
type epochTicks struct{}

func (epochTicks) Ticks(lo, hi float64) []plot.Tick {
	first, last := math.Ceil(lo), math.Floor(hi)
	step := 1.0
	for _, s := range []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000} {
		step = s
		if (last-first)/s <= 12 {
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(first/step) * step; v <= last; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.Itoa(int(v))})
	}
	return ticks
}

// niceTicks labels 4 to 8 values at steps of 1, 2, 2.5 or 5 times a power
// of ten, all with the same number of decimals, with unlabelled minor ticks
// between them. (plot.DefaultTicks often labels only two or three values.)
type niceTicks struct{}

func (niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || math.IsInf(hi-lo, 0) {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	mag := math.Pow(10, math.Floor(math.Log10((hi-lo)/6)))
	step, decimals := 10*mag, 0
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if (hi-lo)/(m*mag) <= 7 {
			step = m * mag
			break
		}
	}
	decimals = max(0, -int(math.Floor(math.Log10(step)+1e-9)))
	if r := step / math.Pow(10, math.Floor(math.Log10(step)+1e-9)); math.Abs(r-2.5) < 1e-9 {
		decimals++
	}
	var ticks []plot.Tick
	minor := step / 2
	for k := math.Ceil(lo/minor - 1e-9); k*minor <= hi+1e-9*step; k++ {
		v := k * minor
		if math.Abs(v) < 1e-12*step {
			v = 0
		}
		t := plot.Tick{Value: v}
		if int64(k)%2 == 0 {
			t.Label = strconv.FormatFloat(v, 'f', decimals, 64)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// epochAxis sets up the x axis of a per-epoch panel.
func epochAxis(p *plot.Plot, epochs []int) {
	if len(epochs) == 0 {
		return
	}
	p.X.Min, p.X.Max = float64(epochs[0])-0.5, float64(epochs[len(epochs)-1])+0.5
	p.X.Tick.Marker = epochTicks{}
}

// swatch is a legend thumbnail: a filled rectangle.
type swatch struct{ c color.Color }

func (s swatch) Thumbnail(c *draw.Canvas) {
	r := c.Rectangle
	h := r.Max.Y - r.Min.Y
	r.Min.Y += h * 0.1
	r.Max.Y -= h * 0.1
	c.SetColor(s.c)
	c.Fill(r.Path())
}

// figErr names the figure file in an error.
func figErr(base string, err error) error {
	return fmt.Errorf("report: figure %s: %w", base, err)
}
