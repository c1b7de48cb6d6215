package attack

import (
	"errors"
	"fmt"
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
