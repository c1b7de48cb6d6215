package report

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/marginaudit/marginaudit/auditor"
)

// The page: one static HTML file, no scripts, no network, that needs no
// other file: every figure is in it as a data: URI, the PNG shown and the
// SVG behind a download link, so index.html can be mailed or attached on
// its own. The figures are also in the report's folder as files.

type pageAudit struct {
	Label, Dir, Data, Splits, Epochs, Norms, Input, DeepFool, PGD, Failures, Confidence string
}

type pageFigure struct {
	Figure
	Anchor      string
	PNGData     template.URL // data: URI of the PNG
	SVGData     template.URL // data: URI of the SVG
	SVGName     string       // the SVG's file name, for its download link
	Transitions [][]string   // rows of the transitions table under a Sankey
}

type pageSection struct {
	Title, Intro string
	Figures      []pageFigure
}

type page struct {
	Audits   []pageAudit
	Sections []section
	Notes    []string
	Figures  []pageSection
	Tables   []pageTable
}

type pageTable struct {
	Title  string
	Header []string
	Rows   [][]string
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>marginaudit report</title>
<style>
body { font-family: "Liberation Sans", Arial, Helvetica, sans-serif; max-width: 1000px; margin: 1.5em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.92em; color: #333; }
.obs li { margin: 0.3em 0; } details { margin: 0.6em 0; } summary { cursor: pointer; }
</style>
</head>
<body>
<h1>marginaudit report</h1>

<h2 id="audits">Audits</h2>
<table>
<tr><th>label</th><th>data</th><th>images</th><th>checkpoints</th><th>norms</th><th>input</th><th>attack</th><th>PGD</th><th>failed attacks</th><th>confidence</th></tr>
{{range .Audits}}<tr><td><b>{{.Label}}</b><br><small>{{.Dir}}</small></td><td>{{.Data}}</td><td>{{.Splits}}</td><td>{{.Epochs}}</td><td>{{.Norms}}</td><td>{{.Input}}</td><td>{{.DeepFool}}</td><td>{{.PGD}}</td><td>{{.Failures}}</td><td>{{.Confidence}}</td></tr>
{{end}}</table>

<h2 id="observations">Observations</h2>
{{range .Sections}}<p><b>{{.Heading}}</b></p>
<ul class="obs">{{range .Lines}}<li>{{.}}</li>{{end}}</ul>
{{end}}{{if .Notes}}<p><b>Notes</b></p>
<ul>{{range .Notes}}<li>{{.}}</li>{{end}}</ul>
{{end}}<p>Every number above, and those per checkpoint below, is in summary.json, written beside this page.</p>
{{range .Tables}}<details><summary>{{.Title}}</summary>
<table><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td class="n">{{.}}</td>{{end}}</tr>
{{end}}</table></details>
{{end}}
{{range .Figures}}<h2>{{.Title}}</h2>
<p>{{.Intro}}</p>
{{range .Figures}}<figure id="{{.Anchor}}">
<img src="{{.PNGData}}" alt="{{.Title}}">
<figcaption>{{.Caption}} <a href="{{.SVGData}}" download="{{.SVGName}}">SVG</a></figcaption>
{{if .Transitions}}<table><tr><th>split</th><th>from epoch</th><th>to epoch</th><th class="n">stay correct</th><th class="n">become misclassified</th><th class="n">become correct</th><th class="n">stay misclassified</th></tr>
{{range .Transitions}}<tr>{{range .}}<td class="n">{{.}}</td>{{end}}</tr>
{{end}}</table>{{end}}
</figure>
{{end}}{{end}}
</body>
</html>
`))

// sectionModels is the page's section of the margin figures of audits of
// separate models.
const sectionModels = "separate models" // a page section, not a figure kind (FigModels is "models")

// writeHTML writes the report's page, with the figures read from the
// report folder dir.
func writeHTML(w io.Writer, o *Observations, audits []*audit, dir string) error {
	p := page{Notes: o.Notes, Sections: o.sections()}
	for i, a := range audits {
		info := o.Audits[i]
		pa := pageAudit{Label: a.Label, Dir: a.Dir, Data: dataName(a)}
		var sp []string
		for _, si := range info.Images {
			sp = append(sp, fmt.Sprintf("%s: %d", si.Split, si.Images))
		}
		pa.Splits = strings.Join(sp, ", ")
		switch n := len(a.epochs); {
		case a.member:
			pa.Epochs = "model " + a.Label + ": " + strings.Join(info.Checkpoints, ", ")
		case a.separate:
			pa.Epochs = fmt.Sprintf("%d separate models: %s", n, strings.Join(info.Checkpoints, ", "))
		case n > 0:
			pa.Epochs = fmt.Sprintf("epochs %d–%d (%d checkpoints)", a.epochs[0], a.epochs[n-1], n)
		}
		var ns []string
		for _, n := range a.norms {
			ns = append(ns, normName(n))
		}
		pa.Norms = strings.Join(ns, ", ")
		s := a.settings
		cand := "all classes"
		if s.Candidates > 0 {
			cand = fmt.Sprintf("top %d classes", s.Candidates)
		}
		pa.Input = info.Input
		pa.DeepFool = fmt.Sprintf("DeepFool, overshoot %s, ≤ %d iterations, %s, ≤ %d restarts, %s",
			fmtG(s.Overshoot), s.MaxIter, cand, s.Retries, map[bool]string{true: "refined", false: "unrefined"}[s.Refine])
		if len(s.PGD.Eps) > 0 {
			var eps []string
			for _, e := range s.PGD.Eps {
				eps = append(eps, fmtG(e))
			}
			var pn []string
			for _, n := range s.PGD.Norms {
				pn = append(pn, normName(n))
			}
			pa.PGD = fmt.Sprintf("%s, ε = %s, %d steps", strings.Join(pn, ", "), strings.Join(eps, ", "), s.PGD.Steps)
		} else {
			pa.PGD = "none"
		}
		var fs []string
		for _, f := range info.Failures {
			fs = append(fs, fmt.Sprintf("%s: %d of %d", normName(f.Norm), f.Failures, f.Attacks))
		}
		pa.Failures = strings.Join(fs, ", ")
		pa.Confidence = "none"
		if a.conf != nil {
			pa.Confidence = auditor.ConfidenceFile
		}
		p.Audits = append(p.Audits, pa)
	}

	p.Tables = append(observationTables(o), bracketTable(o)...)

	intro := map[string]pageSection{
		FigMargin:      {Title: "Mean margin per epoch", Intro: "How far the images are from the decision boundary over training, with the accuracy on the same images beside it."},
		sectionModels:  {Title: "Mean margin per model", Intro: "How far the images are from the decision boundary of each model, with the accuracy on the same images beside it."},
		FigCompare:     {Title: "Audits compared", Intro: "The mean margins of the audits overlaid on common axes (for example standard vs adversarial training)."},
		FigGroups:      {Title: "Correctly classified vs misclassified images", Intro: "Mean margins of the two groups per epoch or model: observation (3)."},
		FigHistogram:   {Title: "Margin distributions", Intro: "Histograms of the margins of correctly classified and misclassified images at chosen epochs or models, each normalised to unit area."},
		FigSankey:      {Title: "Transitions between epochs", Intro: "How images move between correctly classified and misclassified from one epoch to the next."},
		FigGallery:     {Title: "Gallery", Intro: fmt.Sprintf("The %d correctly classified images closest to and farthest from the decision boundary at chosen epochs or models, clean beside the adversarial image DeepFool found (or FMN refined, with refined margins) and its perturbation.", GalleryImages)},
		FigCalibration: {Title: "Calibration", Intro: fmt.Sprintf("How well the clean max-softmax confidence matches the accuracy: reliability diagrams (%d equal-width bins) at chosen epochs or models, and the expected and maximum calibration errors per epoch or model: observation (5).", CalibrationBins)},
		FigBracket:     {Title: "The bracket of the margins", Intro: "DeepFool's margins beside those FMN refined from them, per epoch: how loose DeepFool's upper bound is."},
		FigBand:        {Title: "Fraction of images beyond each radius, as a band", Intro: "R(ε) from DeepFool's and from the refined margins at chosen epochs; the band between them is what the refinement removed."},
	}
	for k, sec := range modelSetIntros(o) {
		intro[k] = sec
	}
	byAudit := map[string]*audit{}
	for _, a := range audits {
		byAudit[a.Label] = a
	}
	for _, kind := range []string{FigMargin, sectionModels, FigModels, FigDistribution, FigRobustness, FigCompare, FigGroups, FigHistogram, FigBracket, FigBand, FigSankey, FigCalibration, FigGallery} {
		sec := intro[kind]
		for _, f := range o.Figures {
			// Margin figures of separate models have a section of their own.
			k := f.Kind
			if k == FigMargin && byAudit[f.Audit].separate {
				k = sectionModels
			}
			if k != kind {
				continue
			}
			pf := pageFigure{Figure: f, Anchor: strings.TrimSuffix(strings.TrimPrefix(f.PNG, FiguresDir+"/"), ".png"), SVGName: path.Base(f.SVG)}
			var err error
			if pf.PNGData, err = dataURI(dir, f.PNG, "image/png"); err != nil {
				return err
			}
			if pf.SVGData, err = dataURI(dir, f.SVG, "image/svg+xml"); err != nil {
				return err
			}
			if kind == FigSankey {
				for _, t := range byAudit[f.Audit].summary.Transitions {
					if t.Split == f.Split {
						pf.Transitions = append(pf.Transitions, []string{string(t.Split), strconv.Itoa(t.FromEpoch), strconv.Itoa(t.ToEpoch),
							strconv.Itoa(t.CorrectCorrect), strconv.Itoa(t.CorrectIncorrect), strconv.Itoa(t.IncorrectCorrect), strconv.Itoa(t.IncorrectIncorrect)})
					}
				}
			}
			sec.Figures = append(sec.Figures, pf)
		}
		if len(sec.Figures) > 0 {
			p.Figures = append(p.Figures, sec)
		}
	}
	return pageTemplate.Execute(w, p)
}

// dataURI returns the file name, relative to dir, as a data: URI of type
// mime.
func dataURI(dir, name, mime string) (template.URL, error) {
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		return "", fmt.Errorf("report: embedding a figure: %w", err)
	}
	// The URI is built here from base64 only: safe to mark as such.
	return template.URL("data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(data)), nil
}

// observationTables lays out the per-epoch statistics of observations (2)
// to (4) as tables.
func observationTables(o *Observations) []pageTable {
	ts := modelSetTables(o)
	if len(o.Trend) > 0 {
		t := pageTable{Title: "(1) Trend per audit, split and norm", Header: []string{"audit", "split", "norm", "epochs", "mean first", "mean last", "change", "Spearman ρ", "p", "method", "direction"}}
		for _, r := range o.Trend {
			t.Rows = append(t.Rows, []string{r.Audit, string(r.Split), normName(r.Norm), fmt.Sprintf("%d–%d", r.FirstEpoch, r.LastEpoch),
				fmtV(r.MeanFirst), fmtV(r.MeanLast), fmtPct(r.RelativeChange), fmtRho(r.Rho), fmtP(r.P), string(r.Method), string(r.Direction)})
		}
		ts = append(ts, t)
	}
	if len(o.AdversarialRatio) > 0 {
		t := pageTable{Title: "(2) Ratio of mean margins to standard training, per epoch", Header: []string{"audit", "standard", "epoch", "split", "norm", "mean", "SE", "standard mean", "standard SE", "ratio", "ratio SE"}}
		for _, r := range o.AdversarialRatio {
			t.Rows = append(t.Rows, []string{r.Audit, r.Standard, strconv.Itoa(r.Epoch), string(r.Split), normName(r.Norm),
				fmtV(r.Mean), fmtV(r.SE), fmtV(r.StandardMean), fmtV(r.StandardSE), fmtR(r.Ratio), fmtR(r.RatioSE)})
		}
		ts = append(ts, t)
	}
	if len(o.IncorrectRatio) > 0 {
		t := pageTable{Title: "(3) Misclassified vs correctly classified, per epoch or model (Mann–Whitney U, two-sided, normal approximation with tie and continuity correction)",
			Header: []string{"audit", "epoch or model", "split", "norm", "n correct", "n misclassified", "mean correct", "mean misclassified", "ratio", "U", "z", "p"}}
		for _, r := range o.IncorrectRatio {
			t.Rows = append(t.Rows, []string{r.Audit, o.point(r.Audit, r.Epoch), string(r.Split), normName(r.Norm), strconv.Itoa(r.NCorrect), strconv.Itoa(r.NIncorrect),
				fmtV(r.MeanCorrect), fmtV(r.MeanIncorrect), fmtR(r.Ratio), fmtV(r.U), fmtR(r.Z), fmtP(r.P)})
		}
		ts = append(ts, t)
	}
	if len(o.Detection) > 0 {
		t := pageTable{Title: "(4) AUROC of the margin and of the max-softmax baseline as detectors of misclassified images, per epoch or model",
			Header: []string{"audit", "epoch or model", "split", "norm", "n correct", "n misclassified", "AUROC margin", "AUROC max-softmax"}}
		for _, r := range o.Detection {
			t.Rows = append(t.Rows, []string{r.Audit, o.point(r.Audit, r.Epoch), string(r.Split), normName(r.Norm), strconv.Itoa(r.NCorrect), strconv.Itoa(r.NIncorrect),
				fmtR(r.AUROCMargin), fmtR(r.AUROCMaxSoftmax)})
		}
		ts = append(ts, t)
	}
	return renameForModelSet(o, append(ts, calibrationTables(o)...))
}
