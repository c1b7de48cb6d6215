package checkpoint

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/internal/atomicfile"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/trainer/model"
	"github.com/marginaudit/marginaudit/trainer/optim"
)

// CSVName is the name of the run summary in a run's folder.
const CSVName = "train.csv"

// Path returns the name of epoch's model file in dir: dir/epoch-NNN.onnx.
func Path(dir string, epoch int) string {
	return filepath.Join(dir, fmt.Sprintf("epoch-%03d.onnx", epoch))
}

// StatePath returns the name of epoch's optimizer state file in dir:
// dir/epoch-NNN.state.
func StatePath(dir string, epoch int) string {
	return filepath.Join(dir, fmt.Sprintf("epoch-%03d.state", epoch))
}

// Write saves m's inference graph with md as metadata to path, atomically.
func Write(path string, m *model.Model, md *Metadata) error {
	g := m.Graph(model.AsInitializers)
	g.MetadataProps = md.Props()
	g.DocString = proto.String(fmt.Sprintf("marginaudit %s on %s, epoch %d", m.Arch, md.Dataset, md.Epoch))
	if err := onnxgrad.Save(path, g); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// Read loads a checkpoint written by Write: the model with its weights,
// and its metadata. Errors name the file.
func Read(path string) (*model.Model, *Metadata, error) {
	g, err := onnxgrad.Load(path)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	md, err := ParseMetadata(g.GetMetadataProps())
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	m, err := model.New(md.Arch, md.InputShape[0], md.InputShape[1], md.InputShape[2], md.Classes)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if err := m.LoadWeights(g); err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	md.Arch = m.Arch
	return m, md, nil
}

// ReadMetadata returns only the metadata of the checkpoint at path.
func ReadMetadata(path string) (*Metadata, error) {
	g, err := onnxgrad.Load(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	md, err := ParseMetadata(g.GetMetadataProps())
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return md, nil
}

// WriteState saves an optimizer state to path, atomically, mode 0644.
func WriteState(path string, s *optim.State) error {
	data, err := s.MarshalBinary()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// ReadState reads an optimizer state written by WriteState.
func ReadState(path string) (*optim.State, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var s optim.State
	if err := s.UnmarshalBinary(data); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return &s, nil
}

var epochFile = regexp.MustCompile(`^epoch-([0-9]{3,9})\.onnx$`)

// Epochs lists the complete epochs in dir, ascending: those whose .onnx
// and .state files both exist. A missing dir has none.
func Epochs(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var out []int
	for _, e := range ents { // ReadDir sorts by name: epochs ascend
		sm := epochFile.FindStringSubmatch(e.Name())
		if sm == nil {
			continue
		}
		n, _ := strconv.Atoi(sm[1])
		if Path(dir, n) != filepath.Join(dir, e.Name()) {
			continue // a name such as epoch-0001.onnx that Path does not produce
		}
		if st, err := os.Stat(StatePath(dir, n)); err == nil && st.Mode().IsRegular() {
			out = append(out, n)
		}
	}
	return out, nil
}

// Latest returns the last complete epoch in dir, or -1 when there is none.
func Latest(dir string) (int, error) {
	eps, err := Epochs(dir)
	if err != nil || len(eps) == 0 {
		return -1, err
	}
	return eps[len(eps)-1], nil
}

// CSVHeader lists the columns of train.csv.
var CSVHeader = []string{"epoch", "lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds"}

// CSVAdvHeader lists the columns that train.csv has after those of
// CSVHeader when a record is of adversarial training: Metadata.AdvLoss and
// AdvAccuracy, left empty where not measured (epoch 0).
var CSVAdvHeader = []string{"train_adv_loss", "train_adv_accuracy"}

// WriteCSV writes the run summary, one row per record, atomically, mode
// 0644.
func WriteCSV(path string, rows []*Metadata) error {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	adv := slices.ContainsFunc(rows, func(r *Metadata) bool { return r.Adversarial.Method != "" })
	if adv {
		w.Write(slices.Concat(CSVHeader, CSVAdvHeader))
	} else {
		w.Write(CSVHeader)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, r := range rows {
		row := []string{strconv.Itoa(r.Epoch), f(r.EpochLR), f(r.TrainLoss), f(r.TrainAccuracy), f(r.TestLoss), f(r.TestAccuracy), strconv.FormatFloat(r.Seconds, 'f', 3, 64)}
		switch {
		case r.hasAdvRecord():
			row = append(row, f(r.AdvLoss), f(r.AdvAccuracy))
		case adv:
			row = append(row, "", "")
		}
		w.Write(row)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}
