package dataset

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// Magic numbers of the IDX files this package reads: big-endian, two zero
// bytes, the element type (0x08, unsigned byte) and the number of dimensions.
// See http://yann.lecun.com/exdb/mnist/ ("FILE FORMATS FOR THE MNIST DATABASE").
const (
	IDXImagesMagic uint32 = 0x00000803 // unsigned bytes, 3 dimensions: [n, rows, cols]
	IDXLabelsMagic uint32 = 0x00000801 // unsigned bytes, 1 dimension: [n]
)

// idxMaxLabel is the largest label in an MNIST-format label file.
const idxMaxLabel = 9

// IDXConfig is the header of an IDX image or label file, as returned by
// DecodeIDXConfig without reading the data.
type IDXConfig struct {
	Magic uint32 // IDXImagesMagic or IDXLabelsMagic
	N     int    // number of images or labels
	Rows  int    // image height; 0 for a label file
	Cols  int    // image width; 0 for a label file
}

// HeaderSize returns the size in bytes of the header: 16 for images, 8 for
// labels.
func (c IDXConfig) HeaderSize() int64 {
	if c.Magic == IDXImagesMagic {
		return 16
	}
	return 8
}

// DataSize returns the size in bytes of the data after the header:
// N·Rows·Cols for images, N for labels.
func (c IDXConfig) DataSize() int64 {
	if c.Magic == IDXImagesMagic {
		return int64(c.N) * int64(c.Rows) * int64(c.Cols)
	}
	return int64(c.N)
}

// idxTypeNames names the IDX element types (third magic byte).
var idxTypeNames = map[byte]string{
	0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16",
	0x0C: "int32", 0x0D: "float32", 0x0E: "float64",
}

// describeMagic says what a magic number is, for error messages.
func describeMagic(m uint32) string {
	switch {
	case m == IDXImagesMagic:
		return "0x00000803 (IDX images)"
	case m == IDXLabelsMagic:
		return "0x00000801 (IDX labels)"
	case m>>16 == 0 && idxTypeNames[byte(m>>8)] != "":
		return fmt.Sprintf("0x%08x (IDX %s, %d dimensions)", m, idxTypeNames[byte(m>>8)], byte(m))
	}
	return fmt.Sprintf("0x%08x (not an IDX file)", m)
}

// readIDXHeader reads and checks an IDX header. want is the required magic,
// or 0 to accept images and labels.
func readIDXHeader(s *source, want uint32) (IDXConfig, error) {
	var b [12]byte
	if err := s.readFull(b[:4], "IDX magic number"); err != nil {
		return IDXConfig{}, err
	}
	m := binary.BigEndian.Uint32(b[:4])
	switch {
	case want != 0 && m != want:
		return IDXConfig{}, s.fail(0, ErrBadMagic, fmt.Sprintf("got %s, want %s", describeMagic(m), describeMagic(want)))
	case m != IDXImagesMagic && m != IDXLabelsMagic:
		return IDXConfig{}, s.fail(0, ErrBadMagic, fmt.Sprintf("got %s, want IDX unsigned-byte images (0x00000803) or labels (0x00000801)", describeMagic(m)))
	}
	c := IDXConfig{Magic: m}
	if m == IDXLabelsMagic {
		if err := s.readFull(b[:4], "IDX label count"); err != nil {
			return IDXConfig{}, err
		}
		n := int64(binary.BigEndian.Uint32(b[:4]))
		if n > MaxDataBytes {
			return IDXConfig{}, s.fail(4, ErrTooLarge, fmt.Sprintf("%d labels claimed, limit %d", n, MaxDataBytes))
		}
		c.N = int(n)
		return c, nil
	}
	if err := s.readFull(b[:12], "IDX image dimensions"); err != nil {
		return IDXConfig{}, err
	}
	n := uint64(binary.BigEndian.Uint32(b[0:]))
	rows := uint64(binary.BigEndian.Uint32(b[4:]))
	cols := uint64(binary.BigEndian.Uint32(b[8:]))
	if rows == 0 || cols == 0 {
		return IDXConfig{}, s.fail(8, ErrBadDims, fmt.Sprintf("images of %d×%d pixels", rows, cols))
	}
	// rows·cols < 2⁶⁴; n·(rows·cols) is computed only once rows·cols ≤ 2²⁸.
	if px := rows * cols; px > MaxDataBytes || n*px > MaxDataBytes {
		return IDXConfig{}, s.fail(4, ErrTooLarge, fmt.Sprintf("%d images of %d×%d pixels claimed, limit %d bytes", n, rows, cols, MaxDataBytes))
	}
	c.N, c.Rows, c.Cols = int(n), int(rows), int(cols)
	return c, nil
}

// DecodeIDXConfig reads only the header of an IDX image or label file, plain
// or gzip-compressed, and checks its magic number and sizes. It may read
// ahead of the header (it buffers r), so r's position afterwards is
// unspecified.
func DecodeIDXConfig(r io.Reader) (cfg IDXConfig, err error) {
	defer recoverInternal(&err)
	s, err := newSource(r, "")
	if err != nil {
		return IDXConfig{}, err
	}
	return readIDXHeader(s, 0)
}

// ReadIDXImages reads an IDX image file (magic 0x00000803, dimensions
// [n, rows, cols], one unsigned byte per pixel), plain or gzip-compressed, as
// MNIST and Fashion-MNIST ship them. It returns the pixels scaled to [0, 1]
// (byte/255) in the file's order, n·rows·cols values, and the header.
//
// Malformed input yields a *FormatError wrapping ErrBadMagic, ErrBadDims,
// ErrTooLarge, ErrTruncated or ErrTrailingData. Headers claiming more than
// MaxDataBytes are rejected before allocating; otherwise memory grows with
// the data actually read.
func ReadIDXImages(r io.Reader) (pix []float32, cfg IDXConfig, err error) {
	defer recoverInternal(&err)
	s, err := newSource(r, "")
	if err != nil {
		return nil, IDXConfig{}, err
	}
	return readIDXImages(s)
}

func readIDXImages(s *source) ([]float32, IDXConfig, error) {
	cfg, err := readIDXHeader(s, IDXImagesMagic)
	if err != nil {
		return nil, IDXConfig{}, err
	}
	raw, err := s.readN(cfg.DataSize(), "pixel data")
	if err != nil {
		return nil, IDXConfig{}, err
	}
	if err := s.expectEOF(); err != nil {
		return nil, IDXConfig{}, err
	}
	pix := make([]float32, len(raw))
	for i, b := range raw {
		pix[i] = byteToUnit[b]
	}
	return pix, cfg, nil
}

// ReadIDXLabels reads an IDX label file (magic 0x00000801, one unsigned byte
// per label), plain or gzip-compressed. Labels must lie in 0–9, as in MNIST
// and Fashion-MNIST; others fail with a *FormatError wrapping ErrLabelRange
// at the label's offset. Other malformed input fails as in ReadIDXImages.
func ReadIDXLabels(r io.Reader) (labels []int, err error) {
	defer recoverInternal(&err)
	s, err := newSource(r, "")
	if err != nil {
		return nil, err
	}
	return readIDXLabels(s)
}

func readIDXLabels(s *source) ([]int, error) {
	cfg, err := readIDXHeader(s, IDXLabelsMagic)
	if err != nil {
		return nil, err
	}
	raw, err := s.readN(cfg.DataSize(), "labels")
	if err != nil {
		return nil, err
	}
	labels := make([]int, len(raw))
	for i, b := range raw {
		if b > idxMaxLabel {
			return nil, s.fail(cfg.HeaderSize()+int64(i), ErrLabelRange, fmt.Sprintf("label %d at index %d, want 0–%d", b, i, idxMaxLabel))
		}
		labels[i] = int(b)
	}
	if err := s.expectEOF(); err != nil {
		return nil, err
	}
	return labels, nil
}

// LoadIDX reads a pair of IDX files, images and labels (each plain or
// gzip-compressed), into a Dataset with C = 1 and Classes = 10. Errors name
// the file; the two files must hold the same number of examples
// (ErrCountMismatch).
func LoadIDX(imagesPath, labelsPath string) (*Dataset, error) {
	labels, err := readIDXFile(labelsPath, readIDXLabels)
	if err != nil {
		return nil, err
	}
	var cfg IDXConfig
	pix, err := readIDXFile(imagesPath, func(s *source) (p []float32, err error) {
		p, cfg, err = readIDXImages(s)
		return p, err
	})
	if err != nil {
		return nil, err
	}
	if cfg.N != len(labels) {
		return nil, fmt.Errorf("%w: %s holds %d images, %s holds %d labels", ErrCountMismatch, imagesPath, cfg.N, labelsPath, len(labels))
	}
	return &Dataset{
		Images: pix, Labels: labels,
		N: cfg.N, C: 1, H: cfg.Rows, W: cfg.Cols, Classes: idxMaxLabel + 1,
	}, nil
}

// readIDXFile opens path and decodes it with read, naming the file in errors.
func readIDXFile[T any](path string, read func(*source) ([]T, error)) (out []T, err error) {
	defer recoverInternal(&err)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	s, err := newSource(f, path)
	if err != nil {
		return nil, err
	}
	return read(s)
}

// WriteIDXImages writes n images of rows×cols pixels as a plain (not
// compressed) IDX image file. Pixels are rounded to the nearest of the 256
// levels k/255 and clamped to [0, 1], so images read by ReadIDXImages round
// trip exactly. len(pix) must be n·rows·cols.
func WriteIDXImages(w io.Writer, pix []float32, n, rows, cols int) error {
	if n < 0 || rows <= 0 || cols <= 0 || n > MaxDataBytes || rows > MaxDataBytes || cols > MaxDataBytes ||
		int64(rows)*int64(cols) > MaxDataBytes || int64(n)*int64(rows)*int64(cols) > MaxDataBytes {
		return fmt.Errorf("%w: cannot write %d images of %d×%d pixels", ErrBadDims, n, rows, cols)
	}
	if len(pix) != n*rows*cols {
		return fmt.Errorf("%w: %d pixels for %d images of %d×%d", ErrBadDims, len(pix), n, rows, cols)
	}
	buf := make([]byte, 16+len(pix))
	binary.BigEndian.PutUint32(buf[0:], IDXImagesMagic)
	binary.BigEndian.PutUint32(buf[4:], uint32(n))
	binary.BigEndian.PutUint32(buf[8:], uint32(rows))
	binary.BigEndian.PutUint32(buf[12:], uint32(cols))
	for i, v := range pix {
		buf[16+i] = unitToByte(v)
	}
	_, err := w.Write(buf)
	return err
}

// WriteIDXLabels writes labels as a plain (not compressed) IDX label file.
// Every label must lie in 0–9 (ErrLabelRange otherwise).
func WriteIDXLabels(w io.Writer, labels []int) error {
	if len(labels) > MaxDataBytes {
		return fmt.Errorf("%w: %d labels", ErrTooLarge, len(labels))
	}
	buf := make([]byte, 8+len(labels))
	binary.BigEndian.PutUint32(buf[0:], IDXLabelsMagic)
	binary.BigEndian.PutUint32(buf[4:], uint32(len(labels)))
	for i, l := range labels {
		if l < 0 || l > idxMaxLabel {
			return fmt.Errorf("%w: label %d at index %d, want 0–%d", ErrLabelRange, l, i, idxMaxLabel)
		}
		buf[8+i] = byte(l)
	}
	_, err := w.Write(buf)
	return err
}
