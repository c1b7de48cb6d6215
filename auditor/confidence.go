package auditor

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
)

// ConfidenceHeader is the header row of confidence.csv, the columns of a
// Confidence. The names and their order are stable.
var ConfidenceHeader = []string{"checkpoint", "epoch", "split", "index", "max_softmax"}

// Columns of confidence.csv, indices into ConfidenceHeader.
const (
	confCheckpoint = iota
	confEpoch
	confSplit
	confIndex
	confMaxSoftmax
	numConfColumns
)

// Confidence is one row of confidence.csv: the largest softmax probability
// that a checkpoint gives the clean image Index of a split (the probability
// of its predicted class), the baseline against which the report rates the
// margin as a detector of misclassified images. A model whose outputs are
// already probabilities gives its largest output. One row per (checkpoint,
// split, index), whatever the number of norms.
type Confidence struct {
	Checkpoint string // file name of the checkpoint, as in margins.csv
	Epoch      int    // the checkpoint's epoch (≥ 0)
	Split      Split  // train or test
	Index      int    // index of the image in its data set, as in margins.csv
	MaxSoftmax float64
}

// confidenceKey identifies a row: two rows with the same key may not
// coexist.
type confidenceKey struct {
	checkpoint string
	split      Split
	index      int
}

func (c *Confidence) key() confidenceKey { return confidenceKey{c.Checkpoint, c.Split, c.Index} }

// validate checks the invariants documented on Confidence and names the
// first bad column.
func (c *Confidence) validate() *fieldError {
	bad := func(col int, format string, args ...any) *fieldError {
		return &fieldError{col, fmt.Sprintf(format, args...)}
	}
	if err := checkName(c.Checkpoint); err != nil {
		return bad(confCheckpoint, "%v", err)
	}
	if c.Epoch < 0 {
		return bad(confEpoch, "negative epoch %d", c.Epoch)
	}
	if _, err := ParseSplit(string(c.Split)); err != nil {
		return bad(confSplit, "unknown split %q (want train or test)", c.Split)
	}
	if c.Index < 0 {
		return bad(confIndex, "negative index %d", c.Index)
	}
	if !(c.MaxSoftmax >= 0 && c.MaxSoftmax <= 1) {
		return bad(confMaxSoftmax, "max_softmax %v is not a probability", c.MaxSoftmax)
	}
	return nil
}

// WriteConfidence writes the header and the rows as confidence.csv, floats
// in the shortest form that reads back to the same float64. It checks each
// row as ReadConfidence does, except for duplicates.
func WriteConfidence(w io.Writer, rows []Confidence) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ConfidenceHeader); err != nil {
		return fmt.Errorf("auditor: writing confidence: %w", err)
	}
	row := make([]string, numConfColumns)
	for i := range rows {
		c := &rows[i]
		if fe := c.validate(); fe != nil {
			return fmt.Errorf("auditor: confidence %d (%s %s image %d): %s: %w", i, c.Checkpoint, c.Split, c.Index, ConfidenceHeader[fe.column], fe)
		}
		row[confCheckpoint] = c.Checkpoint
		row[confEpoch] = strconv.Itoa(c.Epoch)
		row[confSplit] = string(c.Split)
		row[confIndex] = strconv.Itoa(c.Index)
		row[confMaxSoftmax] = formatFloat(c.MaxSoftmax)
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("auditor: writing confidence: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("auditor: writing confidence: %w", err)
	}
	return nil
}

// ReadConfidence reads confidence.csv from r; name (usually the file name)
// appears in errors. It checks the header, every field, and that no two
// rows share a (checkpoint, split, index) nor one checkpoint two epochs.
// Errors are *ParseError values naming the line and column.
func ReadConfidence(r io.Reader, name string) ([]Confidence, error) {
	var (
		out    []Confidence
		lines  = map[confidenceKey]int{}
		epochs = map[string]int{}
	)
	err := readTable(r, name, ConfidenceHeader, func(t *csvTable, row []string) error {
		var err error
		c := Confidence{Checkpoint: row[confCheckpoint], Split: Split(row[confSplit])}
		if c.Epoch, err = strconv.Atoi(row[confEpoch]); err != nil {
			return t.fieldError(confEpoch, fmt.Errorf("invalid integer %q", row[confEpoch]))
		}
		if c.Index, err = strconv.Atoi(row[confIndex]); err != nil {
			return t.fieldError(confIndex, fmt.Errorf("invalid integer %q", row[confIndex]))
		}
		if c.MaxSoftmax, err = strconv.ParseFloat(row[confMaxSoftmax], 64); err != nil {
			return t.fieldError(confMaxSoftmax, fmt.Errorf("invalid number %q", row[confMaxSoftmax]))
		}
		if fe := c.validate(); fe != nil {
			return t.fieldError(fe.column, fe)
		}
		line := t.line(0)
		if prev, ok := lines[c.key()]; ok {
			return t.rowError(fmt.Errorf(
				"duplicate row for %s %s image %d (first on line %d)", c.Checkpoint, c.Split, c.Index, prev))
		}
		lines[c.key()] = line
		if e, ok := epochs[c.Checkpoint]; ok && e != c.Epoch {
			return t.fieldError(confEpoch, fmt.Errorf("checkpoint %s has epoch %d here and %d above", c.Checkpoint, c.Epoch, e))
		}
		epochs[c.Checkpoint] = c.Epoch
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkConfidence checks rows as ReadConfidence does: each valid, no
// (checkpoint, split, index) twice, one epoch per checkpoint.
func checkConfidence(rows []Confidence) error {
	seen := make(map[confidenceKey]bool, len(rows))
	epochs := map[string]int{}
	for i := range rows {
		c := &rows[i]
		if fe := c.validate(); fe != nil {
			return fmt.Errorf("auditor: confidence %d (%s %s image %d): %s: %w", i, c.Checkpoint, c.Split, c.Index, ConfidenceHeader[fe.column], fe)
		}
		if seen[c.key()] {
			return fmt.Errorf("auditor: two confidences for %s %s image %d", c.Checkpoint, c.Split, c.Index)
		}
		seen[c.key()] = true
		if e, ok := epochs[c.Checkpoint]; ok && e != c.Epoch {
			return fmt.Errorf("auditor: checkpoint %s has epochs %d and %d", c.Checkpoint, e, c.Epoch)
		}
		epochs[c.Checkpoint] = c.Epoch
	}
	return nil
}

// confidenceCoversRecords checks that a part has a confidence for each
// image of its records and for no other image, or no confidences at all.
func confidenceCoversRecords(p *Part) error {
	if len(p.Confidence) == 0 {
		return nil
	}
	type image struct {
		split Split
		index int
	}
	want := map[image]bool{}
	for i := range p.Records {
		want[image{p.Records[i].Split, p.Records[i].Index}] = true
	}
	for i := range p.Confidence {
		c := &p.Confidence[i]
		if !want[image{c.Split, c.Index}] {
			return fmt.Errorf("auditor: a confidence for %s image %d, which has no record", c.Split, c.Index)
		}
	}
	if len(p.Confidence) < len(want) {
		// No duplicates (checked before), so some image has none.
		have := map[image]bool{}
		for i := range p.Confidence {
			have[image{p.Confidence[i].Split, p.Confidence[i].Index}] = true
		}
		for im := range want {
			if !have[im] {
				return fmt.Errorf("auditor: no confidence for %s image %d: a part has a confidence for every image or for none", im.split, im.index)
			}
		}
	}
	return nil
}

// maxSoftmax returns the largest softmax probability of one image's class
// scores: 1/Σ_j exp(z_j − max z), computed in float64 after subtracting
// the largest score, so that no exponential overflows and the result lies
// in [1/K, 1]. Scores that are log-probabilities (see attack.ScoreSource)
// give the largest probability itself, as the softmax of log p is p. It
// returns NaN when a score is NaN.
func maxSoftmax(scores []float32) float64 {
	top := math.Inf(-1)
	for _, z := range scores {
		if z := float64(z); z > top || math.IsNaN(z) {
			top = z
		}
	}
	if math.IsNaN(top) {
		return top
	}
	sum := 0.0
	for _, z := range scores {
		sum += math.Exp(float64(z) - top)
	}
	return 1 / sum
}
