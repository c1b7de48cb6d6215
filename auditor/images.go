package auditor

import (
	"errors"
	"fmt"
	"slices"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// ImageShapeError reports images whose shape does not fit a checkpoint's
// image input.
type ImageShapeError struct {
	Images     string  // the images' name (Images.Name)
	Shape      []int64 // the shape of an image
	Checkpoint string
	// Want is the shape of an image that the checkpoint takes, 0 where it
	// is symbolic, in the checkpoint's Layout.
	Want   []int64
	Layout attack.Layout
}

func (e *ImageShapeError) Error() string {
	want := attack.FormatSizes(e.Want)
	if len(e.Want) == 3 {
		want += " (" + e.Layout.String() + ")"
	}
	return fmt.Sprintf("%s: images are %s but model %s takes %s", e.Images, attack.FormatSizes(e.Shape), e.Checkpoint, want)
}

// check returns an error naming the images of split when there are none,
// when an image would have no values (a size ≤ 0 in Shape), or when X,
// Labels and Index disagree in length.
func (im *Images) check(split Split) error {
	if im == nil || im.Len() == 0 {
		return fmt.Errorf("auditor: no images for split %s", split)
	}
	name := im.Name
	if name == "" {
		name = "images of split " + string(split)
	}
	if slices.ContainsFunc(im.Shape, func(d int64) bool { return d <= 0 }) {
		return fmt.Errorf("auditor: %s: an image is %v: no values", name, im.Shape)
	}
	n := im.Len()
	switch {
	case len(im.Index) != n:
		return fmt.Errorf("auditor: %s: %d labels but %d indices", name, n, len(im.Index))
	case len(im.X) == 0 || len(im.X)%n != 0:
		return fmt.Errorf("auditor: %s: %d values are not %d whole images", name, len(im.X), n)
	case im.Shape != nil && len(im.X) != n*attack.ImageSize(im.Shape):
		return fmt.Errorf("auditor: %s: %d values, want %d images of %v", name, len(im.X), n, im.Shape)
	}
	return nil
}

// someImages returns the images of the first split, nil if there is none.
func (cfg *Config) someImages() *Images {
	if len(cfg.Settings.Splits) == 0 {
		return nil
	}
	return cfg.Data[cfg.Settings.Splits[0]]
}

// newClassifier returns the classifier of the model m of a checkpoint for
// images like im: where the model leaves the image size symbolic, it is
// taken from im (in the model's layout).
func newClassifier(m *onnxpb.ModelProto, opt attack.Options, im *Images, checkpoint string) (*attack.Classifier, error) {
	clf, err := attack.NewClassifier(m, opt)
	var se *attack.ImageSizeError
	if !errors.As(err, &se) || se.Given != nil || im == nil || im.Shape == nil {
		return clf, err
	}
	opt.InputShape = im.Shape
	if im.Layout != attack.LayoutAuto && (se.Declared == nil || len(se.Declared) == len(im.Shape)) {
		_, opt.InputShape = attack.ConvertLayout(nil, im.Shape, im.Layout, se.Layout)
	}
	clf, err = attack.NewClassifier(m, opt)
	if errors.As(err, &se) {
		return nil, &ImageShapeError{Images: im.Name, Shape: im.Shape, Checkpoint: checkpoint, Want: se.Declared, Layout: se.Layout}
	}
	return clf, err
}

// fitImages returns im as a checkpoint's classifier takes them, images of
// shape want in layout, or an *ImageShapeError. Images whose shape is want
// are taken as they are. Images of
// a known layout (from a data set) are also transposed to the model's
// layout, and given to a model that takes images of the same size but
// another shape when that shape is flat or the images have one channel:
// then the order of the values is unambiguous.
func fitImages(im *Images, want []int64, layout attack.Layout, checkpoint string) (*Images, error) {
	if im.Shape == nil || slices.Equal(im.Shape, want) {
		return im, nil
	}
	if im.Layout != attack.LayoutAuto {
		x, shape := attack.ConvertLayout(im.X, im.Shape, im.Layout, layout)
		oneChannel := len(im.Shape) == 3 && im.Shape[im.Layout.ChannelAxis(3)] == 1
		if slices.Equal(shape, want) || (attack.ImageSize(shape) == attack.ImageSize(want) && (len(want) == 1 || oneChannel)) {
			out := *im
			out.X, out.Shape, out.Layout = x, want, layout
			return &out, nil
		}
	}
	return nil, &ImageShapeError{Images: im.Name, Shape: im.Shape, Checkpoint: checkpoint, Want: want, Layout: layout}
}
