// Package npy reads and writes arrays in NumPy's .npy format, with their
// shape.
//
// The format is described at
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html.
// Headers are parsed by the maintained library codeberg.org/sbinet/npyio,
// guarded so that corrupt or hostile files give errors rather than panics or
// huge allocations: the header is size-limited and checked before npyio parses
// it, and the data is read incrementally, so a reader never allocates much
// more than its input actually holds. One parser serves two readers:
//
//   - [Read] gives float32 data, for images and other inputs: float32
//     ('<f4'), float64 ('<f8', converted) and integers of 1 to 8 bytes
//     ('|u1' images, converted when float32 holds them exactly, up to 2^24).
//   - [ReadInts] gives ints, for class labels: integers of 1 to 8 bytes
//     ('<i8', NumPy's default, '<i4', '|u1', …) and floats holding whole
//     numbers.
//
// Both accept little-endian arrays in C order of any rank, including 0-d,
// and record the stored element type (DType) for the caller. Other element
// types (bool, float16, complex, strings), big-endian data, Fortran order and
// values the result cannot hold are an [UnsupportedError] naming the element;
// malformed files a [FormatError].
//
// npyio writes only 1-D slices and 2-D matrices, so Write formats the header
// itself: NPY format 1.0 with the dictionary NumPy's own np.save writes, padded
// with spaces to a multiple of 64 bytes, followed by little-endian float32
// data. WriteFile writes atomically through a temporary file and a rename.
package npy
