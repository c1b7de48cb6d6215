package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/report"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// The report of three audits of single models reads as a model comparison:
// the CI example's model and two copies with noisy first-layer weights,
// all without the epoch in their metadata (models from elsewhere),
// audited on the same eight images, and a fourth audit of the model on
// six of them, which cannot be paired with the first. Audits of
// checkpoints with an epoch form a model set only with --models.
func TestReportModelSet(t *testing.T) {
	orttest.Require(t)
	tmp := t.TempDir()
	trained := "../../examples/ci/model.onnx" // epoch 3 in its metadata
	base, noisy, noisier := filepath.Join(tmp, "base", "model.onnx"), filepath.Join(tmp, "noisy", "model.onnx"), filepath.Join(tmp, "noisier", "model.onnx")
	perturbFirstLayer(t, trained, noisy, 0.5)
	perturbFirstLayer(t, trained, noisier, 1)
	for _, m := range []string{noisy, noisier} {
		withoutEpoch(t, m, m)
	}
	withoutEpoch(t, trained, base)
	audit := func(model, name, n string) string {
		t.Helper()
		out := filepath.Join(tmp, "audit-"+name)
		_, stderr, code := runCLI(t, "-q", "audit", model, "--out", out, "--threads", "1", "--images", "../../examples/ci/images.npy",
			"--labels", "../../examples/ci/labels.npy", "-n", n, "--norm", "l2", "--pgd-eps", "0.05", "--pgd-steps", "3")
		if code != 0 {
			t.Fatalf("audit of %s exited %d: %s", model, code, stderr)
		}
		return out
	}
	dirs := []string{audit(base, "base", "8"), audit(noisy, "noisy", "8"), audit(noisier, "noisier", "8"), audit(base, "fewer", "6")}
	out := filepath.Join(tmp, "report")
	stdout, stderr, code := runCLI(t, "report", "base="+dirs[0], "noisy="+dirs[1], "noisier="+dirs[2], "fewer="+dirs[3], "--out", out)
	if code != 0 {
		t.Fatalf("report exited %d: %s", code, stderr)
	}
	for _, want := range []string{
		"Margins per model", "base, test split, L2: ", "Each model paired with base on the same images",
		"noisy vs base, test split, L2 margin: ", "Wilcoxon p", "noisier vs base, test split, accuracy: ", "McNemar p",
		"noisy vs base, test split, PGD L∞ robust accuracy at ε = 0.05: ",
		"fewer vs base: not compared, ", "the 4 audits are a model set",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the report's text lacks %q:\n%s", want, stdout)
		}
	}
	obs := readObservations(t, out)
	page, err := os.ReadFile(filepath.Join(out, report.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	// Every sentence, caption, title, note and heading speaks of models:
	// none of epochs, training or transitions.
	if obs.ModelSet == nil || obs.ModelSet.Baseline != "base" || len(obs.ModelSet.Pairs) != 3 {
		t.Fatalf("summary.json's model_set is %+v, want the baseline base paired with 3 models", obs.ModelSet)
	}
	texts := []string{stdout, pageText(string(page))}
	for _, f := range obs.Figures {
		texts = append(texts, f.Title, f.Caption)
	}
	texts = append(texts, obs.Notes...)
	for _, p := range obs.ModelSet.Pairs {
		texts = append(texts, p.Reason)
	}
	bad := regexp.MustCompile(`(?i)epoch|training|trained|transition|adversarial|standard (training|model|audit)`)
	for _, s := range texts {
		if m := bad.FindString(s); m != "" {
			t.Errorf("the report says %q in %q", m, excerpt(s, m))
		}
	}
	for i, p := range obs.ModelSet.Pairs {
		if want := i < 2; p.Comparable != want {
			t.Errorf("pair %s vs base: comparable %v, want %v (reason %q)", p.Model, p.Comparable, want, p.Reason)
		}
	}
	if r := obs.ModelSet.Pairs[2].Reason; !strings.Contains(r, "other settings or on other images: n: 8 in the baseline, 6 in the candidate") {
		t.Errorf("the fewer images' pair is not compared because %q, want the numbers of images named", r)
	}
	kinds := map[string]int{}
	for _, f := range obs.Figures {
		kinds[f.Kind]++
		anchor := strings.TrimSuffix(strings.TrimPrefix(f.PNG, report.FiguresDir+"/"), ".png")
		if n := strings.Count(string(page), `<figure id="`+anchor+`">`); n != 1 {
			t.Errorf("index.html shows %s %d times, want once", f.PNG, n)
		}
	}
	if kinds[report.FigModels] != 1 || kinds[report.FigDistribution] != 1 || kinds[report.FigRobustness] != 1 || kinds[report.FigMargin] != 0 || kinds[report.FigSankey] != 0 {
		t.Errorf("figures by kind %v, want one models, distribution and robustness figure, no margin per epoch, no transitions", kinds)
	}

	// A checkpoint with an epoch is one of a training run, unless --models.
	withEpoch := audit(trained, "trained", "8")
	for _, tc := range []struct {
		flags []string
		set   bool
	}{{nil, false}, {[]string{"--models"}, true}} {
		r := filepath.Join(tmp, "report-trained"+strings.Join(tc.flags, ""))
		_, stderr, code := runCLI(t, append([]string{"report", "trained=" + withEpoch, "noisy=" + dirs[1], "--out", r}, tc.flags...)...)
		if code != 0 {
			t.Fatalf("report %v exited %d: %s", tc.flags, code, stderr)
		}
		if got := readObservations(t, r).ModelSet != nil; got != tc.set {
			t.Errorf("report %v of a checkpoint with an epoch and a model: a model set %v, want %v", tc.flags, got, tc.set)
		}
	}

	// --baseline pairs with another model; a missing one is an error.
	stdout, stderr, code = runCLI(t, "report", "base="+dirs[0], "noisy="+dirs[1], "--baseline", "noisy", "--out", filepath.Join(tmp, "r2"))
	if code != 0 || !strings.Contains(stdout, "base vs noisy, test split, L2 margin: ") {
		t.Errorf("report --baseline noisy exited %d:\n%s%s", code, stdout, stderr)
	}
	if _, stderr, code := runCLI(t, "report", "base="+dirs[0], "noisy="+dirs[1], "--baseline", "nothing", "--out", filepath.Join(tmp, "r3")); code != 1 || !strings.Contains(stderr, `no audit is labelled "nothing"`) {
		t.Errorf("report --baseline nothing exited %d: %s", code, stderr)
	}
}

// readObservations reads the summary.json of the report in dir.
func readObservations(t *testing.T, dir string) *report.Observations {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, report.SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	obs, err := report.ReadObservations(f, report.SummaryFile)
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

// withoutEpoch writes the model src to dst without the epoch in its
// metadata, as a model made elsewhere.
func withoutEpoch(t *testing.T, src, dst string) {
	t.Helper()
	m, err := onnxgrad.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	m.MetadataProps = slices.DeleteFunc(m.MetadataProps, func(p *onnxpb.StringStringEntryProto) bool { return p.GetKey() == "epoch" })
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := onnxgrad.Save(dst, m); err != nil {
		t.Fatal(err)
	}
}

// pageText is the text of an HTML page without its tags.
func pageText(html string) string {
	return regexp.MustCompile(`<[^>]*>`).ReplaceAllString(html, " ")
}

// excerpt returns the words around the first occurrence of m in s.
func excerpt(s, m string) string {
	i := strings.Index(s, m)
	return s[max(0, i-60):min(len(s), i+len(m)+60)]
}
