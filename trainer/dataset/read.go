package dataset

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// MaxDataBytes is the largest payload, in bytes of the file (one byte per
// pixel or label), that a reader accepts. A header claiming more is rejected
// with ErrTooLarge before anything is allocated. The largest real file,
// MNIST's training images, holds 47,040,000 bytes; all five CIFAR-10 training
// batches together hold 153,650,000.
const MaxDataBytes = 1 << 28

// readChunk is the unit in which payloads of unknown true size are read: a
// header may claim up to MaxDataBytes, but memory grows only with the bytes
// that actually arrive.
const readChunk = 1 << 20

// maxDeflateRatio bounds how much a deflate stream can expand: a stored
// byte costs at least about 1/1032 of a byte (RFC 1951 length 258 coded in
// 2 bits). It caps the uncompressed size a gzip trailer may claim.
const maxDeflateRatio = 1032

// byteToUnit maps a stored byte to a pixel value in [0, 1].
var byteToUnit = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i) / 255
	}
	return t
}()

// unitToByte is the inverse of byteToUnit for values k/255; other values are
// rounded to the nearest byte, clamped to [0, 1], with NaN mapped to 0.
func unitToByte(v float32) byte {
	if !(v > 0) { // also NaN
		return 0
	}
	if v >= 1 {
		return 255
	}
	return byte(math.Round(float64(v) * 255))
}

// source is a decoded byte stream (gzip removed when present) that counts its
// offset and builds errors that name the file and the offset.
type source struct {
	name string
	r    *bufio.Reader
	off  int64 // bytes consumed from the decoded stream
	size int64 // decoded stream's total size when known (plain files), else -1
	hint int64 // plausible decoded size for a gzip file (from its trailer), else -1
}

// newSource wraps r, detecting gzip by its magic bytes 1f 8b.
func newSource(r io.Reader, name string) (*source, error) {
	raw, rawKnown := remainingSize(r)
	br := bufio.NewReaderSize(r, 64<<10)
	s := &source{name: name, r: br, size: -1, hint: -1}
	magic, _ := br.Peek(2)
	if len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		if rawKnown {
			s.size = raw
		}
		return s, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, s.readErr(err, "gzip header", 0, 0)
	}
	s.r = bufio.NewReaderSize(zr, 64<<10)
	if rawKnown {
		if h, ok := gzipSizeHint(r); ok && h <= raw*maxDeflateRatio {
			s.hint = h
		}
	}
	return s, nil
}

// remainingSize reports how many bytes r has left when r can tell cheaply.
func remainingSize(r io.Reader) (int64, bool) {
	switch v := r.(type) {
	case interface{ Len() int }: // bytes.Reader, strings.Reader, bytes.Buffer
		return int64(v.Len()), true
	case *os.File:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return 0, false
		}
		cur, err := v.Seek(0, io.SeekCurrent)
		if err != nil || cur > fi.Size() {
			return 0, false
		}
		return fi.Size() - cur, true
	}
	return 0, false
}

// gzipSizeHint reads the ISIZE field (uncompressed size mod 2³²) from the
// last 4 bytes of a single-member gzip file. It is only a hint: the caller
// bounds it and uses it to size the first allocation, never to trust the data.
func gzipSizeHint(r io.Reader) (int64, bool) {
	var ra io.ReaderAt
	var size int64
	switch v := r.(type) {
	case interface {
		io.ReaderAt
		Size() int64
	}: // bytes.Reader, strings.Reader
		ra, size = v, v.Size()
	case *os.File:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return 0, false
		}
		ra, size = v, fi.Size()
	default:
		return 0, false
	}
	var b [4]byte
	if size < 4 {
		return 0, false
	}
	if _, err := ra.ReadAt(b[:], size-4); err != nil {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint32(b[:])), true
}

// fail returns a *FormatError at offset off.
func (s *source) fail(off int64, err error, detail string) error {
	return &FormatError{File: s.name, Offset: off, Err: err, Detail: detail}
}

// readErr classifies an error met while reading what: the end of the stream
// means truncation, gzip and flate errors mean a corrupt file, anything else
// is an I/O error wrapped with the offset. got and want are byte counts of
// the read that failed.
func (s *source) readErr(err error, what string, got, want int64) error {
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return s.fail(s.off, ErrTruncated, fmt.Sprintf("%s: got %d of %d bytes", what, got, want))
	case errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || errors.As(err, &corrupt):
		return s.fail(s.off, err, "corrupt gzip stream while reading "+what)
	}
	if s.name != "" {
		return fmt.Errorf("dataset: %s: offset %d: reading %s: %w", s.name, s.off, what, err)
	}
	return fmt.Errorf("dataset: offset %d: reading %s: %w", s.off, what, err)
}

// readFull fills p, or fails with ErrTruncated at the offset where data ran out.
func (s *source) readFull(p []byte, what string) error {
	n, err := io.ReadFull(s.r, p)
	s.off += int64(n)
	if err != nil {
		return s.readErr(err, what, int64(n), int64(len(p)))
	}
	return nil
}

// readN reads exactly n bytes (n ≤ MaxDataBytes, checked by the caller). When
// the stream's size is known a short stream fails before allocating;
// otherwise the buffer grows by doubling as data arrives, so a header that
// lies about n costs memory in proportion to the data present, not to n.
func (s *source) readN(n int64, what string) ([]byte, error) {
	if s.size >= 0 && n > s.size-s.off {
		left := s.size - s.off
		return nil, s.fail(s.size, ErrTruncated, fmt.Sprintf("%s: got %d of %d bytes", what, left, n))
	}
	c := n
	if s.size < 0 {
		c = min(n, max(readChunk, s.hint))
	}
	buf := make([]byte, 0, c)
	for int64(len(buf)) < n {
		k := int(min(n-int64(len(buf)), readChunk))
		if cap(buf)-len(buf) < k {
			nb := make([]byte, len(buf), int(min(n, int64(2*cap(buf)+k))))
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(s.r, buf[len(buf):len(buf)+k])
		buf = buf[:len(buf)+m]
		s.off += int64(m)
		if err != nil {
			return nil, s.readErr(err, what, int64(len(buf)), n)
		}
	}
	return buf, nil
}

// expectEOF checks that nothing follows the data. For gzip input this also
// makes the decompressor verify the stream's CRC-32 and length.
func (s *source) expectEOF() error {
	var b [1]byte
	n, err := io.ReadFull(s.r, b[:])
	if n > 0 {
		extra := ""
		if s.size >= 0 {
			extra = fmt.Sprintf("%d bytes after the declared data", s.size-s.off)
		}
		return s.fail(s.off, ErrTrailingData, extra)
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	return s.readErr(err, "end of stream", 0, 0)
}
