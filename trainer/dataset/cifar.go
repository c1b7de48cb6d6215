package dataset

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// CIFARRecordSize is the size in bytes of one record of the CIFAR-10 binary
// format (https://www.cs.toronto.edu/~kriz/cifar.html, "Binary version"): a
// label byte (0–9) followed by a 32×32 colour image as 1024 red, 1024 green
// and 1024 blue bytes, each plane row-major. The planes are already in CHW
// order, so a record maps straight onto NCHW.
const CIFARRecordSize = 1 + cifarImageBytes

const (
	cifarChannels   = 3
	cifarSide       = 32
	cifarImageBytes = cifarChannels * cifarSide * cifarSide
	cifarClasses    = 10

	// cifarChunkRecords is how many records are read at a time (about 3 MB).
	cifarChunkRecords = 1024
)

// ReadCIFAR reads one CIFAR-10 binary batch file (for example
// data_batch_1.bin or test_batch.bin; gzip-compressed input is also
// accepted) into a Dataset named "cifar10" of 3×32×32 images with 10
// classes. Any positive whole number of records is accepted.
//
// Malformed input yields a *FormatError wrapping ErrRecordSize (the size is
// not a multiple of CIFARRecordSize; the message gives the size),
// ErrLabelRange (a label above 9) or ErrTruncated (no records at all).
func ReadCIFAR(r io.Reader) (d *Dataset, err error) {
	defer recoverInternal(&err)
	s, err := newSource(r, "")
	if err != nil {
		return nil, err
	}
	if err := checkCIFARSize(s); err != nil {
		return nil, err
	}
	pix, labels, err := readCIFAR(s, nil, nil)
	if err != nil {
		return nil, err
	}
	return newCIFAR(pix, labels), nil
}

// LoadCIFAR reads and concatenates CIFAR-10 binary batch files, in the order
// given; for the official training set pass data_batch_1.bin …
// data_batch_5.bin. The sizes of all plain files are checked before any is
// read. Errors name the file.
func LoadCIFAR(paths ...string) (d *Dataset, err error) {
	defer recoverInternal(&err)
	if len(paths) == 0 {
		return nil, errors.New("dataset: LoadCIFAR: no files given")
	}
	srcs := make([]*source, len(paths))
	var records int64
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("dataset: %w", err)
		}
		defer f.Close()
		s, err := newSource(f, p)
		if err != nil {
			return nil, err
		}
		if err := checkCIFARSize(s); err != nil {
			return nil, err
		}
		records += max(s.size, 0) / CIFARRecordSize
		srcs[i] = s
	}
	pix := make([]float32, 0, records*cifarImageBytes)
	labels := make([]int, 0, records)
	for _, s := range srcs {
		if pix, labels, err = readCIFAR(s, pix, labels); err != nil {
			return nil, err
		}
	}
	return newCIFAR(pix, labels), nil
}

func newCIFAR(pix []float32, labels []int) *Dataset {
	return &Dataset{
		Name: "cifar10", Images: pix, Labels: labels, N: len(labels),
		C: cifarChannels, H: cifarSide, W: cifarSide, Classes: cifarClasses,
	}
}

// checkCIFARSize rejects, before reading, a stream of known size that is
// empty, too large, or not a whole number of records.
func checkCIFARSize(s *source) error {
	switch {
	case s.size < 0:
		return nil
	case s.size == 0:
		return s.fail(0, ErrTruncated, "empty file, want CIFAR-10 records of 3073 bytes")
	case s.size > MaxDataBytes:
		return s.fail(0, ErrTooLarge, fmt.Sprintf("%d bytes, limit %d", s.size, MaxDataBytes))
	case s.size%CIFARRecordSize != 0:
		return recordSizeErr(s, s.size)
	}
	return nil
}

// recordSizeErr reports a stream of size bytes that ends inside a record.
func recordSizeErr(s *source, size int64) error {
	whole := size / CIFARRecordSize
	return s.fail(whole*CIFARRecordSize, ErrRecordSize,
		fmt.Sprintf("size %d bytes is %d records of %d bytes and %d bytes over", size, whole, CIFARRecordSize, size%CIFARRecordSize))
}

// readCIFAR appends the records of s to pix and labels.
func readCIFAR(s *source, pix []float32, labels []int) ([]float32, []int, error) {
	// Of unknown size, start small and double up to cifarChunkRecords, so
	// that short streams stay cheap.
	chunk := int64(16)
	if s.size >= 0 {
		n := s.size / CIFARRecordSize
		chunk = max(min(cifarChunkRecords, n), 1)
		pix = slices.Grow(pix, int(n)*cifarImageBytes)
		labels = slices.Grow(labels, int(n))
	}
	buf := make([]byte, chunk*CIFARRecordSize)
	start := s.off
	for {
		m, err := fill(s.r, buf)
		if s.off-start+int64(m) > MaxDataBytes {
			return nil, nil, s.fail(s.off, ErrTooLarge, fmt.Sprintf("more than %d bytes", MaxDataBytes))
		}
		whole := m / CIFARRecordSize
		p := len(pix)
		pix = slices.Grow(pix, whole*cifarImageBytes)[:p+whole*cifarImageBytes]
		for j := range whole {
			rec := buf[j*CIFARRecordSize : (j+1)*CIFARRecordSize]
			if rec[0] >= cifarClasses {
				return nil, nil, s.fail(s.off+int64(j*CIFARRecordSize), ErrLabelRange,
					fmt.Sprintf("label %d in record %d, want 0–%d", rec[0], (s.off-start)/CIFARRecordSize+int64(j), cifarClasses-1))
			}
			labels = append(labels, int(rec[0]))
			dst := pix[p+j*cifarImageBytes : p+(j+1)*cifarImageBytes]
			for k, b := range rec[1:] {
				dst[k] = byteToUnit[b]
			}
		}
		s.off += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, s.readErr(err, "CIFAR-10 records", 0, 0)
		}
		if chunk < cifarChunkRecords {
			chunk *= 2
			buf = make([]byte, chunk*CIFARRecordSize)
		}
	}
	switch size := s.off - start; {
	case size == 0:
		return nil, nil, s.fail(0, ErrTruncated, "empty file, want CIFAR-10 records of 3073 bytes")
	case size%CIFARRecordSize != 0:
		return nil, nil, recordSizeErr(s, size)
	}
	return pix, labels, nil
}

// fill reads into buf until it is full or r fails. Unlike io.ReadFull it
// returns io.EOF for a clean end of r however much it read, and passes any
// other error through: a gzip stream cut short reports io.ErrUnexpectedEOF,
// which must not pass for the end of the data.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// WriteCIFAR writes d as one CIFAR-10 binary batch file. d must hold 3×32×32
// images and labels 0–9. Pixels are rounded to the nearest of the 256 levels
// k/255 and clamped to [0, 1], so data read by ReadCIFAR round trips exactly.
func WriteCIFAR(w io.Writer, d *Dataset) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if d.C != cifarChannels || d.H != cifarSide || d.W != cifarSide || d.Classes > cifarClasses {
		return fmt.Errorf("%w: CIFAR-10 needs 3×32×32 images and at most 10 classes, have %d×%d×%d and %d classes",
			ErrBadDims, d.C, d.H, d.W, d.Classes)
	}
	buf := make([]byte, CIFARRecordSize*min(d.N, cifarChunkRecords))
	for i := 0; i < d.N; {
		n := min(d.N-i, cifarChunkRecords)
		for j := range n {
			rec := buf[j*CIFARRecordSize : (j+1)*CIFARRecordSize]
			rec[0] = byte(d.Labels[i+j])
			for k, v := range d.Image(i + j) {
				rec[1+k] = unitToByte(v)
			}
		}
		if _, err := w.Write(buf[:n*CIFARRecordSize]); err != nil {
			return err
		}
		i += n
	}
	return nil
}
