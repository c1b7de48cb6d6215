package dataset

import (
	"errors"
	"math"
	"os"
	"testing"
)

// loadReal loads a real dataset from its default location. Missing data
// skips the test, except in CI (the CI environment variable is set), where
// the data must be installed and its absence fails the test.
func loadReal(tb testing.TB, name, split string) *Dataset {
	tb.Helper()
	d, err := Load(name, split, "")
	if errors.Is(err, ErrNotFound) {
		if os.Getenv("CI") != "" {
			tb.Fatalf("CI is set but the data is missing: %v", err)
		}
		tb.Skipf("skipping: %v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func TestRealData(t *testing.T) {
	tests := []struct {
		name, split string
		n           int
		first       []int // first labels, read from the files with xxd
		mean, std   float64
	}{
		// Mean and standard deviation of the training pixels: the constants
		// of the PyTorch MNIST example, transforms.Normalize((0.1307,), (0.3081,)).
		{"mnist", "train", 60000, []int{5, 0, 4, 1, 9, 2, 1, 3, 1, 4}, 0.1307, 0.3081},
		{"mnist", "test", 10000, []int{7, 2, 1, 0, 4, 1, 4, 9, 5, 9}, 0, 0},
		// Fashion-MNIST's widely quoted training statistics: 0.2860, 0.3530.
		{"fashion-mnist", "train", 60000, []int{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, 0.2860, 0.3530},
		{"fashion-mnist", "test", 10000, []int{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.split, func(t *testing.T) {
			d := loadReal(t, tt.name, tt.split)
			if err := d.Validate(); err != nil {
				t.Fatal(err)
			}
			if d.N != tt.n || d.C != 1 || d.H != 28 || d.W != 28 || d.Classes != 10 {
				t.Fatalf("N=%d %d×%d×%d, %d classes; want N=%d 1×28×28, 10 classes", d.N, d.C, d.H, d.W, d.Classes, tt.n)
			}
			for i, want := range tt.first {
				if d.Labels[i] != want {
					t.Fatalf("first labels %v, want %v", d.Labels[:len(tt.first)], tt.first)
				}
			}
			lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
			var sum, sq float64
			for _, v := range d.Images {
				lo, hi = min(lo, v), max(hi, v)
				sum += float64(v)
				sq += float64(v) * float64(v)
			}
			if lo != 0 || hi != 1 {
				t.Errorf("pixels in [%v, %v], want [0, 1] with both ends present", lo, hi)
			}
			mean := sum / float64(len(d.Images))
			std := math.Sqrt(sq/float64(len(d.Images)) - mean*mean)
			t.Logf("pixel mean %.6f, std %.6f", mean, std)
			// The reference values have 4 decimals: allow half a unit of the last.
			if tt.mean != 0 && (math.Abs(mean-tt.mean) > 5e-5 || math.Abs(std-tt.std) > 5e-5) {
				t.Errorf("pixel mean %.5f, std %.5f; want %.4f, %.4f", mean, std, tt.mean, tt.std)
			}
			counts := make([]int, d.Classes)
			for _, l := range d.Labels {
				counts[l]++
			}
			for c, k := range counts {
				if k == 0 {
					t.Errorf("class %d has no images", c)
				}
			}
		})
	}
}

// BenchmarkLoadMNISTTrain measures Load("mnist", "train", ""): gunzip 9.9 MB
// into 47 MB of pixels and convert them to float32.
func BenchmarkLoadMNISTTrain(b *testing.B) {
	loadReal(b, "mnist", "train")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load("mnist", "train", ""); err != nil {
			b.Fatal(err)
		}
	}
}
