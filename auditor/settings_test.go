package auditor

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/option"
)

func TestDiffSettings(t *testing.T) {
	a := testSettings()
	if d, err := DiffSettings(a, testSettings()); err != nil || d != nil {
		t.Fatalf("equal settings differ: %v %v", d, err)
	}
	b := testSettings()
	b.N = 1000
	b.Norms = []Norm{L2}
	b.PGD.Eps = []float64{0.1}
	b.PGD.RandomStart = false
	d, err := DiffSettings(a, b)
	if err != nil {
		t.Fatal(err)
	}
	want := []SettingDiff{
		{"n", "4", "1000"},
		{"norms", `["l2","linf"]`, `["l2"]`},
		{"pgd.eps", "[0.1,0.3]", "[0.1]"},
		{"pgd.random_start", "true", "false"},
	}
	if len(d) != len(want) {
		t.Fatalf("diffs %v, want %v", d, want)
	}
	for i := range want {
		if d[i] != want[i] {
			t.Errorf("diff %d = %v, want %v", i, d[i], want[i])
		}
	}

	// The detected layout is stored as no layout, so that audits made
	// before layouts were known resume; a given one is stored.
	l := testSettings()
	if d, _ := DiffSettings(a, l); d != nil {
		t.Errorf("no layout and the default differ: %v", d)
	}
	l.Layout = "nhwc"
	if d, _ := DiffSettings(a, l); len(d) != 1 || d[0] != (SettingDiff{"layout", absent, `"nhwc"`}) {
		t.Errorf("layout nhwc: diffs %v", d)
	}

	// An empty list is no list.
	c := testSettings()
	c.Mean = []float64{}
	if d, _ := DiffSettings(a, c); d != nil {
		t.Errorf("empty and nil mean differ: %v", d)
	}
}

func TestDiffJSONAbsent(t *testing.T) {
	d, err := diffJSON([]byte(`{"n": 4, "old": true, "pgd": {"steps": 10}}`), []byte(`{"n": 4, "pgd": {"steps": 10, "new": 1}}`))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, x := range d {
		got = append(got, x.String())
	}
	want := "old: true before, (absent) now | pgd.new: (absent) before, 1 now"
	if s := strings.Join(got, " | "); s != want {
		t.Errorf("got %q, want %q", s, want)
	}
	if _, err := diffJSON([]byte(`[1]`), []byte(`{}`)); err == nil {
		t.Error("a JSON array compared as settings")
	}
}

func TestSettingsErrorMessage(t *testing.T) {
	e := &SettingsError{Path: "out/settings.json", Diffs: []SettingDiff{{"n", "4", "1000"}, {"norms", `["l2"]`, `["linf"]`}}}
	want := `auditor: out/settings.json: the results there were computed with other settings (n: 4 before, 1000 now; norms: ["l2"] before, ["linf"] now)`
	if e.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", e.Error(), want)
	}
}

// settings.json as audits before attack owned the parameters wrote it
// (testSettings, MarshalIndent): the same JSON names, in the same order,
// so that those audits resume.
const storedSettings = `{
  "data": "mnist",
  "splits": [
    "test",
    "train"
  ],
  "n": 4,
  "sample": "first",
  "seed": 1,
  "range": [
    0,
    1
  ],
  "mean": null,
  "std": null,
  "norms": [
    "l2",
    "linf"
  ],
  "overshoot": 0.02,
  "max_iter": 50,
  "candidates": 0,
  "retries": 10,
  "refine": true,
  "fmn_steps": 25,
  "pgd": {
    "norms": [
      "linf"
    ],
    "eps": [
      0.1,
      0.3
    ],
    "steps": 40,
    "step_size": 0.1,
    "random_start": true
  }
}`

func TestSettingsJSONNames(t *testing.T) {
	b, err := json.MarshalIndent(testSettings().canonical(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != storedSettings {
		t.Errorf("settings.json changed:\n%s\nwant\n%s", b, storedSettings)
	}
	var back Settings
	if err := json.Unmarshal([]byte(storedSettings), &back); err != nil {
		t.Fatal(err)
	}
	if d, err := DiffSettings(testSettings(), &back); err != nil || d != nil {
		t.Errorf("stored settings read back with differences %v, %v", d, err)
	}
}

// TestBisectionSettingsDiffer: an audit that stored "refine": true before
// FMN refined by bisection, and does not resume as an FMN audit; one
// stored without refinement resumes.
func TestBisectionSettingsDiffer(t *testing.T) {
	old := strings.Replace(storedSettings, "  \"fmn_steps\": 25,\n", "", 1)
	if old == storedSettings {
		t.Fatal("fmn_steps not found in the stored settings")
	}
	var s Settings
	if err := json.Unmarshal([]byte(old), &s); err != nil {
		t.Fatal(err)
	}
	d, err := DiffSettings(&s, testSettings())
	if err != nil || len(d) != 1 || d[0].String() != "fmn_steps: (absent) before, 25 now" {
		t.Errorf("bisection settings differ by %v, %v; want fmn_steps only", d, err)
	}
	unrefined := strings.Replace(old, `"refine": true`, `"refine": false`, 1)
	if err := json.Unmarshal([]byte(unrefined), &s); err != nil {
		t.Fatal(err)
	}
	now := testSettings()
	now.RefineParams = attack.RefineParams{}
	if d, err := DiffSettings(&s, now); err != nil || d != nil {
		t.Errorf("unrefined settings differ by %v, %v", d, err)
	}
}

func TestSettingsValidate(t *testing.T) {
	for _, tc := range []struct {
		field string // the setting named; "" when valid
		mod   func(*Settings)
	}{
		{"", func(*Settings) {}},
		{"", func(s *Settings) { s.PGD = PGDSettings{} }},
		{"", func(s *Settings) { s.Range = [2]float64{} }},
		{"", func(s *Settings) { s.Mean, s.Std = []float64{0.5}, []float64{0.2, 0.3, 0.4} }},
		{"data", func(s *Settings) { s.Data = "" }},
		{"splits", func(s *Settings) { s.Splits = nil }},
		{"splits", func(s *Settings) { s.Splits = []Split{Test, Test} }},
		{"splits", func(s *Settings) { s.Splits = []Split{"val"} }},
		{"n", func(s *Settings) { s.N = 0 }},
		{"sample", func(s *Settings) { s.Sample = "last" }},
		{"range", func(s *Settings) { s.Range = [2]float64{1, 0} }},
		{"range", func(s *Settings) { s.Range = [2]float64{0, math.Inf(1)} }},
		{"std", func(s *Settings) { s.Mean, s.Std = []float64{0.5}, []float64{0} }},
		{"std", func(s *Settings) { s.Mean, s.Std = []float64{0.5}, []float64{-1} }},
		{"std", func(s *Settings) { s.Mean, s.Std = []float64{1, 2, 3}, []float64{1, 2} }},
		{"std", func(s *Settings) { s.Mean = []float64{0.5} }},
		{"layout", func(s *Settings) { s.Layout = "chw" }},
		{"norms", func(s *Settings) { s.Norms = []Norm{L2, L2} }},
		{"norms", func(s *Settings) { s.Norms = nil }},
		{"overshoot", func(s *Settings) { s.Overshoot = math.NaN() }},
		{"max_iter", func(s *Settings) { s.MaxIter = -1 }},
		{"candidates", func(s *Settings) { s.Candidates = 1 }},
		{"fmn_steps", func(s *Settings) { s.RefineParams.Steps = 0 }},
		{"certify_steps", func(s *Settings) { s.CertifySettings = CertifySettings{Certify: true} }},
		{"certify_steps", func(s *Settings) { s.CertifySettings = CertifySettings{Certify: true, Steps: 61} }},
		{"certify_steps", func(s *Settings) { s.CertifySettings = CertifySettings{Steps: 16} }},
		{"", func(s *Settings) { s.CertifySettings = DefaultCertifySettings() }},
		{"fmn_steps", func(s *Settings) { s.RefineParams = attack.RefineParams{Steps: 3} }},
		{"retries", func(s *Settings) { s.Retries = -1 }},
		{"pgd.eps", func(s *Settings) { s.PGD.Eps = []float64{-1} }},
		{"pgd.eps", func(s *Settings) { s.PGD.Eps = []float64{0.1, 0.1} }},
		{"pgd.eps", func(s *Settings) { s.PGD.Eps = nil }},
		{"pgd.norms", func(s *Settings) { s.PGD.Norms = []Norm{"l1"} }},
		{"pgd.steps", func(s *Settings) { s.PGD.Steps = 0 }},
		{"pgd.step_size", func(s *Settings) { s.PGD.Step = -0.1 }},
	} {
		s := testSettings()
		tc.mod(s)
		err := s.Validate()
		var oe *option.Error
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("valid settings %+v: %v", s, err)
		case tc.field != "" && (!errors.Is(err, ErrSettings) || !errors.As(err, &oe) || oe.Field != tc.field):
			t.Errorf("%s: %v, want ErrSettings naming %s", tc.field, err, tc.field)
		}
	}
}
