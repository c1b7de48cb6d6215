package report

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/marginaudit/marginaudit/auditor"
)

// ConfidenceFile is the optional file of an audit directory that holds the
// clean max-softmax confidence of every audited image (see Confidence). When
// it is present, the report compares the margin as a misclassification
// detector with the max-softmax baseline on the same images.
const ConfidenceFile = "confidence.csv"

// ConfidenceHeader is the header row of confidence.csv.
var ConfidenceHeader = []string{"checkpoint", "epoch", "split", "index", "max_softmax"}

// Confidence is one row of confidence.csv: the largest softmax probability
// that a checkpoint gives the clean image Index of a split (the probability
// of its predicted class). A model whose outputs are already probabilities
// gives its largest output. One row per (checkpoint, split, index), whatever
// the number of norms.
type Confidence struct {
	Checkpoint string
	Epoch      int
	Split      auditor.Split
	Index      int
	MaxSoftmax float64 // in [0, 1]
}

func (c *Confidence) validate() error {
	switch {
	case c.Checkpoint == "":
		return errors.New("empty checkpoint name")
	case c.Epoch < 0:
		return fmt.Errorf("negative epoch %d", c.Epoch)
	case c.Index < 0:
		return fmt.Errorf("negative index %d", c.Index)
	case !(c.MaxSoftmax >= 0 && c.MaxSoftmax <= 1):
		return fmt.Errorf("max_softmax %v is not a probability", c.MaxSoftmax)
	}
	_, err := auditor.ParseSplit(string(c.Split))
	return err
}

// WriteConfidence writes rows as confidence.csv, floats in the shortest
// form that reads back to the same float64.
func WriteConfidence(w io.Writer, rows []Confidence) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ConfidenceHeader); err != nil {
		return err
	}
	for i := range rows {
		c := &rows[i]
		if err := c.validate(); err != nil {
			return fmt.Errorf("report: confidence row %d: %w", i, err)
		}
		if err := cw.Write([]string{
			c.Checkpoint, strconv.Itoa(c.Epoch), string(c.Split), strconv.Itoa(c.Index),
			strconv.FormatFloat(c.MaxSoftmax, 'g', -1, 64),
		}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ReadConfidence reads confidence.csv from r; name (usually the file name)
// appears in errors, with the line of a bad row. It checks the header, every
// field, and that no (checkpoint, split, index) appears twice.
func ReadConfidence(r io.Reader, name string) ([]Confidence, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(ConfidenceHeader)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("report: %s: empty file, want the header %v", name, ConfidenceHeader)
	}
	if err != nil {
		return nil, fmt.Errorf("report: %s: %w", name, err)
	}
	if !slices.Equal(head, ConfidenceHeader) {
		return nil, fmt.Errorf("report: %s:1: header %v, want %v", name, head, ConfidenceHeader)
	}
	type key struct {
		ckpt  string
		split auditor.Split
		index int
	}
	seen := map[key]int{}
	var out []Confidence
	for {
		row, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("report: %s: %w", name, err)
		}
		var c Confidence
		c.Checkpoint = row[0]
		c.Split = auditor.Split(row[2])
		if c.Epoch, err = strconv.Atoi(row[1]); err != nil {
			return nil, fmt.Errorf("report: %s:%d: epoch: %w", name, line, err)
		}
		if c.Index, err = strconv.Atoi(row[3]); err != nil {
			return nil, fmt.Errorf("report: %s:%d: index: %w", name, line, err)
		}
		if c.MaxSoftmax, err = strconv.ParseFloat(row[4], 64); err != nil {
			return nil, fmt.Errorf("report: %s:%d: max_softmax: %w", name, line, err)
		}
		if err := c.validate(); err != nil {
			return nil, fmt.Errorf("report: %s:%d: %w", name, line, err)
		}
		k := key{c.Checkpoint, c.Split, c.Index}
		if prev, ok := seen[k]; ok {
			return nil, fmt.Errorf("report: %s:%d: %s %s image %d already on line %d", name, line, c.Checkpoint, c.Split, c.Index, prev)
		}
		seen[k] = line
		out = append(out, c)
	}
}
