package attack

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrClosed is returned by the methods of a closed (or nil) Classifier.
var ErrClosed = errors.New("attack: classifier is closed")

// ShapeError reports data, or a model, whose shape does not fit: inputs whose
// length is not a whole number of images, a model output that is not
// [N, K] class scores, labels of the wrong length.
type ShapeError struct {
	Model string // the model's name
	Msg   string
}

func (e *ShapeError) Error() string { return fmt.Sprintf("attack: %s: %s", e.Model, e.Msg) }

// NonFiniteError reports a NaN or an infinity in what the model computed (its
// scores, a Jacobian, a loss gradient) or in the inputs given to it.
type NonFiniteError struct {
	Model string
	// What holds the value: "scores", "Jacobian", "gradient" or "input".
	What string
	// Image is the index of the image, counted in the caller's batch.
	Image int
	Value float64
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("attack: %s: the %s of image %d hold the non-finite value %v", e.Model, e.What, e.Image, e.Value)
}

// RangeError reports an input pixel outside the classifier's input range.
type RangeError struct {
	Model  string
	Image  int
	Index  int // index of the pixel within the image
	Value  float32
	Lo, Hi float32
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("attack: %s: pixel %d of image %d is %v, outside the input range [%v, %v]", e.Model, e.Index, e.Image, e.Value, e.Lo, e.Hi)
}

// ImageSizeError reports that the size of an image is unknown or does not
// fit the model: its image input leaves sizes after the batch dimension
// symbolic (or declares no shape) and no image size was given
// ([Options.InputShape]), or the size given disagrees with the input's
// rank or with the sizes it declares. A caller that knows the size of its
// images gives it in the input's Layout.
type ImageSizeError struct {
	Model string
	Input string // the input's name
	// Declared holds the input's sizes after the batch dimension, 0 where
	// symbolic; nil when the input declares no shape.
	Declared []int64
	Given    []int64 // the image size given; nil when none was
	Layout   Layout  // the input's layout
}

func (e *ImageSizeError) Error() string {
	takes := fmt.Sprintf("input %q takes images of size %s", e.Input, FormatSizes(e.Declared))
	if e.Declared == nil {
		takes = fmt.Sprintf("input %q declares no shape", e.Input)
	}
	if e.Given == nil {
		return fmt.Sprintf("attack: %s: %s: the size of an image is needed", e.Model, takes)
	}
	return fmt.Sprintf("attack: %s: images of size %s do not fit: %s", e.Model, FormatSizes(e.Given), takes)
}

// FormatSizes writes the sizes of an image as [1, 28, 28], with ? for
// sizes that are not known (0 or less).
func FormatSizes(sizes []int64) string {
	s := make([]string, len(sizes))
	for i, d := range sizes {
		s[i] = "?"
		if d > 0 {
			s[i] = strconv.FormatInt(d, 10)
		}
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// NormalisationError reports a normalisation that does not fit the model:
// a mean or standard deviation with neither one value nor one per channel,
// a value that is not finite, or a zero standard deviation.
type NormalisationError struct {
	Model string
	Msg   string
	// Channels is the size of the channel axis, Axis its index in an image
	// (the dimensions after the batch) and Layout the layout that put it
	// there.
	Channels int64
	Axis     int
	Layout   Layout
}

func (e *NormalisationError) Error() string {
	return fmt.Sprintf("attack: %s: normalisation: %s", e.Model, e.Msg)
}
