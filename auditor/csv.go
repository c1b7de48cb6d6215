package auditor

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Header is the header row of margins.csv, the columns of a Record.
// The names and their order are stable: tools downstream read them.
var Header = []string{
	"checkpoint", "epoch", "split", "index", "label", "pred", "correct",
	"norm", "margin", "margin_refined", "iterations", "retries", "success",
	"censored", "margin_lower",
}

// headerRequired is the number of columns every margins.csv has: files
// written before censoring and certified bounds existed stop after
// success.
const headerRequired = colCensored

// Columns of margins.csv, indices into Header.
const (
	colCheckpoint = iota
	colEpoch
	colSplit
	colIndex
	colLabel
	colPred
	colCorrect
	colNorm
	colMargin
	colMarginRefined
	colIterations
	colRetries
	colSuccess
	colCensored
	colMarginLower
	numColumns
)

// ParseError is a malformed margins.csv: a CSV syntax error, a wrong
// header, or a field that does not parse or breaks an invariant of Record.
type ParseError struct {
	File   string // file name, as given to the reader
	Line   int    // 1-based line of the field (0 when the error concerns the file)
	Column int    // 1-based column of the field in the header (0 for the whole row)
	Field  string // name of the column, when Column > 0
	Err    error
}

// Error formats the error as "auditor: FILE:LINE: column N (NAME): cause".
func (e *ParseError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Column > 0 {
		return fmt.Sprintf("auditor: %s: column %d (%s): %v", loc, e.Column, e.Field, e.Err)
	}
	return fmt.Sprintf("auditor: %s: %v", loc, e.Err)
}

// Unwrap returns the cause.
func (e *ParseError) Unwrap() error { return e.Err }

// ErrHeader is wrapped by a ParseError when a file does not start with the
// expected header.
var ErrHeader = errors.New("not the expected header")

// Writer writes records as margins.csv rows. Call Flush (or Close of the
// underlying file after Flush) when done; errors are sticky.
type Writer struct {
	w      *csv.Writer
	header bool
	row    []string
}

// NewWriter returns a Writer that writes the header before the first record.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: csv.NewWriter(w), row: make([]string, numColumns)}
}

// WriteHeader writes the header row unless it was written already. Write
// calls it, so it is needed only for a file without records.
func (w *Writer) WriteHeader() error {
	if w.header {
		return nil
	}
	w.header = true
	if err := w.w.Write(Header); err != nil {
		return fmt.Errorf("auditor: writing margins: %w", err)
	}
	return nil
}

// Write validates r and writes it as one row. Floats are written in the
// shortest form that parses back to the same float64 (strconv 'g', -1); a
// record without a refined margin has empty margin_refined and censored
// fields, one without a certificate an empty margin_lower.
func (w *Writer) Write(r *Record) error {
	if fe := r.validate(); fe != nil {
		return fmt.Errorf("auditor: record %s %s image %d %s: %s: %w", r.Checkpoint, r.Split, r.Index, r.Norm, Header[fe.column], fe)
	}
	if err := w.WriteHeader(); err != nil {
		return err
	}
	row := w.row
	row[colCheckpoint] = r.Checkpoint
	row[colEpoch] = strconv.Itoa(r.Epoch)
	row[colSplit] = string(r.Split)
	row[colIndex] = strconv.Itoa(r.Index)
	row[colLabel] = strconv.Itoa(r.Label)
	row[colPred] = strconv.Itoa(r.Pred)
	row[colCorrect] = strconv.FormatBool(r.Correct)
	row[colNorm] = string(r.Norm)
	row[colMargin] = formatFloat(r.Margin)
	row[colMarginRefined] = ""
	if r.Refined() {
		row[colMarginRefined] = formatFloat(r.MarginRefined)
	}
	row[colIterations] = strconv.Itoa(r.Iterations)
	row[colRetries] = strconv.Itoa(r.Retries)
	row[colSuccess] = strconv.FormatBool(r.Success)
	row[colCensored] = ""
	if r.Refined() {
		row[colCensored] = strconv.FormatBool(r.Censored)
	}
	row[colMarginLower] = ""
	if r.Certified {
		row[colMarginLower] = formatFloat(r.MarginLower)
	}
	if err := w.w.Write(row); err != nil {
		return fmt.Errorf("auditor: writing margins: %w", err)
	}
	return nil
}

// Flush writes any buffered data to the underlying writer and returns the
// first error that occurred.
func (w *Writer) Flush() error {
	w.w.Flush()
	if err := w.w.Error(); err != nil {
		return fmt.Errorf("auditor: writing margins: %w", err)
	}
	return nil
}

// WriteRecords writes the header and the records to w.
func WriteRecords(w io.Writer, records []Record) error {
	cw := NewWriter(w)
	if err := cw.WriteHeader(); err != nil {
		return err
	}
	for i := range records {
		if err := cw.Write(&records[i]); err != nil {
			return err
		}
	}
	return cw.Flush()
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// ReadRecords reads a margins.csv file from r; name (usually the file
// name) appears in errors. A file written before the censored and
// margin_lower columns existed reads with Censored and Certified false. It checks the header, every field, and that no
// two rows share a (checkpoint, split, index, norm) key nor one checkpoint
// two epochs. Errors are *ParseError values naming the line and column.
func ReadRecords(r io.Reader, name string) ([]Record, error) {
	var (
		out    []Record
		lines  = map[recordKey]int{}
		epochs = map[string]int{}
	)
	err := readTableFrom(r, name, Header, headerRequired, func(t *csvTable, row []string) error {
		rec, col, err := parseRow(row)
		if err != nil {
			return t.fieldError(col, err)
		}
		line := t.line(0)
		if prev, ok := lines[rec.key()]; ok {
			return t.rowError(fmt.Errorf(
				"duplicate row for %s %s image %d norm %s (first on line %d)", rec.Checkpoint, rec.Split, rec.Index, rec.Norm, prev))
		}
		lines[rec.key()] = line
		if e, ok := epochs[rec.Checkpoint]; ok && e != rec.Epoch {
			return t.fieldError(colEpoch, fmt.Errorf("checkpoint %s has epoch %d here and %d above", rec.Checkpoint, rec.Epoch, e))
		}
		epochs[rec.Checkpoint] = rec.Epoch
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// csvTable is a CSV file being read by readTable: a fixed header, then
// rows of as many fields. Its methods locate the errors of the row being
// read.
type csvTable struct {
	name   string   // file name, as given to the reader
	header []string // the expected header row
	fields int      // the fields of each row in the file (a prefix of header)
	cr     *csv.Reader
}

// readTable reads a CSV file from r that must start with header, and calls
// each with every following row in turn, until the end of the file or the
// first error, which it returns. name (usually the file name) appears in
// errors. The header, a row of another length and CSV syntax are checked
// here, with errors that are *ParseError values; each should return its
// own errors made by t's methods. The row slice is reused by the next call.
func readTable(r io.Reader, name string, header []string, each func(t *csvTable, row []string) error) error {
	return readTableFrom(r, name, header, len(header), each)
}

// readTableFrom is readTable for a format whose later versions added
// columns at the end: the file's header may stop after the first required
// columns of header, and each then sees the missing fields as "".
func readTableFrom(r io.Reader, name string, header []string, required int, each func(t *csvTable, row []string) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // the header is checked below
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err == io.EOF {
		return &ParseError{File: name, Err: fmt.Errorf("empty file: %w", ErrHeader)}
	}
	if err != nil {
		return csvError(name, err)
	}
	if len(head) < required || len(head) > len(header) {
		want := strconv.Itoa(len(header))
		if required < len(header) {
			want = fmt.Sprintf("%d to %d", required, len(header))
		}
		return &ParseError{File: name, Line: 1, Err: fmt.Errorf("%w: %d columns, want %s", ErrHeader, len(head), want)}
	}
	cr.FieldsPerRecord = len(head)
	for i, h := range head {
		if h != header[i] {
			return &ParseError{File: name, Line: 1, Column: i + 1, Field: header[i],
				Err: fmt.Errorf("%w: column is %q, want %q", ErrHeader, h, header[i])}
		}
	}
	if len(head) < len(header) {
		full := make([]string, len(header))
		inner := each
		each = func(t *csvTable, row []string) error {
			clear(full[copy(full, row):])
			return inner(t, full)
		}
	}
	t := &csvTable{name: name, header: header, fields: len(head), cr: cr}
	for {
		row, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvError(name, err)
		}
		if err := each(t, row); err != nil {
			return err
		}
	}
}

// line returns the 1-based line on which field col (0-based) of the
// current row starts; for a column the file lacks, that of the row.
func (t *csvTable) line(col int) int {
	if col >= t.fields {
		col = 0
	}
	line, _ := t.cr.FieldPos(col)
	return line
}

// fieldError returns a *ParseError for field col (0-based) of the current
// row, at the line on which the field starts.
func (t *csvTable) fieldError(col int, err error) error {
	return &ParseError{File: t.name, Line: t.line(col), Column: col + 1, Field: t.header[col], Err: err}
}

// rowError returns a *ParseError for the current row as a whole, at the
// line on which it starts.
func (t *csvTable) rowError(err error) error {
	return &ParseError{File: t.name, Line: t.line(0), Err: err}
}

// csvError converts an encoding/csv error; its own message carries the
// byte column of a syntax error.
func csvError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ParseError{File: name, Line: pe.Line, Err: pe.Err}
	}
	return &ParseError{File: name, Err: err}
}

// parseRow parses and validates one row; on error it returns the 0-based
// column at fault.
func parseRow(row []string) (Record, int, error) {
	var (
		r   Record
		err error
		col int
	)
	integer := func(c int) int {
		if err != nil {
			return 0
		}
		v, e := strconv.Atoi(row[c])
		if e != nil {
			col, err = c, fmt.Errorf("invalid integer %q", row[c])
		}
		return v
	}
	boolean := func(c int) bool {
		if err != nil {
			return false
		}
		switch row[c] {
		case "true":
			return true
		case "false":
			return false
		}
		col, err = c, fmt.Errorf("invalid boolean %q (want true or false)", row[c])
		return false
	}
	float := func(c int) float64 {
		if err != nil {
			return 0
		}
		v, e := strconv.ParseFloat(row[c], 64)
		if e != nil {
			col, err = c, fmt.Errorf("invalid number %q", row[c])
		}
		return v
	}
	r.Checkpoint = row[colCheckpoint]
	r.Epoch = integer(colEpoch)
	r.Split = Split(row[colSplit])
	r.Index = integer(colIndex)
	r.Label = integer(colLabel)
	r.Pred = integer(colPred)
	r.Correct = boolean(colCorrect)
	r.Norm = Norm(row[colNorm])
	r.Margin = float(colMargin)
	r.MarginRefined = math.NaN()
	if row[colMarginRefined] != "" {
		r.MarginRefined = float(colMarginRefined)
		if err == nil && math.IsNaN(r.MarginRefined) {
			col, err = colMarginRefined, fmt.Errorf("refined margin is NaN (leave the field empty when not refined)")
		}
	}
	r.Iterations = integer(colIterations)
	r.Retries = integer(colRetries)
	r.Success = boolean(colSuccess)
	if row[colCensored] != "" {
		r.Censored = boolean(colCensored)
	}
	if row[colMarginLower] != "" {
		r.MarginLower, r.Certified = float(colMarginLower), true
	}
	if err != nil {
		return r, col, err
	}
	if fe := r.validate(); fe != nil {
		return r, fe.column, fe
	}
	return r, 0, nil
}
