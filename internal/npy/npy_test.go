package npy

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio"
)

// seq returns n values f(0), f(1), …
func seq[T any](n int, f func(i int) T) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// The files in testdata were written by NumPy (testdata/make_seeds.py); the
// expected values are the formulas in its comments. Each file is read with
// Read (float32) and with ReadInts (labels).
func TestReadNumPyFiles(t *testing.T) {
	type want struct {
		data    any    // []float32 for Read, []int for ReadInts; nil when an error is wanted
		errType any    // *FormatError or *UnsupportedError
		errText string // part of the message
	}
	notInt := func(text string) want { return want{errType: &UnsupportedError{}, errText: text} }
	malformed := func(text string) want { return want{errType: &FormatError{}, errText: text} }
	tests := []struct {
		file        string
		shape       []int
		dtype       string
		float, ints want
	}{
		{file: "f4_2d.npy", shape: []int{2, 3}, dtype: "float32", float: want{data: []float32{-0.5, -0.25, 0, 0.25, 0.5, 0.75}},
			ints: notInt("f4_2d.npy: float32 value -0.5 at index [0, 0] is not an integer that fits an int")},
		{file: "f4_1d.npy", shape: []int{5}, dtype: "float32", float: want{data: []float32{0, 1.5, 3, 4.5, 6}},
			ints: notInt("float32 value 1.5 at index [1] is not an integer")},
		{file: "f4_0d.npy", shape: []int{}, dtype: "float32", float: want{data: []float32{2.5}}, ints: notInt("float32 value 2.5 at index []")},
		{file: "f4_empty.npy", shape: []int{0, 3}, dtype: "float32", float: want{data: []float32{}}, ints: want{data: []int{}}},
		{file: "f4_4d.npy", shape: []int{2, 1, 3, 4}, dtype: "float32", float: want{data: seq(24, func(i int) float32 { return float32(i) / 8 })},
			ints: notInt("float32 value 0.125 at index [0, 0, 0, 1]")},
		{file: "f4_v2.npy", shape: []int{2, 2}, dtype: "float32", float: want{data: []float32{0, 1, 2, 3}}, ints: want{data: []int{0, 1, 2, 3}}},
		{file: "f8_3d.npy", shape: []int{2, 2, 2}, dtype: "float64", float: want{data: seq(8, func(i int) float32 { return float32(i)/2 - 1 })},
			ints: notInt("float64 value -0.5 at index [0, 0, 1]")},
		{file: "f4_labels.npy", shape: []int{2, 2}, dtype: "float32", float: want{data: []float32{0, 2, 1.5, 3}},
			ints: notInt("f4_labels.npy: float32 value 1.5 at index [1, 0] is not an integer that fits an int")},
		{file: "f8_labels.npy", shape: []int{3}, dtype: "float64", float: want{data: []float32{0, 9, 2}}, ints: want{data: []int{0, 9, 2}}},
		{file: "i8.npy", shape: []int{4}, dtype: "int64", float: want{data: []float32{0, 1, 2, 3}}, ints: want{data: []int{0, 1, 2, 3}}},
		{file: "i4_labels.npy", shape: []int{5}, dtype: "int32", float: want{data: []float32{3, 1, 4, 1, 5}}, ints: want{data: []int{3, 1, 4, 1, 5}}},
		{file: "i2_labels.npy", shape: []int{4}, dtype: "int16", float: want{data: []float32{2, 7, 1, 8}}, ints: want{data: []int{2, 7, 1, 8}}},
		{file: "u2_labels.npy", shape: []int{3}, dtype: "uint16", float: want{data: []float32{9, 0, 65535}}, ints: want{data: []int{9, 0, 65535}}},
		{file: "i1_labels.npy", shape: []int{4}, dtype: "int8", float: want{data: []float32{-1, 0, 127, -128}}, ints: want{data: []int{-1, 0, 127, -128}}},
		{file: "u4_labels.npy", shape: []int{1}, dtype: "uint32", float: notInt("uint32 value 4000000000 at index [0] is not exact in float32"),
			ints: want{data: []int{4000000000}}},
		{file: "u1_images.npy", shape: []int{1, 2, 3}, dtype: "uint8", float: want{data: []float32{0, 128, 255, 1, 2, 3}}, ints: want{data: []int{0, 128, 255, 1, 2, 3}}},
		{file: "i8_beyond_f4.npy", dtype: "int64", float: notInt("i8_beyond_f4.npy: int64 value 16777217 at index [1] is not exact in float32 (beyond ±2^24)"),
			ints: want{data: []int{0, 1<<24 + 1}}, shape: []int{2}},
		{file: "u8_beyond_int.npy", float: notInt("uint64 value 9223372036854775809 at index [1] is not exact in float32"),
			ints: notInt("u8_beyond_int.npy: uint64 value 9223372036854775809 at index [1] does not fit an int")},
		{file: "b1.npy", float: notInt(`b1.npy: element type "|b1" (bool) is not supported: want a float or integer type`),
			ints: notInt(`element type "|b1" (bool) is not supported: want an integer type`)},
		{file: "f2.npy", float: notInt(`element type "<f2" is not supported`), ints: notInt(`element type "<f2" is not supported`)},
		{file: "fortran.npy", float: notInt("fortran.npy: Fortran-order"), ints: notInt("fortran.npy: Fortran-order")},
		{file: "f4_bigendian.npy", float: notInt(`element type ">f4" is big-endian`), ints: notInt(`element type ">f4" is big-endian`)},
		{file: "i8_bigendian.npy", float: notInt(`element type ">i8" is big-endian`), ints: notInt(`element type ">i8" is big-endian`)},
		{file: "truncated.npy", float: malformed("truncated.npy: shape (2, 3) of <f4 needs 24 bytes of data, found only 19"),
			ints: malformed("truncated.npy: shape (2, 3) of <f4 needs 24 bytes")},
		{file: "trailing.npy", float: malformed("trailing.npy: 4 bytes after the data of shape (2, 3)"),
			ints: notInt("trailing.npy: float32 value -0.5")}, // the values are checked before the end of the file
		{file: "make_seeds.py", float: malformed("make_seeds.py: not a .npy file"), ints: malformed("make_seeds.py: not a .npy file")},
	}
	check := func(t *testing.T, w want, shape []int, dtype string, gotShape []int, gotDType string, data any, err error) {
		t.Helper()
		if w.errType != nil {
			if err == nil {
				t.Fatalf("no error, want %T", w.errType)
			}
			checkErrType(t, err, w.errType)
			if !strings.Contains(err.Error(), w.errText) {
				t.Errorf("error %q does not contain %q", err, w.errText)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(gotShape, shape) || gotShape == nil || gotDType != dtype {
			t.Errorf("shape %v of %s, want %v of %s", gotShape, gotDType, shape, dtype)
		}
		if !reflect.DeepEqual(data, w.data) {
			t.Errorf("data %v, want %v", data, w.data)
		}
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			t.Run("Read", func(t *testing.T) {
				a, err := ReadFile(path)
				if err != nil {
					check(t, tt.float, tt.shape, tt.dtype, nil, "", nil, err)
					return
				}
				check(t, tt.float, tt.shape, tt.dtype, a.Shape, a.DType, a.Data, nil)
			})
			t.Run("ReadInts", func(t *testing.T) {
				a, err := ReadIntsFile(path)
				if err != nil {
					check(t, tt.ints, tt.shape, tt.dtype, nil, "", nil, err)
					return
				}
				check(t, tt.ints, tt.shape, tt.dtype, a.Shape, a.DType, a.Data, nil)
			})
		})
	}
}

func checkErrType(t *testing.T, err error, want any) {
	t.Helper()
	var fe *FormatError
	var ue *UnsupportedError
	switch want.(type) {
	case *FormatError:
		if !errors.As(err, &fe) {
			t.Errorf("error %q is a %T, want *FormatError", err, err)
		}
	case *UnsupportedError:
		if !errors.As(err, &ue) {
			t.Errorf("error %q is a %T, want *UnsupportedError", err, err)
		}
	}
}

func TestReadMalformedHeaders(t *testing.T) {
	// hdr returns a version 1.0 preamble and the header dict.
	hdr := func(dict string) string {
		n := len(dict)
		return "\x93NUMPY\x01\x00" + string([]byte{byte(n), byte(n >> 8)}) + dict
	}
	tests := []struct {
		name, data, errText string
	}{
		{"empty", "", "too short"},
		{"magic", "\x93NUMPX\x01\x00\x00\x00", "wrong magic string"},
		{"version", "\x93NUMPY\x07\x00\x00\x00", "unknown format version 7.0"},
		{"version3", "\x93NUMPY\x03\x00\x00\x00\x00\x00", "format version 3"},
		{"huge header", "\x93NUMPY\x02\x00\xff\xff\xff\xff", "larger than the limit"},
		{"short header", "\x93NUMPY\x01\x00\x40\x00{'descr'", "truncated header"},
		{"no newline", "\x93NUMPY\x01\x00\x04\x00{}  ", "does not end with a newline"},
		{"not a dict", "\x93NUMPY\x01\x00\x04\x00{} \n", "invalid header"},
		{"key order", hdr("{'shape': (2,), 'fortran_order': False, 'descr': '<f4', }\n"), "invalid header"},
		{"negative dim", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }\n"), "invalid shape [-2]"},
		{"overflow", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }\n"), "invalid shape"},
		{"no trailer", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}\n") + "\x00\x00\x00\x00\x00\x00\x00\x00", "not laid out as NumPy writes it"},
		{"bad order", hdr("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }\n"), "fortran_order"},
		{"no data", string(encodeHeader("<f4", []int{2})), "needs 8 bytes of data, found only 0"},
		{"huge shape", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (9999999999,), }\n") + "\x00\x00", "needs 39999999996 bytes of data, found only 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tt.data))
			if err == nil {
				t.Fatal("no error")
			}
			var fe *FormatError
			var ue *UnsupportedError
			if !errors.As(err, &fe) && !errors.As(err, &ue) {
				t.Errorf("error %q is a %T, want *FormatError or *UnsupportedError", err, err)
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("error %q does not contain %q", err, tt.errText)
			}
		})
	}
}

// The header is written by hand, so check it against npyio, the reader used
// elsewhere, for every rank including 0-d and empty arrays.
func TestWriteReadBack(t *testing.T) {
	shapes := [][]int{{}, {0}, {1}, {5}, {2, 3}, {0, 3}, {4, 1, 28, 28}, {2, 1, 3, 1, 2}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}}
	for _, shape := range shapes {
		n, _ := numElements(shape)
		a := &Array{Shape: shape, Data: seq(n, func(i int) float32 { return float32(i)*0.37 - 1e-3 })}
		if n > 2 {
			a.Data[1] = float32(math.Inf(-1))
			a.Data[2] = float32(math.NaN())
		}
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			t.Fatalf("%v: %v", shape, err)
		}
		raw := buf.Bytes()
		hlen := 10 + int(raw[8]) + int(raw[9])<<8
		if hlen%64 != 0 || raw[hlen-1] != '\n' || len(raw) != hlen+4*n {
			t.Errorf("%v: header of %d bytes, file of %d, want a multiple of 64 ending in a newline and %d data bytes", shape, hlen, len(raw), 4*n)
		}

		r, err := npyio.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%v: npyio: %v", shape, err)
		}
		if got := r.Header.Descr.Shape; !slices.Equal(got, shape) || r.Header.Descr.Type != "'<f4'" || r.Header.Descr.Fortran {
			t.Errorf("%v: npyio reads header %+v", shape, r.Header.Descr)
		}
		var got []float32
		if err := r.Read(&got); err != nil {
			t.Fatalf("%v: npyio: %v", shape, err)
		}
		if !sameBits(got, a.Data) {
			t.Errorf("%v: npyio reads %v, want %v", shape, got, a.Data)
		}

		b, err := Read(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%v: Read: %v", shape, err)
		}
		if !slices.Equal(b.Shape, shape) || !sameBits(b.Data, a.Data) {
			t.Errorf("%v: Read gives %v %v, want %v", shape, b.Shape, b.Data, a.Data)
		}
	}
}

// sameBits compares float32 slices bit for bit, so that NaNs compare equal.
func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func TestWriteErrors(t *testing.T) {
	for _, a := range []*Array{
		{Shape: []int{2, 3}, Data: make([]float32, 5)},
		{Shape: []int{-1}, Data: nil},
		{Shape: []int{}, Data: nil},
	} {
		if err := Write(&bytes.Buffer{}, a); err == nil {
			t.Errorf("Write(%v, %d values): no error", a.Shape, len(a.Data))
		}
		path := filepath.Join(t.TempDir(), "a.npy")
		if err := WriteFile(path, a); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("WriteFile(%v, %d values): error %v, want one naming the file", a.Shape, len(a.Data), err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("WriteFile failed but left %s: %v", path, err)
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.npy")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := &Array{Shape: []int{3, 1}, Data: []float32{1, 2, 3}}
	if err := WriteFile(path, a); err != nil {
		t.Fatal(err)
	}
	b, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Shape, a.Shape) || !slices.Equal(b.Data, a.Data) {
		t.Errorf("read back %v %v", b.Shape, b.Data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d files, want only a.npy (no temporary files)", len(entries))
	}
	if err := WriteFile(filepath.Join(dir, "missing", "a.npy"), a); err == nil {
		t.Error("WriteFile into a missing folder: no error")
	}
}

// WriteInts writes '<i8' arrays that numpy (npyio) and ReadInts read back,
// negative values and the int64 extremes included.
func TestWriteIntsReadBack(t *testing.T) {
	for _, shape := range [][]int{{}, {0}, {3}, {2, 3}, {4, 2}} {
		n, _ := numElements(shape)
		a := &IntArray{Shape: shape, Data: seq(n, func(i int) int { return 7*i - 5 })}
		if n >= 3 {
			a.Data[1], a.Data[2] = math.MinInt64, math.MaxInt64
		}
		var buf bytes.Buffer
		if err := WriteInts(&buf, a); err != nil {
			t.Fatalf("%v: %v", shape, err)
		}
		r, err := npyio.NewReader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("%v: npyio: %v", shape, err)
		}
		if got := r.Header.Descr.Shape; !slices.Equal(got, shape) || r.Header.Descr.Type != "'<i8'" {
			t.Errorf("%v: npyio reads header %+v", shape, r.Header.Descr)
		}
		b, err := ReadInts(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("%v: ReadInts: %v", shape, err)
		}
		if !slices.Equal(b.Shape, shape) || !slices.Equal(b.Data, a.Data) || b.DType != "int64" {
			t.Errorf("%v: ReadInts gives %v %v %s, want %v int64", shape, b.Shape, b.Data, b.DType, a.Data)
		}
	}
	if err := WriteInts(&bytes.Buffer{}, &IntArray{Shape: []int{2}, Data: []int{1}}); err == nil {
		t.Error("WriteInts of 1 value as shape [2]: no error")
	}
}
