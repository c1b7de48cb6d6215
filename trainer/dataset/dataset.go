package dataset

import "fmt"

// A Dataset is a set of labelled images held in memory.
//
// Images holds N images in NCHW order (image, channel, row, column), each
// pixel a float32 in [0, 1]: image i is Images[i·C·H·W : (i+1)·C·H·W].
// Labels holds N class indices in [0, Classes).
type Dataset struct {
	Name    string    // canonical dataset name ("mnist", "fashion-mnist", "cifar10"), or "" when unknown
	Split   string    // "train" or "test", or "" when unknown
	Images  []float32 // N·C·H·W pixels in [0, 1], NCHW
	Labels  []int     // N class indices in [0, Classes)
	N       int       // number of images
	C       int       // channels per image (1 for MNIST, 3 for CIFAR-10)
	H       int       // image height in pixels
	W       int       // image width in pixels
	Classes int       // number of classes
}

// ImageSize returns the number of values in one image, C·H·W.
func (d *Dataset) ImageSize() int { return d.C * d.H * d.W }

// Image returns image i as a sub-slice of d.Images, C·H·W values, without
// copying: writes through it change the dataset. Its capacity ends with the
// image, so appending to it never overwrites the next image. It panics if i
// is out of range.
func (d *Dataset) Image(i int) []float32 {
	if i < 0 || i >= d.N {
		panic(fmt.Sprintf("dataset: image index %d out of range [0, %d)", i, d.N))
	}
	k := d.ImageSize()
	return d.Images[i*k : (i+1)*k : (i+1)*k]
}

// Subset returns a new dataset holding copies of the images and labels at
// indices, in that order; indices may repeat. It panics if an index is out of
// range.
func (d *Dataset) Subset(indices []int) *Dataset {
	k := d.ImageSize()
	s := d.header(len(indices))
	s.Images = make([]float32, len(indices)*k)
	s.Labels = make([]int, len(indices))
	for j, i := range indices {
		copy(s.Images[j*k:], d.Image(i))
		s.Labels[j] = d.Labels[i]
	}
	return s
}

// Head returns the first min(n, d.N) images and labels as a dataset that
// shares d's memory (no copy). It panics if n is negative.
func (d *Dataset) Head(n int) *Dataset {
	if n < 0 {
		panic(fmt.Sprintf("dataset: Head(%d): negative count", n))
	}
	n = min(n, d.N)
	k := d.ImageSize()
	h := d.header(n)
	h.Images = d.Images[: n*k : n*k]
	h.Labels = d.Labels[:n:n]
	return h
}

// header returns a copy of d's metadata for n images, without data.
func (d *Dataset) header(n int) *Dataset {
	return &Dataset{Name: d.Name, Split: d.Split, N: n, C: d.C, H: d.H, W: d.W, Classes: d.Classes}
}

// Validate checks that d's fields agree: positive shape, len(Images) =
// N·C·H·W, len(Labels) = N, labels in [0, Classes). Pixel values are not
// checked. Errors wrap ErrInvalid.
func (d *Dataset) Validate() error {
	switch {
	case d.N < 0 || d.C <= 0 || d.H <= 0 || d.W <= 0 || d.Classes <= 0:
		return fmt.Errorf("%w: shape N=%d C=%d H=%d W=%d with %d classes", ErrInvalid, d.N, d.C, d.H, d.W, d.Classes)
	case len(d.Images) != d.N*d.ImageSize():
		return fmt.Errorf("%w: %d pixel values, want N·C·H·W = %d", ErrInvalid, len(d.Images), d.N*d.ImageSize())
	case len(d.Labels) != d.N:
		return fmt.Errorf("%w: %d labels, want N = %d", ErrInvalid, len(d.Labels), d.N)
	}
	for i, l := range d.Labels {
		if l < 0 || l >= d.Classes {
			return fmt.Errorf("%w: label %d at index %d, want 0–%d", ErrInvalid, l, i, d.Classes-1)
		}
	}
	return nil
}
