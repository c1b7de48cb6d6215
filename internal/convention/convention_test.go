package convention

import (
	"errors"
	"slices"
	"testing"

	"github.com/marginaudit/marginaudit/internal/option"
)

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want [2]float64
		ok   bool
	}{
		{"0,1", [2]float64{0, 1}, true},
		{" -1 , 1 ", [2]float64{-1, 1}, true},
		{"0,255", [2]float64{0, 255}, true},
		{"1,0", [2]float64{}, false},
		{"0,0", [2]float64{}, false},
		{"0", [2]float64{}, false},
		{"0,1,2", [2]float64{}, false},
		{"0,inf", [2]float64{}, false},
		{"nan,1", [2]float64{}, false},
		{"", [2]float64{}, false},
	} {
		got, err := ParseRange(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRange(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && FormatRange(got) != FormatRange(tc.want) {
			t.Errorf("FormatRange(%v) = %q", got, FormatRange(got))
		}
	}
}

func TestParseNormalization(t *testing.T) {
	for _, tc := range []struct {
		in        string
		mean, std []float64
		field     string // the field an error names; "" when none
		bad       bool
	}{
		{"none", nil, nil, "", false},
		{"", nil, nil, "", false},
		{"mean=0.5;std=0.25", []float64{0.5}, []float64{0.25}, "", false},
		{"mean=0.4914,0.4822,0.4465; std=0.247,0.243,0.261", []float64{0.4914, 0.4822, 0.4465}, []float64{0.247, 0.243, 0.261}, "", false},
		{"mean=0.5;std=0.2,0.3,0.4", []float64{0.5}, []float64{0.2, 0.3, 0.4}, "", false},
		{"mean=0.5", nil, nil, "std", true},
		{"std=0.5", nil, nil, "mean", true},
		{"mean=1,2,3;std=1,2", nil, nil, "std", true},
		{"mean=0;std=0", nil, nil, "std", true},
		{"mean=0;std=-1", nil, nil, "std", true},
		{"mean=nan;std=1", nil, nil, "", true},
		{"mean=0;scale=1", nil, nil, "", true},
		{"0.5,0.25", nil, nil, "", true},
	} {
		mean, std, err := ParseNormalization(tc.in)
		if (err != nil) != tc.bad || !slices.Equal(mean, tc.mean) || !slices.Equal(std, tc.std) {
			t.Errorf("ParseNormalization(%q) = %v, %v, %v", tc.in, mean, std, err)
			continue
		}
		var oe *option.Error
		if tc.field != "" && (!errors.As(err, &oe) || oe.Field != tc.field || !errors.Is(err, ErrNormalization)) {
			t.Errorf("ParseNormalization(%q): %v, want an error naming %s", tc.in, err, tc.field)
		}
	}
}

// FuzzParseNormalization checks that what ParseNormalization accepts is a
// valid normalisation and that ParseRange's ranges are ordered and finite.
func FuzzParseNormalization(f *testing.F) {
	for _, s := range []string{"none", "mean=0.5;std=0.25", "mean=1,2,3;std=1,2", "0,1", "-1,1", "1e308,inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if mean, std, err := ParseNormalization(s); err == nil {
			if err := CheckNormalization(mean, std); err != nil {
				t.Errorf("ParseNormalization(%q) accepted %v, %v: %v", s, mean, std, err)
			}
		}
		if r, err := ParseRange(s); err == nil {
			back, err := ParseRange(FormatRange(r))
			if err != nil || back != r || !(r[0] < r[1]) {
				t.Errorf("ParseRange(%q) = %v; round trip %v, %v", s, r, back, err)
			}
		}
	})
}
