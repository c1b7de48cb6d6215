// Package convention reads and writes a model's input convention as
// checkpoints' metadata and the command line spell it: the pixel range
// "lo,hi" and the normalisation "mean=a,b,c;std=d,e,f" (or "none"), lists
// of finite numbers separated by commas. It is the one parser of these
// forms for the trainer, the auditor and the CLI.
package convention

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/marginaudit/marginaudit/internal/option"
)

// Metadata keys of the input convention in a checkpoint's metadata_props,
// and of the data set whose images follow it.
const (
	KeyRange         = "input_range"   // "lo,hi", e.g. "0,1"
	KeyNormalization = "normalization" // "none", or "mean=a,b,c;std=d,e,f"
	KeyDataset       = "dataset"       // the data set it was trained on, e.g. "mnist"
)

// None is the normalisation of inputs fed as they are.
const None = "none"

// ParseFloats parses finite numbers separated by commas, "a,b,c"; a blank
// s gives nil.
func ParseFloats(s string) ([]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%q is not a finite number", strings.TrimSpace(f))
		}
		out = append(out, v)
	}
	return out, nil
}

// ParseRange parses a pixel range "lo,hi" with lo < hi.
func ParseRange(s string) ([2]float64, error) {
	v, err := ParseFloats(s)
	if err != nil || len(v) != 2 || !(v[0] < v[1]) {
		return [2]float64{}, fmt.Errorf("%q: want \"lo,hi\", two finite numbers with lo < hi", s)
	}
	return [2]float64{v[0], v[1]}, nil
}

// FormatRange writes r as ParseRange reads it.
func FormatRange(r [2]float64) string { return formatFloats(r[:]) }

// FormatNormalization writes a normalisation as ParseNormalization reads
// it: "none" without one, else "mean=a,b,c;std=d,e,f".
func FormatNormalization(mean, std []float64) string {
	if len(mean) == 0 && len(std) == 0 {
		return None
	}
	return "mean=" + formatFloats(mean) + ";std=" + formatFloats(std)
}

// ParseNormalization parses "mean=a,b,c;std=d,e,f" and checks it with
// CheckNormalization; "none" and "" give nil, nil.
func ParseNormalization(s string) (mean, std []float64, err error) {
	if t := strings.TrimSpace(s); t == "" || t == None {
		return nil, nil, nil
	}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, nil, fmt.Errorf("%q: want \"mean=a,b,c;std=d,e,f\" or \"none\"", s)
		}
		vals, err := ParseFloats(v)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", k, err)
		}
		switch strings.TrimSpace(k) {
		case "mean":
			mean = vals
		case "std":
			std = vals
		default:
			return nil, nil, fmt.Errorf("unknown key %q (want mean and std)", k)
		}
	}
	if err := CheckNormalization(mean, std); err != nil {
		return nil, nil, err
	}
	return mean, std, nil
}

// ErrNormalization is wrapped by CheckNormalization's errors.
var ErrNormalization = errors.New("bad normalisation")

// CheckNormalization checks a per-channel normalisation (x − mean)/std:
// none (both empty) or both given, as many means as deviations (or one of
// either, for every channel), finite means and finite deviations > 0. Its
// errors are *option.Error values naming "mean" or "std".
func CheckNormalization(mean, std []float64) error {
	bad := func(field string, v []float64, want string) error {
		return &option.Error{Kind: ErrNormalization, Field: field, Value: formatFloats(v), Want: want}
	}
	switch {
	case slices.ContainsFunc(mean, func(m float64) bool { return math.IsNaN(m) || math.IsInf(m, 0) }):
		return bad("mean", mean, "finite values")
	case slices.ContainsFunc(std, func(s float64) bool { return !(s > 0) || math.IsInf(s, 0) }):
		return bad("std", std, "finite values > 0")
	case len(mean) == 0 && len(std) == 0:
		return nil
	case len(mean) == 0:
		return bad("mean", nil, "a mean for the std given")
	case len(std) == 0:
		return bad("std", nil, "a std for the mean given")
	case len(mean) != len(std) && len(mean) != 1 && len(std) != 1:
		return bad("std", std, fmt.Sprintf("%d values, as many as the means (or one for every channel)", len(mean)))
	}
	return nil
}

// formatFloats writes v as ParseFloats reads it, "(none)" when empty.
func formatFloats(v []float64) string {
	if len(v) == 0 {
		return "(none)"
	}
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	return strings.Join(s, ",")
}
