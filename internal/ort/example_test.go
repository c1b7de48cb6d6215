package ort_test

import (
	"fmt"
	"log"

	"github.com/marginaudit/marginaudit/internal/ort"
)

// The model in testdata/affine.onnx computes Y = 2X + 1 for X of shape
// [N, 3], with any batch size N.
func Example() {
	s, err := ort.OpenSession("testdata/affine.onnx", ort.SessionOptions{Threads: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	fmt.Println(s.Inputs(), s.Outputs())

	// A nil output is allocated by the run.
	x := []float32{1, 2, 3, 4, 5, 6}
	out := []ort.Value{{}}
	if err := s.Run([]ort.Value{ort.NewValue(x, 2, 3)}, out); err != nil {
		log.Fatal(err)
	}
	fmt.Println(out[0].Shape, out[0].Float32s())
	// Output:
	// [X float32[-1 3]] [Y float32[-1 3]]
	// [2 3] [3 5 7 9 11 13]
}

// Runs in a loop reuse their inputs and outputs: the session reads x and
// writes y in place, without copying or allocating tensor memory.
func ExampleSession_Run() {
	s, err := ort.OpenSession("testdata/affine.onnx", ort.SessionOptions{Threads: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	x, y := make([]float32, 3), make([]float32, 3)
	in := []ort.Value{ort.NewValue(x, 1, 3)}
	out := []ort.Value{ort.NewValue(y, 1, 3)}
	for step := range 3 {
		x[0] = float32(step)
		if err := s.Run(in, out); err != nil {
			log.Fatal(err)
		}
		fmt.Println(y)
	}
	// Output:
	// [1 1 1]
	// [3 1 1]
	// [5 1 1]
}
