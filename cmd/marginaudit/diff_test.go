package main

import (
	"encoding/json"
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/compare"
	"github.com/marginaudit/marginaudit/auditor/compare/comparetest"
)

// diffAudits writes three audit folders of 30 images: base and same hold
// the same model, weaker one whose margins are 70% as large, with one
// image misclassified and fewer robust images; and a folder "both" holding
// the baseline and the weaker model as epochs 0 and 1.
func diffAudits(t *testing.T) (base, same, weaker, both string) {
	dir := t.TempDir()
	base, same, weaker, both = filepath.Join(dir, "base"), filepath.Join(dir, "same"), filepath.Join(dir, "weaker"), filepath.Join(dir, "both")
	margin := func(f float64) func(int, auditor.Norm) float64 {
		return func(i int, n auditor.Norm) float64 {
			if i == 7 && f < 1 {
				return math.NaN() // the attack failed on the weaker model
			}
			return f * (1 + float64(i%13)/10) / map[auditor.Norm]float64{auditor.L2: 1, auditor.LInf: 8}[n]
		}
	}
	good := comparetest.Model{Checkpoint: "model.onnx", Margin: margin(1), Correct: func(i int) bool { return i%10 != 3 }, Robust: 20}
	bad := comparetest.Model{Checkpoint: "weak.onnx", Epoch: 1, Margin: margin(0.7), Correct: func(i int) bool { return i%10 != 3 && i != 4 }, Robust: 12}
	s := comparetest.Settings(30)
	comparetest.Write(t, base, s, good)
	comparetest.Write(t, same, s, good)
	comparetest.Write(t, weaker, s, bad)
	comparetest.Write(t, both, s, good, bad)
	return base, same, weaker, both
}

// TestDiffGolden checks the table and the exit status of `diff`, with the
// temporary folders replaced by their names.
func TestDiffGolden(t *testing.T) {
	base, same, weaker, both := diffAudits(t)
	root := filepath.Dir(base) + string(filepath.Separator)
	gates := "--fail-on=mean_margin_drop>5%,robust_accuracy_drop>0.02,p<0.01"
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"help_diff", []string{"help", "diff"}, 0},
		{"diff_same", []string{"diff", base, same, gates}, 0},
		{"diff_weaker", []string{"diff", base, weaker, gates}, 1},
		{"diff_one_folder", []string{"diff", both, "--fail-on", "accuracy_drop>0.05"}, 0},
		{"diff_models_named", []string{"diff", both + "@weak", both + "@model.onnx", "--fail-on", "dropped_share>0.5"}, 0},
		{"diff_usage_gate", []string{"diff", base, same, "--fail-on", "mean_margin_drop>5%,margins<1"}, 2},
		{"diff_usage_args", []string{"diff", base, same, weaker}, 2},
		{"diff_usage_one_model", []string{"diff", base}, 2},
		{"diff_no_model", []string{"diff", base, both + "@epoch-009"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			checkGolden(t, tc.name+".stdout", strings.ReplaceAll(stdout, root, ""))
			checkGolden(t, tc.name+".stderr", strings.ReplaceAll(stderr, root, ""))
		})
	}
}

func TestDiffRefusesMismatch(t *testing.T) {
	base, _, _, _ := diffAudits(t)
	other := filepath.Join(t.TempDir(), "other")
	s := comparetest.Settings(30)
	s.Seed = 2
	comparetest.Write(t, other, s, comparetest.Model{Checkpoint: "model.onnx", Margin: func(int, auditor.Norm) float64 { return 1 }, Correct: func(int) bool { return true }})
	_, stderr, code := runCLI(t, "diff", base, other)
	if code != 1 || !strings.Contains(stderr, "seed: 1 in the baseline, 2 in the candidate") {
		t.Errorf("exit status %d, stderr %q; want 1 naming the seed", code, stderr)
	}
}

func TestDiffJSONAndJUnit(t *testing.T) {
	base, _, weaker, _ := diffAudits(t)
	junit := filepath.Join(t.TempDir(), "gates.xml")
	stdout, stderr, code := runCLI(t, "diff", base, weaker, "--json", "--junit", junit, "--fail-on", "mean_margin_drop>5%,accuracy_drop>0.5")
	if code != 1 || !strings.Contains(stderr, "gate mean_margin_drop>5% tripped (mean_margin_drop = 30% at test l2)") || strings.Contains(stderr, "accuracy_drop>0.5") {
		t.Errorf("exit status %d, stderr %q; want 1 naming mean_margin_drop>5%% only", code, stderr)
	}
	var res compare.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if res.Format != compare.ResultFormat || len(res.Margins) != 2 || len(res.Gates) != 2 || res.Gates[0].Status != compare.Fail {
		t.Errorf("JSON result %+v", res)
	}
	data, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Failures int `xml:"failures,attr"`
		Suite    struct {
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", junit, err)
	}
	if doc.Failures != 1 || len(doc.Suite.Cases) != 2 || doc.Suite.Cases[0].Name != "mean_margin_drop>5%" || doc.Suite.Cases[0].Failure == nil {
		t.Errorf("JUnit %+v, want the first of two gates failed", doc)
	}
}

func TestSplitModel(t *testing.T) {
	dir := t.TempDir()
	at := filepath.Join(dir, "audit@v2")
	if err := os.Mkdir(at, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ arg, dir, model string }{
		{at, at, ""},                   // a folder whose name has an @
		{at + "@m.onnx", at, "m.onnx"}, // ... and a model of it
		{filepath.Join(dir, "a@b"), filepath.Join(dir, "a"), "b"}, // no such folder: split at the last @
		{"@x", "@x", ""}, // nothing before the @
	} {
		if d, m := splitModel(tc.arg); d != tc.dir || m != tc.model {
			t.Errorf("splitModel(%q) = %q, %q; want %q, %q", tc.arg, d, m, tc.dir, tc.model)
		}
	}
}
