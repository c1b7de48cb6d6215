package report_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/report"
)

var (
	update       = flag.Bool("update", false, "rewrite the golden files in testdata")
	render       = flag.String("render", "", "write the report of a realistic synthetic study into this folder, to look at")
	renderEpochs = flag.Int("render-epochs", 11, "checkpoints of the -render study")
	renderN      = flag.Int("render-n", 1000, "images per split of the -render study")
)

// writeAudits writes synthetic audits into a temporary folder and returns
// them labelled.
func writeAudits(t testing.TB, synths map[string]synth, order ...string) []report.Audit {
	t.Helper()
	root := t.TempDir()
	var out []report.Audit
	for _, label := range order {
		dir := filepath.Join(root, label)
		synths[label].write(t, dir)
		out = append(out, report.Audit{Label: label, Dir: dir})
	}
	return out
}

func TestRender(t *testing.T) {
	if *render == "" {
		t.Skip("no -render folder")
	}
	audits := writeAudits(t, map[string]synth{
		"standard":    standardSynth(*renderEpochs, *renderN),
		"adversarial": adversarialSynth(*renderEpochs, *renderN),
	}, "standard", "adversarial")
	obs, err := report.Write(context.Background(), audits, *render, report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Print(obs.Text())
}

// The golden reports of small synthetic audits: summary.json (compared
// as numbers with a relative tolerance of 1e-9, since float rounding may
// differ in the last bits between architectures that fuse multiply-adds)
// and the printed text. "training" is a standard and an adversarial
// training run, with the initialisation (epoch 0) among the histograms'
// epochs; "separate" an audit of three models without epochs, which the
// report names and does not treat as a training run; "model set" three
// audits of one model each, the third on other images (so not paired),
// with histogram epochs given that a model set ignores.
func TestGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, suffix string
		synths       map[string]synth
		order        []string
		opts         report.Options
	}{
		{"training", "", map[string]synth{"standard": standardSynth(7, 30), "adversarial": adversarialSynth(7, 30)},
			[]string{"standard", "adversarial"}, report.Options{Epochs: []int{0, 1, 6, 9}}},
		{"separate", ".separate", map[string]synth{"models": separateSynth(30)}, []string{"models"}, report.Options{}},
		{"model set", ".modelset", map[string]synth{
			"small": modelSynth(4, 9, "small.onnx", 1, 0.03),
			"large": modelSynth(5, 9, "large.onnx", 1.4, 0),
			"other": modelSynth(6, 10, "other.onnx", 1.2, 0.01),
		}, []string{"small", "large", "other"}, report.Options{Epochs: []int{3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkGoldenReport(t, writeAudits(t, tc.synths, tc.order...), tc.opts, tc.suffix)
		})
	}
}

// checkGoldenReport writes the report of audits and compares it with
// testdata/summary<suffix>.golden.json and observations<suffix>.golden.txt.
func checkGoldenReport(t *testing.T, audits []report.Audit, opts report.Options, suffix string) {
	out := t.TempDir()
	obs, err := report.Write(context.Background(), audits, out, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(out, report.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	// The audit folders are temporary: replace them by their labels.
	for _, a := range audits {
		quoted, _ := json.Marshal(a.Dir)
		got = bytes.ReplaceAll(got, quoted, []byte(`"DIR/`+a.Label+`"`))
	}
	text := obs.Text()
	for _, a := range audits {
		text = strings.ReplaceAll(text, a.Dir, "DIR/"+a.Label)
	}
	goldenJSON := filepath.Join("testdata", "summary"+suffix+".golden.json")
	goldenText := filepath.Join("testdata", "observations"+suffix+".golden.txt")
	if *update {
		if err := os.WriteFile(goldenJSON, got, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenText, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenJSON)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if diffs := jsonDiff("", g, w, 1e-9); len(diffs) > 0 {
		t.Errorf("summary.json differs from %s (go test -update to accept):\n%s", goldenJSON, strings.Join(diffs[:min(len(diffs), 20)], "\n"))
	}
	wantText, err := os.ReadFile(goldenText)
	if err != nil {
		t.Fatal(err)
	}
	if text != string(wantText) {
		t.Errorf("Text() differs from %s (go test -update to accept):\ngot:\n%s\nwant:\n%s", goldenText, text, wantText)
	}

	// The summary reads back to the returned observations.
	f, err := os.Open(filepath.Join(out, report.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := report.ReadObservations(f, report.SummaryFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Trend) != len(obs.Trend) || len(back.Detection) != len(obs.Detection) || len(back.Figures) != len(obs.Figures) {
		t.Errorf("summary.json reads back with %d trends, %d detections, %d figures; want %d, %d, %d",
			len(back.Trend), len(back.Detection), len(back.Figures), len(obs.Trend), len(obs.Detection), len(obs.Figures))
	}
}

// jsonDiff lists the paths where got and want differ, numbers compared with
// a relative tolerance.
func jsonDiff(path string, got, want any, tol float64) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %v, want an object", path, got)}
		}
		var out []string
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		slices.Sort(sorted)
		for _, k := range sorted {
			out = append(out, jsonDiff(path+"."+k, g[k], w[k], tol)...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: got %d elements (%T), want %d", path, len(g), got, len(w))}
		}
		var out []string
		for i := range w {
			out = append(out, jsonDiff(fmt.Sprintf("%s[%d]", path, i), g[i], w[i], tol)...)
		}
		return out
	case float64:
		g, ok := got.(float64)
		if !ok || math.Abs(g-w) > tol*math.Max(1, math.Abs(w)) {
			return []string{fmt.Sprintf("%s: got %v, want %v", path, got, w)}
		}
		return nil
	default:
		if !reflect.DeepEqual(got, want) {
			return []string{fmt.Sprintf("%s: got %v, want %v", path, got, want)}
		}
		return nil
	}
}

// The writer produces every figure, as valid PNG and SVG files, and the
// page refers to them and to nothing outside the report.
func TestFigures(t *testing.T) {
	t.Parallel()
	audits := writeAudits(t, map[string]synth{
		"standard":    standardSynth(6, 60),
		"adversarial": adversarialSynth(6, 60),
	}, "standard", "adversarial")
	out := t.TempDir()
	obs, err := report.Write(context.Background(), audits, out, report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Per audit: a margin and a groups figure per norm (2), a histogram
	// per split and norm (4), a Sankey per split (2); and one comparison
	// per norm (2).
	want := map[string]int{
		report.FigMargin: 4, report.FigGroups: 4, report.FigHistogram: 8, report.FigSankey: 4, report.FigCompare: 2,
		report.FigCalibration: 2, // reliability and errors; only the standard audit has confidence.csv
	}
	got := map[string]int{}
	for _, f := range obs.Figures {
		got[f.Kind]++
		if f.Caption == "" || f.Title == "" {
			t.Errorf("%s: empty caption or title", f.PNG)
		}
		checkPNG(t, filepath.Join(out, f.PNG))
		checkSVG(t, filepath.Join(out, f.SVG))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("figures by kind: got %v, want %v", got, want)
	}
	page, err := os.ReadFile(filepath.Join(out, report.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	checkSelfContained(t, page, obs.Figures, out)
	for _, f := range obs.Figures {
		if !bytes.Contains(page, []byte(f.Caption[:40])) {
			t.Errorf("index.html lacks the caption of %s", f.PNG)
		}
	}
	// No temporary files are left behind.
	filepath.WalkDir(out, func(path string, d os.DirEntry, err error) error {
		if strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", path)
		}
		return nil
	})
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	// 10 in wide at 96 dpi.
	if cfg.Width != 960 || cfg.Height < 300 {
		t.Errorf("%s: %d×%d pixels, want 960 wide and at least 300 high", path, cfg.Width, cfg.Height)
	}
}

func checkSVG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	if !bytes.HasPrefix(b, []byte("<?xml")) || !bytes.Contains(b[:min(len(b), 512)], []byte("<svg")) || !bytes.HasSuffix(bytes.TrimSpace(b), []byte("</svg>")) {
		t.Errorf("%s: not an SVG document", path)
	}
}

// One audit: no comparison, no ratio to standard training, and notes
// saying what is missing.
func TestSingleAudit(t *testing.T) {
	t.Parallel()
	s := standardSynth(4, 30)
	s.confidence = false
	audits := writeAudits(t, map[string]synth{"run": s}, "run")
	obs, err := report.Write(context.Background(), audits, t.TempDir(), report.Options{Epochs: []int{0, 3, 7}})
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.AdversarialRatio) != 0 {
		t.Errorf("%d adversarial ratios of a single audit", len(obs.AdversarialRatio))
	}
	for _, f := range obs.Figures {
		if f.Kind == report.FigCompare {
			t.Errorf("comparison figure %s of a single audit", f.PNG)
		}
	}
	for _, d := range obs.Detection {
		if !math.IsNaN(float64(d.AUROCMaxSoftmax)) {
			t.Fatalf("max-softmax AUROC %v without confidence.csv", d.AUROCMaxSoftmax)
		}
	}
	notes := strings.Join(obs.Notes, "\n")
	for _, want := range []string{"no confidence.csv", "no epoch 7"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	text := obs.Text()
	for _, want := range []string{"(1)", "(2) ", "not measured", "(3)", "(4)", "max-softmax baseline not measured"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	t.Parallel()
	audits := writeAudits(t, map[string]synth{"standard": standardSynth(3, 10)}, "standard")
	dir := audits[0].Dir
	ctx := context.Background()

	if _, err := report.Write(ctx, nil, t.TempDir(), report.Options{}); !errors.Is(err, report.ErrNoAudits) {
		t.Errorf("no audits: %v, want ErrNoAudits", err)
	}
	if _, err := report.Write(ctx, []report.Audit{{Label: "a", Dir: dir}, {Label: "a", Dir: dir}}, t.TempDir(), report.Options{}); err == nil || !strings.Contains(err.Error(), `two audits are labelled "a"`) {
		t.Errorf("duplicate labels: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "nothing")
	if _, err := report.Write(ctx, []report.Audit{{Dir: missing}}, t.TempDir(), report.Options{}); err == nil || !strings.Contains(err.Error(), filepath.Join(missing, auditor.SettingsFile)) {
		t.Errorf("missing audit: %v, want the settings file named", err)
	}
	if _, err := report.Write(ctx, audits, t.TempDir(), report.Options{Refined: true}); err == nil || !strings.Contains(err.Error(), "no refined margin") || !strings.Contains(err.Error(), auditor.MarginsFile) {
		t.Errorf("refined margins of an unrefined audit: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	out := t.TempDir()
	if _, err := report.Write(cancelled, audits, out, report.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(out, report.IndexFile)); err == nil {
		t.Error("a cancelled report wrote index.html")
	}

	// A corrupt margins.csv is reported with its file and line.
	bad := filepath.Join(dir, auditor.MarginsFile)
	b, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(b), "\n", 3)
	lines[1] = strings.Replace(lines[1], ",l2,", ",l3,", 1)
	if err := os.WriteFile(bad, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := report.Write(ctx, audits, t.TempDir(), report.Options{}); err == nil || !strings.Contains(err.Error(), bad+":2") {
		t.Errorf("corrupt margins.csv: %v, want %s:2 named", err, bad)
	}
}

// A confidence.csv that lacks images skips the baseline where it does.
func TestConfidencePartial(t *testing.T) {
	t.Parallel()
	audits := writeAudits(t, map[string]synth{"standard": standardSynth(3, 20)}, "standard")
	path := filepath.Join(audits[0].Dir, auditor.ConfidenceFile)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := auditor.ReadConfidence(f, path)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Drop the epoch-2 rows.
	rows = slices.DeleteFunc(rows, func(c auditor.Confidence) bool { return c.Epoch == 2 })
	var buf bytes.Buffer
	if err := auditor.WriteConfidence(&buf, rows); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	obs, err := report.Write(context.Background(), audits, t.TempDir(), report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range obs.Detection {
		if undefined := math.IsNaN(float64(d.AUROCMaxSoftmax)); undefined != (d.Epoch == 2 || d.NCorrect == 0 || d.NIncorrect == 0) {
			t.Errorf("epoch %d %s %s: max-softmax AUROC %v", d.Epoch, d.Split, d.Norm, d.AUROCMaxSoftmax)
		}
	}
	if !strings.Contains(strings.Join(obs.Notes, "\n"), "lacks some audited images") {
		t.Errorf("notes do not say that confidence.csv is partial: %q", obs.Notes)
	}
}

// Options.Refined reports the refined margins: here exactly 0.97 times the
// DeepFool margins, so every mean is 0.97 times as large and every rank
// statistic the same.
func TestRefined(t *testing.T) {
	t.Parallel()
	s := standardSynth(4, 20)
	s.refine = true
	audits := writeAudits(t, map[string]synth{"standard": s}, "standard")
	plain, err := report.Write(context.Background(), audits, t.TempDir(), report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	refined, err := report.Write(context.Background(), audits, t.TempDir(), report.Options{Refined: true})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Margin != "margin" || refined.Margin != "margin_refined" {
		t.Errorf("margin columns %q and %q", plain.Margin, refined.Margin)
	}
	for i, tr := range refined.Trend {
		p := plain.Trend[i]
		if !close(float64(tr.MeanLast), 0.97*float64(p.MeanLast), 1e-12) || tr.Rho != p.Rho || tr.P != p.P {
			t.Errorf("%s %s: refined mean %v ρ %v p %v; unrefined %v %v %v", tr.Split, tr.Norm, tr.MeanLast, tr.Rho, tr.P, p.MeanLast, p.Rho, p.P)
		}
	}
	for i, d := range refined.Detection {
		if p := plain.Detection[i]; !close(float64(d.AUROCMargin), float64(p.AUROCMargin), 1e-12) {
			t.Errorf("epoch %d %s %s: refined AUROC %v, unrefined %v", d.Epoch, d.Split, d.Norm, d.AUROCMargin, p.AUROCMargin)
		}
	}
	if !strings.Contains(refined.Figures[0].Caption, "refined by FMN (25 steps") || !strings.Contains(refined.Figures[0].Caption, "0 censored images") {
		t.Errorf("caption does not say the margins are refined, nor count the censored: %s", refined.Figures[0].Caption)
	}
	if !strings.Contains(plain.Figures[0].Caption, "0 failed attacks after all restarts, left out of the means") {
		t.Errorf("caption does not count the failed attacks: %s", plain.Figures[0].Caption)
	}
}

// TestBracket reports an audit whose refined margins are 0.97 times
// DeepFool's, with failed attacks (refined all the same) and two censored
// test images per epoch and norm: the brackets pair the images with both
// margins, count the others, and the band and bracket figures are drawn.
func TestBracket(t *testing.T) {
	t.Parallel()
	s := standardSynth(3, 30)
	s.refine, s.censor, s.failRate = true, 2, 0.05
	c := s
	c.certify = true
	audits := writeAudits(t, map[string]synth{"standard": s, "certified": c}, "standard")
	certified := writeAudits(t, map[string]synth{"standard": s, "certified": c}, "certified")
	o, err := report.Write(context.Background(), certified, t.TempDir(), report.Options{Refined: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range o.Brackets {
		if !(b.MeanLower > 0) || !(b.MeanLower < b.MeanRefined) || !(b.LowerRatio <= 0.5+1e-12) {
			t.Errorf("certified bracket %+v: want 0 < mean lower < mean refined, lower/refined ≤ 0.5 (0 for misclassified)", b)
		}
	}
	for _, f := range o.Figures {
		if f.Kind == report.FigBand && !strings.Contains(f.Caption, "certified curve") {
			t.Errorf("band caption does not explain the certified curve: %s", f.Caption)
		}
	}
	for _, refined := range []bool{false, true} {
		o, err := report.Write(context.Background(), audits, t.TempDir(), report.Options{Refined: refined})
		if err != nil {
			t.Fatal(err)
		}
		if len(o.Brackets) != 3*2*2 {
			t.Fatalf("%d brackets, want 12", len(o.Brackets))
		}
		failed := 0
		for _, b := range o.Brackets {
			failed += b.DeepFoolFailures
			censored := 0
			if b.Split == auditor.Test {
				censored = 2
			}
			if b.Censored != censored || b.Images != 30 || b.Paired+b.DeepFoolFailures != 30 || !close(float64(b.Ratio), 0.97, 1e-12) {
				t.Errorf("bracket %+v: want %d censored of 30 images, paired + DeepFool failures = 30, ratio 0.97", b, censored)
			}
		}
		if failed <= 3*2*2 {
			t.Errorf("%d DeepFool failures in all, want more than the censored images' 12", failed)
		}
		kinds := map[string]int{}
		for _, f := range o.Figures {
			kinds[f.Kind]++
			if (f.Kind == report.FigBand || f.Kind == report.FigBracket) && !strings.Contains(f.Caption, "censored") {
				t.Errorf("%s caption does not count the censored images: %s", f.Kind, f.Caption)
			}
		}
		if kinds[report.FigBracket] != 2 || kinds[report.FigBand] != 4 {
			t.Errorf("figures %v: want 2 bracket and 4 band figures", kinds)
		}
		// With the refined margins, the censored images are the ones
		// without a margin: 2 per test epoch and norm.
		for _, f := range o.Audits[0].Failures {
			if refined && f.Failures != 3*2 {
				t.Errorf("%s: %d images without a refined margin, want 6 censored", f.Norm, f.Failures)
			}
			if !strings.Contains(f.Treatment, "left out of the means") {
				t.Errorf("treatment %q", f.Treatment)
			}
		}
	}
}

// Labels default to the folder's name and become file names safely.
func TestLabels(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	var audits []report.Audit
	for _, name := range []string{"run A", "run-a"} {
		dir := filepath.Join(root, name)
		standardSynth(2, 10).write(t, dir)
		audits = append(audits, report.Audit{Dir: dir})
	}
	obs, err := report.Write(context.Background(), audits, t.TempDir(), report.Options{Standard: "run A"})
	if err != nil {
		t.Fatal(err)
	}
	if obs.Audits[0].Label != "run A" || obs.Audits[1].Label != "run-a" {
		t.Errorf("labels %q, %q; want the folder names", obs.Audits[0].Label, obs.Audits[1].Label)
	}
	var names []string
	for _, f := range obs.Figures {
		if f.Kind == report.FigMargin && f.Norm == auditor.L2 {
			names = append(names, f.PNG)
		}
	}
	want := []string{"figures/margin-run-a-l2.png", "figures/margin-run-a-2-l2.png"}
	if !slices.Equal(names, want) {
		t.Errorf("figure files %q, want %q", names, want)
	}
	if len(obs.AdversarialRatio) == 0 || obs.AdversarialRatio[0].Standard != "run A" {
		t.Errorf("no ratio to the audit named by Options.Standard")
	}
}

// An audit of the initialisation alone has no trend and no transitions,
// and says so.
func TestOneEpoch(t *testing.T) {
	t.Parallel()
	audits := writeAudits(t, map[string]synth{"standard": standardSynth(1, 10)}, "standard")
	obs, err := report.Write(context.Background(), audits, t.TempDir(), report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Trend) != 0 {
		t.Errorf("%d trends of epoch 0 alone", len(obs.Trend))
	}
	for _, f := range obs.Figures {
		if f.Kind == report.FigSankey {
			t.Errorf("transitions figure %s of one epoch", f.PNG)
		}
	}
	notes := strings.Join(obs.Notes, "\n")
	for _, want := range []string{"no epoch ≥ 1", "fewer than two epochs"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}

// checkSelfContained parses the page and checks that it refers to no file:
// every src and href is a data: URI or an anchor in the page, and each
// figure's PNG and SVG are embedded with the bytes of its file in dir.
func checkSelfContained(t *testing.T, page []byte, figs []report.Figure, dir string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(page))
	d.Strict, d.AutoClose, d.Entity = false, xml.HTMLAutoClose, xml.HTMLEntity
	embedded := map[string]bool{}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("index.html does not parse: %v", err)
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		for _, a := range el.Attr {
			if a.Name.Local != "src" && a.Name.Local != "href" {
				continue
			}
			switch {
			case strings.HasPrefix(a.Value, "data:"):
				embedded[a.Value] = true
			case strings.HasPrefix(a.Value, "#"):
			default:
				t.Errorf("index.html: <%s %s=%.60q> refers to a file", el.Name.Local, a.Name.Local, a.Value)
			}
		}
	}
	for _, f := range figs {
		for _, file := range []struct{ name, mime string }{{f.PNG, "image/png"}, {f.SVG, "image/svg+xml"}} {
			data, err := os.ReadFile(filepath.Join(dir, file.name))
			if err != nil {
				t.Fatal(err)
			}
			if uri := "data:" + file.mime + ";base64," + base64.StdEncoding.EncodeToString(data); !embedded[uri] {
				t.Errorf("index.html does not embed %s", file.name)
			}
		}
	}
}

// When audits form a model set: two or more of one model each without an
// epoch, or of one checkpoint each with Options.Models; a baseline must
// name one of them.
func TestModelSetChoice(t *testing.T) {
	t.Parallel()
	models := writeAudits(t, map[string]synth{"a": modelSynth(4, 9, "a.onnx", 1, 0), "b": modelSynth(5, 9, "b.onnx", 1.2, 0)}, "a", "b")
	run := writeAudits(t, map[string]synth{"run": standardSynth(2, 10), "one": standardSynth(1, 10)}, "run", "one")
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		audits []report.Audit
		opts   report.Options
		set    bool   // a model set, baseline its first model
		err    string // or this error
	}{
		{"models without epochs", models, report.Options{}, true, ""},
		{"baseline", models, report.Options{Baseline: "b"}, true, ""},
		{"one model", models[:1], report.Options{}, false, ""},
		{"checkpoints with epochs", []report.Audit{run[1], models[0]}, report.Options{}, false, ""},
		{"forced", []report.Audit{run[1], models[0]}, report.Options{Models: true}, true, ""},
		{"forced on a training run", []report.Audit{run[0], models[0]}, report.Options{Models: true}, false, `audit "run" holds 2 checkpoints (epoch-000.onnx, epoch-001.onnx)`},
		{"forced on one audit", models[:1], report.Options{Models: true}, false, "a model set takes two audits or more"},
		{"unknown baseline", models, report.Options{Baseline: "c"}, false, `no audit is labelled "c"`},
		{"baseline of a training run", run, report.Options{Baseline: "run"}, false, "not a model set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			obs, err := report.Write(ctx, tc.audits, t.TempDir(), tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := obs.ModelSet != nil; got != tc.set {
				t.Fatalf("a model set: %v, want %v", got, tc.set)
			}
			if !tc.set {
				return
			}
			if want := cmp.Or(tc.opts.Baseline, tc.audits[0].Label); obs.ModelSet.Baseline != want || len(obs.ModelSet.Pairs) != len(tc.audits)-1 {
				t.Errorf("baseline %q with %d pairs, want %q with %d", obs.ModelSet.Baseline, len(obs.ModelSet.Pairs), want, len(tc.audits)-1)
			}
			if len(obs.Trend) != 0 || len(obs.AdversarialRatio) != 0 {
				t.Errorf("a model set has %d trends and %d ratios to standard training", len(obs.Trend), len(obs.AdversarialRatio))
			}
		})
	}
}
