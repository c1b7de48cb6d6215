package auditor

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
)

// writePGD writes PGD results in the PGD part format: PGDHeader and one row
// per result.
func writePGD(w io.Writer, res []PGDResult) error {
	cw := csv.NewWriter(w)
	cw.Write(PGDHeader)
	for i := range res {
		p := &res[i]
		if err := p.validate(); err != nil {
			return fmt.Errorf("PGD result %d: %w", i, err)
		}
		cw.Write([]string{
			p.Checkpoint, strconv.Itoa(p.Epoch), string(p.Split), string(p.Norm),
			formatFloat(p.Eps), strconv.Itoa(p.Images), strconv.Itoa(p.Robust),
		})
	}
	cw.Flush()
	return cw.Error()
}

// readPGD reads the PGD part format; errors are *ParseError values.
func readPGD(r io.Reader, name string) ([]PGDResult, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // the header is checked below
	head, err := cr.Read()
	if err == io.EOF {
		return nil, &ParseError{File: name, Err: fmt.Errorf("empty file: %w", ErrHeader)}
	}
	if err != nil {
		return nil, csvError(name, err)
	}
	if len(head) != len(PGDHeader) {
		return nil, &ParseError{File: name, Line: 1, Err: fmt.Errorf("%w: %d columns, want %d", ErrHeader, len(head), len(PGDHeader))}
	}
	cr.FieldsPerRecord = len(PGDHeader)
	for i, h := range head {
		if h != PGDHeader[i] {
			return nil, &ParseError{File: name, Line: 1, Column: i + 1, Field: PGDHeader[i],
				Err: fmt.Errorf("%w: column is %q, want %q", ErrHeader, h, PGDHeader[i])}
		}
	}
	var out []PGDResult
	for {
		row, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, csvError(name, err)
		}
		line, _ := cr.FieldPos(0)
		bad := func(col int, err error) error {
			return &ParseError{File: name, Line: line, Column: col + 1, Field: PGDHeader[col], Err: err}
		}
		var ints [3]int
		for k, col := range []int{1, 5, 6} {
			v, err := strconv.Atoi(row[col])
			if err != nil {
				return nil, bad(col, fmt.Errorf("invalid integer %q", row[col]))
			}
			ints[k] = v
		}
		eps, err := strconv.ParseFloat(row[4], 64)
		if err != nil {
			return nil, bad(4, fmt.Errorf("invalid number %q", row[4]))
		}
		p := PGDResult{Checkpoint: row[0], Epoch: ints[0], Split: Split(row[2]), Norm: Norm(row[3]), Eps: eps, Images: ints[1], Robust: ints[2]}
		if err := p.validate(); err != nil {
			return nil, &ParseError{File: name, Line: line, Err: err}
		}
		out = append(out, p)
	}
}
