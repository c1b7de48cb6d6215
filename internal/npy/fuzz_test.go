package npy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzRead checks that Read and ReadInts never panic, return only this
// package's error types for malformed input, allocate no more elements than
// the input holds data for, and agree where both read the input; and that
// whatever Read reads survives a Write/Read round trip. The seeds are the
// NumPy-written files in testdata, of every element type.
func FuzzRead(f *testing.F) {
	files, err := filepath.Glob("testdata/*.npy")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files in testdata: %v", err)
	}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			t.Skip("inputs over 1 MiB only slow the fuzzer down")
		}
		a, err := Read(bytes.NewReader(data))
		checkFuzzErr(t, err)
		ints, ierr := ReadInts(bytes.NewReader(data))
		checkFuzzErr(t, ierr)
		if ierr == nil {
			if len(ints.Data) > len(data) || len(ints.Data) != (&Array{Shape: ints.Shape}).Len() {
				t.Fatalf("ReadInts: shape %v, %d elements from %d bytes", ints.Shape, len(ints.Data), len(data))
			}
			if err == nil && (a.DType != ints.DType || !slices.Equal(a.Shape, ints.Shape) ||
				!slices.EqualFunc(a.Data, ints.Data, func(f float32, i int) bool { return f == float32(i) })) {
				t.Fatalf("Read gives %s %v %v, ReadInts %s %v %v", a.DType, a.Shape, a.Data, ints.DType, ints.Shape, ints.Data)
			}
		}
		if err != nil {
			return
		}
		if len(a.Data) > len(data) {
			t.Fatalf("%d elements read from %d bytes", len(a.Data), len(data))
		}
		if a.Len() != len(a.Data) {
			t.Fatalf("shape %v for %d elements", a.Shape, len(a.Data))
		}
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			t.Fatalf("Write: %v", err)
		}
		b, err := Read(&buf)
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		if !slices.Equal(a.Shape, b.Shape) || !sameBits(a.Data, b.Data) || b.DType != "float32" {
			t.Fatalf("round trip changed %v %v into %s %v %v", a.Shape, a.Data, b.DType, b.Shape, b.Data)
		}
	})
}

// checkFuzzErr fails unless err is nil or one of this package's errors.
func checkFuzzErr(t *testing.T, err error) {
	t.Helper()
	var fe *FormatError
	var ue *UnsupportedError
	if err != nil && !errors.As(err, &fe) && !errors.As(err, &ue) {
		t.Fatalf("error %q is a %T, want *FormatError or *UnsupportedError", err, err)
	}
}
