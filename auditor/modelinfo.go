package auditor

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ModelHeader is the header row of a model part file (parts/model/NAME.csv),
// the columns of a ModelInfo. The names and their order are stable.
var ModelHeader = []string{"checkpoint", "epoch", "scores", "batch"}

// ModelInfo records how the auditor ran one checkpoint's model: which class
// scores the attacks used, and how a fixed batch dimension was handled.
// Margins are those of the logits either way (see attack.ScoreSource); the
// record says where they came from.
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
	return nil
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
		cw.Write([]string{m.Checkpoint, strconv.Itoa(m.Epoch), m.Scores, m.Batch})
	}
	cw.Flush()
	return cw.Error()
}

// readModelInfo reads the model part format: nil for a file without a row,
// an error for more than one. Errors are *ParseError values.
func readModelInfo(r io.Reader, name string) (*ModelInfo, error) {
	var out *ModelInfo
	err := readTable(r, name, ModelHeader, func(t *csvTable, row []string) error {
		if out != nil {
			return t.rowError(errors.New("a second row: a model part describes one checkpoint"))
		}
		epoch, err := strconv.Atoi(row[1])
		if err != nil {
			return t.fieldError(1, fmt.Errorf("invalid integer %q", row[1]))
		}
		m := &ModelInfo{Checkpoint: row[0], Epoch: epoch, Scores: row[2], Batch: row[3]}
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
