// Package npy reads and writes float32 arrays in NumPy's .npy format, with
// their shape.
//
// The format is described at
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html.
// Reading goes through the maintained library codeberg.org/sbinet/npyio,
// guarded so that corrupt or hostile files give errors rather than panics or
// huge allocations: the header is size-limited and checked before npyio parses
// it, and the data is read incrementally, so Read never allocates much more
// than its input actually holds. Read accepts little-endian float32 ('<f4')
// and float64 ('<f8', converted to float32) arrays in C order of any rank,
// including 0-d; other element types, big-endian data and Fortran order are
// an [UnsupportedError], malformed files a [FormatError].
//
// npyio writes only 1-D slices and 2-D matrices, so Write formats the header
// itself: NPY format 1.0 with the dictionary NumPy's own np.save writes, padded
// with spaces to a multiple of 64 bytes, followed by little-endian float32
// data. WriteFile writes atomically through a temporary file and a rename.
package npy
