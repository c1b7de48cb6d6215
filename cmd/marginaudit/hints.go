package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// This file turns the libraries' errors, which say what is needed in their
// own terms, into hints that name the flag or the command to use.

// hintedError is an error with a hint for the user, which printError writes
// on a line of its own after the error.
type hintedError struct {
	err  error
	hint string
}

func (e *hintedError) Error() string { return e.err.Error() }
func (e *hintedError) Unwrap() error { return e.err }

// withHint attaches hint to err; it returns err when either is empty.
func withHint(err error, hint string) error {
	if err == nil || hint == "" {
		return err
	}
	return &hintedError{err: err, hint: hint}
}

// auditHint returns the hint for an audit's error: how to make the images
// fit the models, where their channels are, what their values mean. dtype
// is the element type of the --images array ("" for --data); rangeGiven
// says whether --range was.
func auditHint(err error, dtype string, rangeGiven bool) string {
	var (
		shape *auditor.ImageShapeError
		norm  *attack.NormalisationError
		rng   *attack.RangeError
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &shape):
		return imageShapeHint(shape)
	case errors.As(err, &norm):
		other := map[attack.Layout]string{attack.NCHW: "nhwc", attack.NHWC: "nchw"}[norm.Layout]
		return fmt.Sprintf("--mean and --std take 1 value, or one per channel; if the model's channels are not on axis %d, say where they are with --layout %s",
			norm.Axis+1, other)
	case errors.As(err, &rng) && !rangeGiven && dtype == "uint8":
		return fmt.Sprintf("the images are uint8, used as stored (0 to 255): pass --range 0,255 if the model takes that range, or scale the array to [%v, %v]", rng.Lo, rng.Hi)
	case errors.As(err, &rng) && !rangeGiven && strings.Contains(dtype, "int"):
		return fmt.Sprintf("the images are %s, used as stored: pass the model's input range with --range LO,HI, or scale the array to [%v, %v]", dtype, rng.Lo, rng.Hi)
	case errors.As(err, &rng) && !rangeGiven:
		return "pass the model's input range with --range LO,HI (by default it comes from each checkpoint's metadata, else 0,1)"
	}
	return ""
}

// imageShapeHint says how to rearrange an array of images of e.Shape into
// e.Want: a transposition when e.Shape is a permutation of it, else a
// reshape when both have as many values.
func imageShapeHint(e *auditor.ImageShapeError) string {
	if slices.Contains(e.Want, 0) {
		return ""
	}
	want := "[N, " + strings.TrimPrefix(attack.FormatSizes(e.Want), "[")
	if perm := permutation(e.Shape, e.Want); perm != nil {
		axes := []string{"0"}
		for _, p := range perm {
			axes = append(axes, fmt.Sprint(p+1))
		}
		return fmt.Sprintf("transpose the array to %s: x.transpose(%s)", want, strings.Join(axes, ", "))
	}
	if attack.ImageSize(e.Shape) == attack.ImageSize(e.Want) {
		dims := []string{"-1"}
		for _, d := range e.Want {
			dims = append(dims, fmt.Sprint(d))
		}
		return fmt.Sprintf("reshape the array to %s: x.reshape(%s)", want, strings.Join(dims, ", "))
	}
	return ""
}

// permutation returns perm with from[perm[i]] == to[i] for every i, the
// axes of equal sizes kept in order, or nil when to is no rearrangement of
// from other than from itself.
func permutation(from, to []int64) []int {
	if len(from) != len(to) || slices.Equal(from, to) {
		return nil
	}
	used := make([]bool, len(from))
	perm := make([]int, len(to))
	for i, d := range to {
		j := 0
		for j < len(from) && (used[j] || from[j] != d) {
			j++
		}
		if j == len(from) {
			return nil
		}
		used[j], perm[i] = true, j
	}
	return perm
}

// buildHint returns the hint for an error of onnxgrad.Build on the model m:
// the range of --classes, or --input-shape when m leaves the sizes of its
// input after the batch dimension symbolic and shapeGiven is false.
func buildHint(err error, m *onnxpb.ModelProto, shapeGiven bool) string {
	var ce *onnxgrad.ClassesError
	if errors.As(err, &ce) {
		if ce.Requested == 0 {
			return "restrict the Jacobian to the top classes with --classes K"
		}
		return fmt.Sprintf("--classes takes 1 to %d (or 0 for all classes)", ce.K)
	}
	ins, _ := graphIO(m)
	if shapeGiven || len(ins) == 0 || len(ins[0].Dims) < 2 {
		return ""
	}
	for _, d := range ins[0].Dims[1:] {
		if _, err := strconv.Atoi(d); err != nil {
			return fmt.Sprintf("input %q %s leaves sizes symbolic: fix them with --input-shape %s", ins[0].Name, formatDims(ins[0].Dims),
				strings.Join(ins[0].Dims[1:], ","))
		}
	}
	return ""
}
