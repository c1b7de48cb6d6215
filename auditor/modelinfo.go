package auditor

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/marginaudit/marginaudit/internal/convention"
)

// ModelHeader is the header row of a model part file (parts/model/NAME.csv),
// the columns of a ModelInfo. The names and their order are stable; columns
// are only ever added at the end, and parts written before a column existed
// read with its field empty.
var ModelHeader = []string{"checkpoint", "epoch", "scores", "batch", "epoch_from", "input_range", "normalization"}

// modelRequired is the number of columns of the first model parts.
const modelRequired = 4

// ModelInfo records how the auditor ran one checkpoint's model: which class
// scores the attacks used, how a fixed batch dimension was handled, where
// the epoch came from and which input convention applied. Margins are those
// of the logits either way (see attack.ScoreSource); the record says where
// they came from.
type ModelInfo struct {
	Checkpoint string // file name of the checkpoint, as in margins.csv
	Epoch      int    // the checkpoint's epoch (≥ 0)
	// Scores describes the scores: "logits", "log-probabilities (Softmax
	// replaced by LogSoftmax)", "log of the probability outputs" or
	// "log-probabilities (LogSoftmax output)" (attack.ScoreSource).
	Scores string
	// Batch is "" for a model whose batch is symbolic, else "batch fixed at
	// B: rewritten to symbolic" or "batch fixed at B: fed B images per run"
	// (attack.FixedBatch).
	Batch string
	// EpochFrom says where Epoch came from (see Discover): FromPosition
	// when the checkpoints have no epochs, separate models numbered in the
	// order given. "" in parts written before it was recorded.
	EpochFrom EpochSource
	// InputRange is the pixel range [lo, hi] the attacks clipped to, from
	// the settings or the checkpoint's metadata; [0, 0] in parts written
	// before it was recorded.
	InputRange [2]float64
	// Normalization is the normalisation applied inside the graph, in the
	// metadata's form: "none", or "mean=a,b,c;std=d,e,f"; "" in parts
	// written before it was recorded.
	Normalization string
}

// validate checks the invariants documented on ModelInfo.
func (m *ModelInfo) validate() error {
	if err := checkName(m.Checkpoint); err != nil {
		return err
	}
	switch {
	case m.Epoch < 0:
		return fmt.Errorf("negative epoch %d", m.Epoch)
	case m.Scores == "":
		return errors.New("no scores")
	}
	switch m.EpochFrom {
	case "", FromMetadata, FromName, FromPosition:
	default:
		return fmt.Errorf("epoch from %q, want %s, %s or %s", m.EpochFrom, FromMetadata, FromName, FromPosition)
	}
	if r := m.InputRange; r != [2]float64{} && !(r[0] < r[1]) {
		return fmt.Errorf("input range [%v, %v] is not lo < hi", r[0], r[1])
	}
	if n := m.Normalization; n != "" && n != "none" {
		if _, _, err := convention.ParseNormalization(n); err != nil {
			return fmt.Errorf("normalization %q: %w", n, err)
		}
	}
	return nil
}

// formatRange writes an input range as the metadata does, "lo,hi"; "" for
// none recorded.
func formatRange(r [2]float64) string {
	if r == [2]float64{} {
		return ""
	}
	return convention.FormatRange(r)
}

// formatNormalization writes a normalisation in the metadata's form.
func formatNormalization(mean, std []float32) string {
	widened := func(v []float32) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = widen(x)
		}
		return out
	}
	return convention.FormatNormalization(widened(mean), widened(std))
}

// widen converts a float32 to the float64 with the same shortest decimal
// form (0.1, not 0.10000000149011612), as a user would have written it.
func widen(x float32) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
	return v
}

// writeModelInfo writes the model part format: ModelHeader and, when m is
// not nil, its row.
func writeModelInfo(w io.Writer, m *ModelInfo) error {
	cw := csv.NewWriter(w)
	cw.Write(ModelHeader)
	if m != nil {
		if err := m.validate(); err != nil {
			return fmt.Errorf("model of %s: %w", m.Checkpoint, err)
		}
		cw.Write([]string{m.Checkpoint, strconv.Itoa(m.Epoch), m.Scores, m.Batch, string(m.EpochFrom), formatRange(m.InputRange), m.Normalization})
	}
	cw.Flush()
	return cw.Error()
}

// readModelInfo reads the model part format, also as written before the
// later columns of ModelHeader existed: nil for a file without a row, an
// error for more than one. Errors are *ParseError values.
func readModelInfo(r io.Reader, name string) (*ModelInfo, error) {
	var out *ModelInfo
	err := readTableFrom(r, name, ModelHeader, modelRequired, func(t *csvTable, row []string) error {
		if out != nil {
			return t.rowError(errors.New("a second row: a model part describes one checkpoint"))
		}
		epoch, err := strconv.Atoi(row[1])
		if err != nil {
			return t.fieldError(1, fmt.Errorf("invalid integer %q", row[1]))
		}
		m := &ModelInfo{Checkpoint: row[0], Epoch: epoch, Scores: row[2], Batch: row[3], EpochFrom: EpochSource(row[4]), Normalization: row[6]}
		if row[5] != "" {
			r, err := convention.ParseRange(row[5])
			if err != nil {
				return t.fieldError(5, fmt.Errorf("invalid range %w", err))
			}
			m.InputRange = r
		}
		if err := m.validate(); err != nil {
			return t.rowError(err)
		}
		out = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
