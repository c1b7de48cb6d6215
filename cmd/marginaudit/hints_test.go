package main

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/attack"
)

func TestPermutation(t *testing.T) {
	tests := []struct {
		from, to []int64
		want     []int
	}{
		{[]int64{28, 28, 1}, []int64{1, 28, 28}, []int{2, 0, 1}},
		{[]int64{1, 28, 28}, []int64{28, 28, 1}, []int{1, 2, 0}},
		{[]int64{32, 32, 3}, []int64{3, 32, 32}, []int{2, 0, 1}},
		{[]int64{3, 32, 32}, []int64{3, 32, 32}, nil}, // no rearrangement
		{[]int64{784}, []int64{1, 28, 28}, nil},
		{[]int64{3, 32, 32}, []int64{3, 32, 16}, nil},
	}
	for _, tt := range tests {
		if got := permutation(tt.from, tt.to); !slices.Equal(got, tt.want) {
			t.Errorf("permutation(%v, %v) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}

// auditHint names the flag or the numpy call that fixes each refusal.
func TestAuditHint(t *testing.T) {
	shape := func(have, want []int64) error {
		return &auditor.CheckpointError{Checkpoint: "m.onnx", Err: &auditor.ImageShapeError{Images: "x.npy", Shape: have, Checkpoint: "m.onnx", Want: want, Layout: attack.NCHW}}
	}
	rng := fmt.Errorf("DeepFool: %w", &attack.RangeError{Model: "m.onnx", Value: 255, Lo: 0, Hi: 1})
	tests := []struct {
		err        error
		dtype      string
		rangeGiven bool
		want       string
	}{
		{shape([]int64{32, 32, 3}, []int64{3, 32, 32}), "float32", false, "transpose the array to [N, 3, 32, 32]: x.transpose(0, 3, 1, 2)"},
		{shape([]int64{3072}, []int64{3, 32, 32}), "float32", false, "reshape the array to [N, 3, 32, 32]: x.reshape(-1, 3, 32, 32)"},
		{shape([]int64{3, 16, 16}, []int64{3, 32, 32}), "float32", false, ""},
		{shape([]int64{3, 16, 16}, []int64{3, 0, 0}), "float32", false, ""},
		{errors.Join(errors.New("other"), &attack.NormalisationError{Axis: 2, Layout: attack.NHWC}), "", false,
			"--mean and --std take 1 value, or one per channel; if the model's channels are not on axis 3, say where they are with --layout nchw"},
		{rng, "uint8", false, "the images are uint8, used as stored (0 to 255): pass --range 0,255 if the model takes that range, or scale the array to [0, 1]"},
		{rng, "int16", false, "the images are int16, used as stored: pass the model's input range with --range LO,HI, or scale the array to [0, 1]"},
		{rng, "float32", false, "pass the model's input range with --range LO,HI (by default it comes from each checkpoint's metadata, else 0,1)"},
		{rng, "uint8", true, ""},
		{errors.New("other"), "uint8", false, ""},
	}
	for _, tt := range tests {
		if got := auditHint(tt.err, tt.dtype, tt.rangeGiven); got != tt.want {
			t.Errorf("auditHint(%v, %s, %v) = %q, want %q", tt.err, tt.dtype, tt.rangeGiven, got, tt.want)
		}
	}
}
