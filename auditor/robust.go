package auditor

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/marginaudit/marginaudit/auditor/attack"
)

// RobustHeader is the header row of robust.csv, the columns of a
// RobustImage. The names and their order are stable.
var RobustHeader = []string{"checkpoint", "epoch", "split", "norm", "eps", "index", "robust"}

// Columns of robust.csv, indices into RobustHeader.
const (
	robCheckpoint = iota
	robEpoch
	robSplit
	robNorm
	robEps
	robIndex
	robRobust
	numRobColumns
)

// RobustImage is one row of robust.csv: whether a checkpoint still
// classifies image Index of a split correctly under the PGD attack of one
// norm and radius (false too when the clean image is misclassified). The
// rows of one (checkpoint, split, norm, eps) add up to its PGDResult; they
// let `diff` pair two models' outcomes image by image (McNemar's test).
type RobustImage struct {
	Checkpoint string
	Epoch      int
	Split      Split
	Norm       Norm
	Eps        float64
	Index      int
	Robust     bool
}

// robustKey identifies a row: two rows with the same key may not coexist.
type robustKey struct {
	checkpoint string
	split      Split
	norm       Norm
	eps        float64
	index      int
}

func (r *RobustImage) key() robustKey {
	return robustKey{r.Checkpoint, r.Split, r.Norm, r.Eps, r.Index}
}

// validate checks the fields and names the first bad column.
func (r *RobustImage) validate() *fieldError {
	bad := func(col int, format string, args ...any) *fieldError {
		return &fieldError{col, fmt.Sprintf(format, args...)}
	}
	if err := checkName(r.Checkpoint); err != nil {
		return bad(robCheckpoint, "%v", err)
	}
	if r.Epoch < 0 {
		return bad(robEpoch, "negative epoch %d", r.Epoch)
	}
	if _, err := ParseSplit(string(r.Split)); err != nil {
		return bad(robSplit, "unknown split %q (want train or test)", r.Split)
	}
	if _, err := attack.ParseNorm(string(r.Norm)); err != nil {
		return bad(robNorm, "unknown norm %q (want l2 or linf)", r.Norm)
	}
	if !(r.Eps >= 0) || math.IsInf(r.Eps, 0) {
		return bad(robEps, "eps %v is not a finite number ≥ 0", r.Eps)
	}
	if r.Index < 0 {
		return bad(robIndex, "negative index %d", r.Index)
	}
	return nil
}

// WriteRobust writes the header and the rows as robust.csv. It checks
// each row as ReadRobust does, except for duplicates.
func WriteRobust(w io.Writer, rows []RobustImage) error {
	cw := csv.NewWriter(w)
	cw.Write(RobustHeader)
	row := make([]string, numRobColumns)
	for i := range rows {
		r := &rows[i]
		if fe := r.validate(); fe != nil {
			return fmt.Errorf("auditor: robust row %d (%s %s image %d): %s: %w", i, r.Checkpoint, r.Split, r.Index, RobustHeader[fe.column], fe)
		}
		row[robCheckpoint], row[robEpoch], row[robSplit], row[robNorm] = r.Checkpoint, strconv.Itoa(r.Epoch), string(r.Split), string(r.Norm)
		row[robEps], row[robIndex], row[robRobust] = formatFloat(r.Eps), strconv.Itoa(r.Index), strconv.FormatBool(r.Robust)
		cw.Write(row)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("auditor: writing robust outcomes: %w", err)
	}
	return nil
}

// ReadRobust reads robust.csv from r; name (usually the file name) appears
// in errors. It checks the header, every field, and that no two rows share
// a (checkpoint, split, norm, eps, index). Errors are *ParseError values
// naming the line and column.
func ReadRobust(r io.Reader, name string) ([]RobustImage, error) {
	var out []RobustImage
	lines := map[robustKey]int{}
	err := readTable(r, name, RobustHeader, func(t *csvTable, row []string) error {
		var err error
		x := RobustImage{Checkpoint: row[robCheckpoint], Split: Split(row[robSplit]), Norm: Norm(row[robNorm])}
		if x.Epoch, err = strconv.Atoi(row[robEpoch]); err != nil {
			return t.fieldError(robEpoch, fmt.Errorf("invalid integer %q", row[robEpoch]))
		}
		if x.Eps, err = strconv.ParseFloat(row[robEps], 64); err != nil {
			return t.fieldError(robEps, fmt.Errorf("invalid number %q", row[robEps]))
		}
		if x.Index, err = strconv.Atoi(row[robIndex]); err != nil {
			return t.fieldError(robIndex, fmt.Errorf("invalid integer %q", row[robIndex]))
		}
		if x.Robust, err = strconv.ParseBool(row[robRobust]); err != nil || (row[robRobust] != "true" && row[robRobust] != "false") {
			return t.fieldError(robRobust, fmt.Errorf("invalid boolean %q (want true or false)", row[robRobust]))
		}
		if fe := x.validate(); fe != nil {
			return t.fieldError(fe.column, fe)
		}
		if prev, ok := lines[x.key()]; ok {
			return t.rowError(fmt.Errorf("duplicate row for %s %s %s eps %g image %d (first on line %d)", x.Checkpoint, x.Split, x.Norm, x.Eps, x.Index, prev))
		}
		lines[x.key()] = t.line(0)
		out = append(out, x)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkRobust checks a part's robust rows: each valid, none twice, and,
// when there are any, adding up to the part's PGD results exactly.
func checkRobust(p *Part) error {
	type attack struct {
		split Split
		norm  Norm
		eps   float64
	}
	images, robust := map[attack]int{}, map[attack]int{}
	seen := map[robustKey]bool{}
	for i := range p.Robust {
		r := &p.Robust[i]
		if fe := r.validate(); fe != nil {
			return fmt.Errorf("auditor: robust row %d: %s: %w", i, RobustHeader[fe.column], fe)
		}
		if seen[r.key()] {
			return fmt.Errorf("auditor: two robust rows for %s %s %s eps %g image %d", r.Checkpoint, r.Split, r.Norm, r.Eps, r.Index)
		}
		seen[r.key()] = true
		a := attack{r.Split, r.Norm, r.Eps}
		images[a]++
		if r.Robust {
			robust[a]++
		}
	}
	if len(p.Robust) == 0 {
		return nil
	}
	for _, res := range p.PGD {
		a := attack{res.Split, res.Norm, res.Eps}
		if images[a] != res.Images || robust[a] != res.Robust {
			return fmt.Errorf("auditor: %s %s eps %g: %d of %d images robust, but the robust rows say %d of %d",
				res.Split, res.Norm, res.Eps, res.Robust, res.Images, robust[a], images[a])
		}
		delete(images, a)
	}
	for a := range images {
		return fmt.Errorf("auditor: robust rows for %s %s eps %g without a PGD result", a.split, a.norm, a.eps)
	}
	return nil
}
