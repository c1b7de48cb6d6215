package auditor

import (
	"strings"
	"testing"
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
