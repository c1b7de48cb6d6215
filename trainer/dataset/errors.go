package dataset

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Errors returned by this package wrap one of these (test
// with errors.Is) and usually carry more context in a *FormatError or a
// *NotFoundError.
var (
	// ErrBadMagic reports a file that does not start with the magic number
	// of the expected format, for example an IDX label file passed where
	// images are expected.
	ErrBadMagic = errors.New("dataset: bad magic number")

	// ErrBadDims reports an IDX header whose dimensions are impossible, such
	// as images with zero rows.
	ErrBadDims = errors.New("dataset: bad dimensions")

	// ErrTooLarge reports a header that claims more data than MaxDataBytes.
	// It is checked before anything is allocated.
	ErrTooLarge = errors.New("dataset: claimed size too large")

	// ErrTruncated reports a file that ends before the data its header or
	// its format promises.
	ErrTruncated = errors.New("dataset: unexpected end of data")

	// ErrTrailingData reports bytes after the end of the data the header
	// declares.
	ErrTrailingData = errors.New("dataset: trailing data")

	// ErrRecordSize reports a CIFAR-10 file whose size is not a whole number
	// of 3073-byte records.
	ErrRecordSize = errors.New("dataset: size is not a whole number of records")

	// ErrLabelRange reports a label outside 0–9.
	ErrLabelRange = errors.New("dataset: label out of range")

	// ErrCountMismatch reports an image file and a label file that hold
	// different numbers of examples.
	ErrCountMismatch = errors.New("dataset: image and label counts differ")

	// ErrEmpty reports a split of a named dataset whose files hold no
	// images: valid files, but nothing to train on or to audit.
	ErrEmpty = errors.New("dataset: empty split")

	// ErrUnknownDataset reports a dataset name that Load does not know.
	ErrUnknownDataset = errors.New("dataset: unknown dataset")

	// ErrUnknownSplit reports a split other than "train" or "test".
	ErrUnknownSplit = errors.New("dataset: unknown split")

	// ErrNotFound reports dataset files that are not where Load looked.
	ErrNotFound = errors.New("dataset: data not found")

	// ErrInvalid reports a Dataset whose fields disagree (see Validate).
	ErrInvalid = errors.New("dataset: invalid dataset")

	// errInternal marks a recovered panic: a bug in this package, never a
	// property of the input. Fuzz tests fail on it.
	errInternal = errors.New("dataset: internal error")
)

// A FormatError reports malformed data: where it is (file and byte offset)
// and what is wrong with it (Err, usually one of the sentinel errors above,
// or a gzip/flate error for a corrupt compressed stream).
//
// Offset counts bytes of the decoded stream: for a gzip-compressed file it is
// an offset into the decompressed data, not into the file on disk.
type FormatError struct {
	File   string // file name, or "" when reading from a bare io.Reader
	Offset int64  // byte offset of the problem in the (decompressed) stream
	Err    error  // what is wrong; errors.Is sees through it
	Detail string // extra context, may be empty
}

// Error implements the error interface. The message reads
// "dataset: FILE: offset N: problem: detail".
func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("dataset: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "offset %d: ", e.Offset)
	if e.Err != nil {
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "dataset: "))
	} else {
		b.WriteString("malformed data")
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap returns e.Err.
func (e *FormatError) Unwrap() error { return e.Err }

// A NotFoundError reports dataset files that Load could not find. It wraps
// ErrNotFound.
type NotFoundError struct {
	Dataset  string   // canonical dataset name, e.g. "mnist"
	Split    string   // "train" or "test"
	File     string   // the first file that was missing
	Searched []string // directories searched, in order
	Hint     string   // how to get the data, one line, e.g. `get it with "make data" or …`
}

// Error implements the error interface. The message is one line and ends
// with the hint.
func (e *NotFoundError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dataset: %s %s data not found", e.Dataset, e.Split)
	if e.File != "" {
		fmt.Fprintf(&b, " (no %s", e.File)
		if len(e.Searched) > 0 {
			fmt.Fprintf(&b, " in %s", strings.Join(e.Searched, ", "))
		}
		b.WriteString(")")
	} else if len(e.Searched) > 0 {
		fmt.Fprintf(&b, " (searched %s)", strings.Join(e.Searched, ", "))
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Unwrap returns ErrNotFound.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// recoverInternal turns a panic in a reader of untrusted data into an error
// wrapping errInternal. Use as: defer recoverInternal(&err).
func recoverInternal(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: panic: %v (please report this bug)", errInternal, r)
	}
}
