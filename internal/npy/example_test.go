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

	_, err = npy.ReadFile(filepath.Join("testdata", "i8.npy"))
	fmt.Println(err)
	// Output:
	// [2 3] [1 2 3 4 5 6]
	// npy: testdata/i8.npy: element type "<i8" is not supported: want float32 ('<f4') or float64 ('<f8'), little-endian
}
