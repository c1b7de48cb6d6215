package npy_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/marginaudit/marginaudit/internal/npy"
)

// Write a 2×3 array and read it back; in NumPy, np.load gives the same array.
func Example() {
	dir, err := os.MkdirTemp("", "npy-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "x.npy")

	x := &npy.Array{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}
	if err := npy.WriteFile(path, x); err != nil {
		log.Fatal(err)
	}
	y, err := npy.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(y.Shape, y.Data)

	// Integer arrays, such as labels, keep their values exactly.
	labels, err := npy.ReadIntsFile(filepath.Join("testdata", "i8.npy"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(labels.DType, labels.Data)

	_, err = npy.ReadIntsFile(filepath.Join("testdata", "f4_labels.npy"))
	fmt.Println(err)
	// Output:
	// [2 3] [1 2 3 4 5 6]
	// int64 [0 1 2 3]
	// npy: testdata/f4_labels.npy: float32 value 1.5 at index [1, 0] is not an integer that fits an int
}
