package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"codeberg.org/sbinet/npyio"

	"github.com/marginaudit/marginaudit/internal/atomicfile"
)

// Array is an n-dimensional float32 array in row-major (C) order: the
// element at index (i0, i1, …) is Data[(i0·Shape[1] + i1)·Shape[2] + …].
// A 0-d array (a scalar) has an empty Shape and one element.
type Array struct {
	Shape []int
	Data  []float32
	// DType is the element type stored in the file the array was read
	// from, as NumPy names it ("float32", "float64", "uint8"); "" for an
	// array made in memory. Write ignores it: it always writes float32.
	DType string
}

// Len returns the number of elements that a's shape describes: the product
// of its dimensions, 1 for a 0-d array. It returns -1 when a dimension is
// negative or the product overflows an int.
func (a *Array) Len() int {
	n, ok := numElements(a.Shape)
	if !ok {
		return -1
	}
	return n
}

// check reports whether a is a well-formed array.
func (a *Array) check() error {
	n := a.Len()
	if n < 0 {
		return fmt.Errorf("npy: invalid shape %v", a.Shape)
	}
	if n != len(a.Data) {
		return fmt.Errorf("npy: shape %v holds %d elements, data has %d", a.Shape, n, len(a.Data))
	}
	return nil
}

// numElements returns the product of shape, and false if a dimension is
// negative or the product overflows.
func numElements(shape []int) (int, bool) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// FormatError reports a file that is not a valid .npy file: a wrong magic
// string, a malformed header, or data that does not match the shape.
type FormatError struct {
	File string // the file name, "" when reading from an io.Reader
	Msg  string
	Err  error // the underlying error, if any
}

func (e *FormatError) Error() string {
	s := "npy: "
	if e.File != "" {
		s += e.File + ": "
	}
	s += e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FormatError) Unwrap() error { return e.Err }

// UnsupportedError reports a valid .npy file that this package cannot read
// as asked: another element type, big-endian data, Fortran order, format
// version 3, or a value that the result cannot hold (a float64 outside the
// float32 range, an integer that float32 does not hold exactly, a label
// that is not a whole number).
type UnsupportedError struct {
	File string // the file name, "" when reading from an io.Reader
	Msg  string
}

func (e *UnsupportedError) Error() string {
	s := "npy: "
	if e.File != "" {
		s += e.File + ": "
	}
	return s + e.Msg
}

// Header is what the header of a .npy file says about the array that follows.
type Header struct {
	Major, Minor int    // format version, such as 1.0
	Descr        string // NumPy dtype string, such as "<f4"
	Fortran      bool   // whether the data is in column-major order
	Shape        []int  // the array's dimensions; empty for a 0-d array
	// raw holds the magic string, version, length and header dictionary
	// exactly as read, for npyio to parse the data after it.
	raw []byte
}

// maxHeaderLen bounds the header dictionary. NumPy itself refuses headers
// over 10000 bytes by default (numpy.lib.format._MAX_HEADER_SIZE); a float
// array's header with NumPy's maximum of 64 dimensions needs under 1.5 KB.
const maxHeaderLen = 1 << 16

var magic = []byte("\x93NUMPY")

// ReadHeader reads the header of a .npy file from r, leaving r at the start
// of the array data. It checks the header's structure but not the element
// type or order, so it describes any .npy file; it is the cheap way to learn
// an array's shape.
func ReadHeader(r io.Reader) (*Header, error) {
	pre := make([]byte, 10, 12)
	if _, err := io.ReadFull(r, pre[:8]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &FormatError{Msg: "not a .npy file: too short"}
		}
		return nil, err
	}
	if !bytes.Equal(pre[:6], magic) {
		return nil, &FormatError{Msg: "not a .npy file: wrong magic string"}
	}
	h := &Header{Major: int(pre[6]), Minor: int(pre[7])}
	var hlen int64
	switch h.Major {
	case 1:
		if _, err := io.ReadFull(r, pre[8:10]); err != nil {
			return nil, truncated("header length", err)
		}
		hlen = int64(binary.LittleEndian.Uint16(pre[8:10]))
	case 2:
		pre = pre[:12]
		if _, err := io.ReadFull(r, pre[8:12]); err != nil {
			return nil, truncated("header length", err)
		}
		hlen = int64(binary.LittleEndian.Uint32(pre[8:12]))
	case 3:
		return nil, &UnsupportedError{Msg: "format version 3 (UTF-8 header) is not supported; save with np.save, which writes version 1.0"}
	default:
		return nil, &FormatError{Msg: fmt.Sprintf("unknown format version %d.%d", h.Major, h.Minor)}
	}
	if hlen > maxHeaderLen {
		return nil, &FormatError{Msg: fmt.Sprintf("header of %d bytes is larger than the limit of %d", hlen, maxHeaderLen)}
	}
	// Grow the buffer only as far as the input goes.
	dict, err := io.ReadAll(io.LimitReader(r, hlen))
	if err != nil {
		return nil, err
	}
	if int64(len(dict)) < hlen {
		return nil, truncated("header", io.ErrUnexpectedEOF)
	}
	if len(dict) == 0 || dict[len(dict)-1] != '\n' {
		return nil, &FormatError{Msg: "header does not end with a newline"}
	}
	h.raw = append(pre, dict...)

	nh, err := parseHeader(h.raw)
	if err != nil {
		return nil, &FormatError{Msg: "invalid header " + quoteShort(strings.TrimRight(string(dict), " \n")), Err: err}
	}
	h.Descr = strings.Trim(nh.Descr.Type, `'"`)
	h.Fortran = nh.Descr.Fortran
	h.Shape = nh.Descr.Shape
	if _, ok := numElements(h.Shape); !ok {
		return nil, &FormatError{Msg: fmt.Sprintf("invalid shape %v", h.Shape)}
	}
	// npyio finds the values by position, assuming the layout np.save
	// writes; a dictionary laid out otherwise can be misread silently, such
	// as (2, 3) without the trailing ", " read as (). Check its reading.
	descr, fortran, shape, err := scanDict(string(dict))
	if err != nil {
		return nil, &FormatError{Msg: "invalid header " + quoteShort(strings.TrimRight(string(dict), " \n")), Err: err}
	}
	if descr != h.Descr || fortran != h.Fortran || !slices.Equal(shape, h.Shape) {
		return nil, &FormatError{Msg: fmt.Sprintf("header %s is not laid out as NumPy writes it: npyio reads descr %q, fortran_order %v, shape %v", quoteShort(strings.TrimRight(string(dict), " \n")), h.Descr, h.Fortran, h.Shape)}
	}
	return h, nil
}

var (
	descrRE   = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)
	fortranRE = regexp.MustCompile(`'fortran_order'\s*:\s*(True|False)`)
	shapeRE   = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
)

// scanDict finds the three values of a header dictionary independently of
// their order and spacing.
func scanDict(dict string) (descr string, fortran bool, shape []int, err error) {
	d, f, s := descrRE.FindStringSubmatch(dict), fortranRE.FindStringSubmatch(dict), shapeRE.FindStringSubmatch(dict)
	if d == nil || f == nil || s == nil {
		return "", false, nil, errors.New("want the keys 'descr', 'fortran_order' and 'shape'")
	}
	for tok := range strings.SplitSeq(s[1], ",") {
		if tok = strings.TrimSpace(tok); tok == "" {
			continue
		}
		n, err := strconv.Atoi(tok)
		if err != nil {
			return "", false, nil, fmt.Errorf("shape: %w", err)
		}
		shape = append(shape, n)
	}
	return d[1], f[1] == "True", shape, nil
}

// parseHeader has npyio parse the header in raw. npyio indexes into the
// header without bounds checks, so its panics on malformed headers are
// turned into errors.
func parseHeader(raw []byte) (h *npyio.Header, err error) {
	defer func() {
		if r := recover(); r != nil {
			h, err = nil, fmt.Errorf("malformed dictionary (npyio: %v)", r)
		}
	}()
	nr, err := npyio.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return &nr.Header, nil
}

// quoteShort quotes s for an error message, shortened to 120 bytes.
func quoteShort(s string) string {
	if len(s) > 120 {
		return strconv.Quote(s[:120]) + "…"
	}
	return strconv.Quote(s)
}

func truncated(what string, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &FormatError{Msg: "truncated " + what, Err: err}
}

// dtype is an element type this package decodes: a little-endian integer
// or floating-point number.
type dtype struct {
	kind byte // 'f' floating point, 'i' signed or 'u' unsigned integer
	size int  // bytes per element
}

// String returns NumPy's name of the type, such as "float32" or "uint8".
func (d dtype) String() string {
	name := map[byte]string{'f': "float", 'i': "int", 'u': "uint"}[d.kind]
	return name + strconv.Itoa(8*d.size)
}

// parseDescr returns the element type of a header's descr, such as "<f4"
// or "|u1"; want describes the types the caller reads, for the error.
func parseDescr(descr, want string) (dtype, error) {
	unsupported := func(why string) error {
		return &UnsupportedError{Msg: fmt.Sprintf("element type %q %s: want %s", descr, why, want)}
	}
	if len(descr) < 3 {
		return dtype{}, unsupported("is not supported")
	}
	order, kind := descr[0], descr[1]
	size, err := strconv.Atoi(descr[2:])
	if err != nil {
		return dtype{}, unsupported("is not supported")
	}
	d := dtype{kind: kind, size: size}
	switch {
	case kind == 'f' && (size == 4 || size == 8), (kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8):
	case kind == 'b' && size == 1:
		return dtype{}, unsupported("(bool) is not supported")
	default:
		return dtype{}, unsupported("is not supported")
	}
	switch {
	case order == '<', size == 1: // single bytes have no byte order ('|')
	case order == '>':
		return dtype{}, unsupported("is big-endian, which is not supported; save x.astype(x.dtype.newbyteorder('<'))")
	default:
		return dtype{}, unsupported("is not supported")
	}
	return d, nil
}

// readData reads the header and the data of a .npy file from r, exactly as
// much as the shape calls for, and checks that the element type is one
// this package decodes and the order is C. want describes the types the
// caller reads, for the error about other types.
func readData(r io.Reader, want string) (*Header, dtype, []byte, error) {
	h, err := ReadHeader(r)
	if err != nil {
		return nil, dtype{}, nil, err
	}
	dt, err := parseDescr(h.Descr, want)
	if err != nil {
		return nil, dtype{}, nil, err
	}
	if h.Fortran && len(h.Shape) > 1 {
		return nil, dtype{}, nil, &UnsupportedError{Msg: "Fortran-order (column-major) arrays are not supported: save np.ascontiguousarray(x)"}
	}
	if h.Shape == nil {
		h.Shape = []int{}
	}
	n, _ := numElements(h.Shape) // checked by ReadHeader
	if n > math.MaxInt64/dt.size {
		return nil, dtype{}, nil, &FormatError{Msg: fmt.Sprintf("shape %s is too large", pyShape(h.Shape))}
	}
	want64 := int64(n) * int64(dt.size)
	// io.ReadAll grows its buffer as data arrives, so a header claiming a
	// huge shape costs no more memory than the data actually present.
	data, err := io.ReadAll(io.LimitReader(r, want64))
	if err != nil {
		return nil, dtype{}, nil, err
	}
	if int64(len(data)) < want64 {
		return nil, dtype{}, nil, &FormatError{Msg: fmt.Sprintf("shape %s of %s needs %d bytes of data, found only %d", pyShape(h.Shape), h.Descr, want64, len(data))}
	}
	return h, dt, data, nil
}

// float returns element i of data, of type d, as a float64; d is a
// floating-point type.
func (d dtype) float(data []byte, i int) float64 {
	if d.size == 4 {
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])))
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
}

// integer returns element i of data, of type d, as an int64; d is an
// integer type. ok is false for a uint64 above math.MaxInt64.
func (d dtype) integer(data []byte, i int) (v int64, ok bool) {
	switch d.size {
	case 1:
		v = int64(data[i])
		if d.kind == 'i' {
			v = int64(int8(data[i]))
		}
	case 2:
		u := binary.LittleEndian.Uint16(data[2*i:])
		v = int64(u)
		if d.kind == 'i' {
			v = int64(int16(u))
		}
	case 4:
		u := binary.LittleEndian.Uint32(data[4*i:])
		v = int64(u)
		if d.kind == 'i' {
			v = int64(int32(u))
		}
	default:
		u := binary.LittleEndian.Uint64(data[8*i:])
		if d.kind == 'u' && u > math.MaxInt64 {
			return 0, false
		}
		v = int64(u)
	}
	return v, true
}

// formatElement formats element i of data for an error.
func (d dtype) formatElement(data []byte, i int) string {
	if d.kind == 'f' {
		return strconv.FormatFloat(d.float(data, i), 'g', -1, 64)
	}
	if v, ok := d.integer(data, i); ok {
		return strconv.FormatInt(v, 10)
	}
	return strconv.FormatUint(binary.LittleEndian.Uint64(data[8*i:]), 10)
}

// valueError reports element i of data, which the caller cannot hold.
func (d dtype) valueError(data []byte, i int, shape []int, why string) error {
	return &UnsupportedError{Msg: fmt.Sprintf("%s value %s at index %s %s", d, d.formatElement(data, i), pyIndex(shape, i), why)}
}

// maxExactFloat32 is the largest integer below which float32 holds every
// integer exactly: 2^24.
const maxExactFloat32 = 1 << 24

// Read reads a .npy file holding a little-endian array in C order of
// float32, float64 (converted to float32) or integers of up to 64 bits
// (converted to float32 when they are exact there: up to 2^24 in
// magnitude). The array's DType records the stored type. It reads exactly
// the header and the data that the shape calls for and nothing after them.
// Errors are [*FormatError] for malformed files and [*UnsupportedError]
// for other element types or orders, and for values that float32 cannot
// hold.
func Read(r io.Reader) (*Array, error) {
	h, dt, data, err := readData(r, "a float or integer type, little-endian, such as '<f4'")
	if err != nil {
		return nil, err
	}
	a := &Array{Shape: h.Shape, Data: make([]float32, len(data)/dt.size), DType: dt.String()}
	switch {
	case dt.kind == 'f' && dt.size == 4:
		for i := range a.Data {
			a.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	case dt.kind == 'f':
		for i := range a.Data {
			v := dt.float(data, i)
			a.Data[i] = float32(v)
			if math.IsInf(float64(a.Data[i]), 0) && !math.IsInf(v, 0) {
				return nil, dt.valueError(data, i, h.Shape, "is outside the float32 range")
			}
		}
	default:
		for i := range a.Data {
			v, ok := dt.integer(data, i)
			if !ok || v > maxExactFloat32 || v < -maxExactFloat32 {
				return nil, dt.valueError(data, i, h.Shape, "is not exact in float32 (beyond ±2^24)")
			}
			a.Data[i] = float32(v)
		}
	}
	return a, nil
}

// IntArray is an n-dimensional array of integers in row-major (C) order,
// such as class labels; see [Array] for the layout.
type IntArray struct {
	Shape []int
	Data  []int
	// DType is the element type stored in the file, as NumPy names it
	// ("int64", "uint8", "float32").
	DType string
}

// ReadInts reads a .npy file holding a little-endian array in C order of
// integers of up to 64 bits, or of float32 or float64 values that are
// whole numbers, such as class labels. The array's DType records the
// stored type. Like [Read] it reads exactly the header and the data.
// Errors are [*FormatError] for malformed files and [*UnsupportedError]
// for other element types or orders, and for values that are not whole
// numbers or do not fit an int; the error names the element.
func ReadInts(r io.Reader) (*IntArray, error) {
	h, dt, data, err := readData(r, "an integer type (or whole numbers in a float type), little-endian, such as '<i8'")
	if err != nil {
		return nil, err
	}
	a := &IntArray{Shape: h.Shape, Data: make([]int, len(data)/dt.size), DType: dt.String()}
	for i := range a.Data {
		if dt.kind == 'f' {
			v := dt.float(data, i)
			// The bounds are powers of two, exact in float64; MaxInt is not.
			if v != math.Trunc(v) || v < math.MinInt || v >= -float64(math.MinInt) {
				return nil, dt.valueError(data, i, h.Shape, "is not an integer that fits an int")
			}
			a.Data[i] = int(v)
			continue
		}
		v, ok := dt.integer(data, i)
		if !ok || v > math.MaxInt || v < math.MinInt {
			return nil, dt.valueError(data, i, h.Shape, "does not fit an int")
		}
		a.Data[i] = int(v)
	}
	return a, nil
}

// ReadFile reads the .npy file at path like [Read], and also checks that
// the file ends where the data does. Errors name the file.
func ReadFile(path string) (*Array, error) {
	var a *Array
	err := readFile(path, func(r io.Reader) (shape []int, err error) {
		if a, err = Read(r); err != nil {
			return nil, err
		}
		return a.Shape, nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// ReadIntsFile reads the .npy file at path like [ReadInts], and also checks
// that the file ends where the data does. Errors name the file.
func ReadIntsFile(path string) (*IntArray, error) {
	var a *IntArray
	err := readFile(path, func(r io.Reader) (shape []int, err error) {
		if a, err = ReadInts(r); err != nil {
			return nil, err
		}
		return a.Shape, nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// readFile opens path, reads it with read (which returns the shape it
// read), and checks that nothing follows the data.
func readFile(path string, read func(io.Reader) ([]int, error)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	shape, err := read(br)
	if err != nil {
		return withFile(err, path)
	}
	extra, err := io.Copy(io.Discard, br)
	if err != nil {
		return fmt.Errorf("npy: %s: %w", path, err)
	}
	if extra > 0 {
		return &FormatError{File: path, Msg: fmt.Sprintf("%d bytes after the data of shape %s", extra, pyShape(shape))}
	}
	return nil
}

// withFile sets the file name in this package's errors and adds it to others.
func withFile(err error, path string) error {
	var fe *FormatError
	var ue *UnsupportedError
	switch {
	case errors.As(err, &fe):
		fe.File = path
		return fe
	case errors.As(err, &ue):
		ue.File = path
		return ue
	}
	return fmt.Errorf("npy: %s: %w", path, err)
}

// pyShape formats a shape as Python prints a tuple: (), (3,), (2, 3).
func pyShape(shape []int) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, d := range shape {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(d))
	}
	if len(shape) == 1 {
		b.WriteByte(',')
	}
	b.WriteByte(')')
	return b.String()
}

// pyIndex formats the flat index i of an array of the given shape as the
// index NumPy takes: [i] for a 1-d array, [i0, i1, …] otherwise.
func pyIndex(shape []int, i int) string {
	idx := make([]string, len(shape))
	for k := len(shape) - 1; k >= 0; k-- {
		d := max(shape[k], 1)
		idx[k] = strconv.Itoa(i % d)
		i /= d
	}
	return "[" + strings.Join(idx, ", ") + "]"
}

// headerAlign is the size the header is padded to a multiple of, as NumPy
// does (numpy.lib.format.ARRAY_ALIGN), so that the data is aligned for
// memory mapping.
const headerAlign = 64

// encodeHeader returns the NPY 1.0 header for a C-order float32 array.
func encodeHeader(shape []int) []byte {
	dict := "{'descr': '<f4', 'fortran_order': False, 'shape': " + pyShape(shape) + ", }"
	const pre = 10 // magic, version, uint16 length
	n := pre + len(dict) + 1
	pad := (headerAlign - n%headerAlign) % headerAlign
	hlen := len(dict) + pad + 1
	b := make([]byte, 0, pre+hlen)
	b = append(b, magic...)
	b = append(b, 1, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(hlen))
	b = append(b, dict...)
	b = append(b, bytes.Repeat([]byte{' '}, pad)...)
	return append(b, '\n')
}

// Write writes a to w as a .npy file (format 1.0, '<f4', C order). It fails
// if a's shape has a negative dimension or does not match len(a.Data).
func Write(w io.Writer, a *Array) error {
	if err := a.check(); err != nil {
		return err
	}
	hdr := encodeHeader(a.Shape)
	if len(hdr)-10 > math.MaxUint16 {
		return fmt.Errorf("npy: shape %v does not fit a format 1.0 header", a.Shape)
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	const chunk = 1 << 14 // elements per write
	buf := make([]byte, 0, 4*min(chunk, len(a.Data)))
	for data := a.Data; len(data) > 0; {
		k := min(chunk, len(data))
		buf = buf[:0]
		for _, v := range data[:k] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		data = data[k:]
	}
	return nil
}

// WriteFile writes a to the file at path like [Write], atomically, with
// mode 0644 less the umask (see package atomicfile): path never holds a
// partial array.
func WriteFile(path string, a *Array) error {
	if err := a.check(); err != nil {
		return fmt.Errorf("%w (writing %s)", err, path)
	}
	if err := atomicfile.Write(path, 0o644, func(w io.Writer) error { return Write(w, a) }); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}
