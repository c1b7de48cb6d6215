package dataset

import (
	"errors"
	"testing"
)

// tiny returns a dataset of n 2×1×2 images whose values are their index in
// Images, and labels i mod 3.
func tiny(n int) *Dataset {
	d := &Dataset{Name: "t", Split: "train", N: n, C: 2, H: 1, W: 2, Classes: 3}
	for i := range n * 4 {
		d.Images = append(d.Images, float32(i))
	}
	for i := range n {
		d.Labels = append(d.Labels, i%3)
	}
	return d
}

func TestImage(t *testing.T) {
	d := tiny(3)
	img := d.Image(1)
	if len(img) != 4 || cap(img) != 4 || img[0] != 4 || img[3] != 7 {
		t.Fatalf("Image(1) = %v (cap %d)", img, cap(img))
	}
	img[0] = -1 // shares memory
	if d.Images[4] != -1 {
		t.Error("Image copied its data")
	}
	_ = append(img, 99) // must not overwrite image 2
	if d.Images[8] != 8 {
		t.Error("append to Image(1) overwrote Image(2)")
	}
	for _, i := range []int{-1, 3} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Image(%d) did not panic", i)
				}
			}()
			d.Image(i)
		}()
	}
}

func TestSubsetHead(t *testing.T) {
	d := tiny(4)
	s := d.Subset([]int{3, 0, 3})
	if s.N != 3 || len(s.Images) != 12 || s.Name != "t" || s.Split != "train" || s.Classes != 3 || s.C != 2 {
		t.Fatalf("Subset: %+v", s)
	}
	if s.Image(0)[0] != 12 || s.Image(1)[0] != 0 || s.Labels[0] != 0 || s.Labels[2] != 0 {
		t.Errorf("Subset images %v labels %v", s.Images, s.Labels)
	}
	s.Images[0] = -5
	if d.Images[12] == -5 {
		t.Error("Subset shares memory")
	}
	if err := s.Validate(); err != nil {
		t.Error(err)
	}

	tests := []struct{ n, want int }{{0, 0}, {2, 2}, {4, 4}, {10, 4}}
	for _, tt := range tests {
		h := d.Head(tt.n)
		if h.N != tt.want || len(h.Images) != tt.want*4 || len(h.Labels) != tt.want {
			t.Errorf("Head(%d): N=%d, %d values, %d labels", tt.n, h.N, len(h.Images), len(h.Labels))
		}
		if err := h.Validate(); err != nil {
			t.Errorf("Head(%d): %v", tt.n, err)
		}
	}
	h := d.Head(1)
	h.Images[0] = 42
	if d.Images[0] != 42 {
		t.Error("Head copied its data")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Head(-1) did not panic")
			}
		}()
		d.Head(-1)
	}()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Subset with index 4 of 4 did not panic")
			}
		}()
		d.Subset([]int{4})
	}()
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Dataset)
		valid bool
	}{
		{"ok", func(*Dataset) {}, true},
		{"empty", func(d *Dataset) { *d = *d.Head(0) }, true},
		{"short images", func(d *Dataset) { d.Images = d.Images[1:] }, false},
		{"short labels", func(d *Dataset) { d.Labels = d.Labels[1:] }, false},
		{"label = classes", func(d *Dataset) { d.Labels[1] = 3 }, false},
		{"negative label", func(d *Dataset) { d.Labels[0] = -1 }, false},
		{"zero width", func(d *Dataset) { d.W = 0 }, false},
		{"no classes", func(d *Dataset) { d.Classes = 0 }, false},
	}
	for _, tt := range tests {
		d := tiny(3)
		tt.edit(d)
		err := d.Validate()
		if tt.valid != (err == nil) || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
	}
}
