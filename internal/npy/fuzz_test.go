package npy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzRead checks that Read never panics, returns only this package's error
// types for malformed input, allocates no more elements than the input holds
// data for, and that whatever it reads survives a Write/Read round trip.
// The seeds are the NumPy-written files in testdata.
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
		if err != nil {
			var fe *FormatError
			var ue *UnsupportedError
			if !errors.As(err, &fe) && !errors.As(err, &ue) {
				t.Fatalf("error %q is a %T, want *FormatError or *UnsupportedError", err, err)
			}
			return
		}
		if 4*len(a.Data) > len(data) {
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
		if !slices.Equal(a.Shape, b.Shape) || !sameBits(a.Data, b.Data) {
			t.Fatalf("round trip changed %v %v into %v %v", a.Shape, a.Data, b.Shape, b.Data)
		}
	})
}
