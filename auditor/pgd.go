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

// readPGD reads the PGD part format; errors are *ParseError values. An
// error in a field names the line on which its row starts.
func readPGD(r io.Reader, name string) ([]PGDResult, error) {
	var out []PGDResult
	err := readTable(r, name, PGDHeader, func(t *csvTable, row []string) error {
		line := t.line(0)
		bad := func(col int, err error) error {
			return &ParseError{File: name, Line: line, Column: col + 1, Field: PGDHeader[col], Err: err}
		}
		var ints [3]int
		for k, col := range []int{1, 5, 6} {
			v, err := strconv.Atoi(row[col])
			if err != nil {
				return bad(col, fmt.Errorf("invalid integer %q", row[col]))
			}
			ints[k] = v
		}
		eps, err := strconv.ParseFloat(row[4], 64)
		if err != nil {
			return bad(4, fmt.Errorf("invalid number %q", row[4]))
		}
		p := PGDResult{Checkpoint: row[0], Epoch: ints[0], Split: Split(row[2]), Norm: Norm(row[3]), Eps: eps, Images: ints[1], Robust: ints[2]}
		if err := p.validate(); err != nil {
			return t.rowError(err)
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
