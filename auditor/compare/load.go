package compare

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/marginaudit/marginaudit/auditor"
)

// Folder is an audit folder read into memory: its settings and the results
// of every checkpoint (model) it holds.
type Folder struct {
	Dir      string
	Settings auditor.Settings
	records  []auditor.Record      // margins.csv
	summary  *auditor.Summary      // summary.json; nil without it
	pgd      []auditor.PGDResult   // from summary.json; nil without it
	robust   []auditor.RobustImage // robust.csv; nil without it
	models   []string              // checkpoints by epoch, as in margins.csv
}

// ReadFolder reads the audit folder dir as the audit command writes it:
// settings.json, margins.csv and, when present, summary.json for the PGD
// robust accuracies and robust.csv for each image's PGD outcome (audits
// made before robust.csv existed lack it). It changes nothing in dir.
func ReadFolder(dir string) (*Folder, error) {
	f := &Folder{Dir: dir}
	path := filepath.Join(dir, auditor.SettingsFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("compare: %w", err)
	}
	if err := json.Unmarshal(data, &f.Settings); err != nil {
		return nil, fmt.Errorf("compare: %s: %w", path, err)
	}
	err = readFile(filepath.Join(dir, auditor.MarginsFile), false, func(r io.Reader, path string) (err error) {
		f.records, err = auditor.ReadRecords(r, path)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, r := range f.records {
		if n := len(f.models); n == 0 || f.models[n-1] != r.Checkpoint {
			f.models = append(f.models, r.Checkpoint)
		}
	}
	if len(f.models) == 0 {
		return nil, fmt.Errorf("compare: %s: no records: the audit has no finished checkpoint", filepath.Join(dir, auditor.MarginsFile))
	}
	err = readFile(filepath.Join(dir, auditor.SummaryFile), true, func(r io.Reader, path string) error {
		sum, err := auditor.ReadSummary(r, path)
		if err != nil {
			return err
		}
		f.summary = sum
		for _, p := range sum.PGD {
			f.pgd = append(f.pgd, p.PGDResult)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = readFile(filepath.Join(dir, auditor.RobustFile), true, func(r io.Reader, path string) (err error) {
		f.robust, err = auditor.ReadRobust(r, path)
		return err
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// readFile opens path and calls read with it, buffered; a missing file is
// no error when optional.
func readFile(path string, optional bool, read func(r io.Reader, path string) error) error {
	file, err := os.Open(path)
	if optional && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	defer file.Close()
	if err := read(bufio.NewReader(file), path); err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	return nil
}

// Records returns the folder's margins.csv, one record per (checkpoint,
// split, image, norm); callers must not modify them.
func (f *Folder) Records() []auditor.Record { return f.records }

// Summary returns the folder's summary.json, nil when it has none (audits
// in progress or made before it existed). It may be older than the
// margins: compare its checkpoints with Models.
func (f *Folder) Summary() *auditor.Summary { return f.summary }

// Models returns the names of the folder's checkpoints, by epoch.
func (f *Folder) Models() []string { return f.models }

// Model returns the results of the checkpoint named name, with or without
// its ".onnx" suffix; "" selects the last checkpoint (by epoch).
func (f *Folder) Model(name string) (*Audit, error) {
	if name == "" {
		name = f.models[len(f.models)-1]
	}
	found := ""
	for _, m := range f.models {
		if m == name || strings.TrimSuffix(m, ".onnx") == name {
			found = m
		}
	}
	if found == "" {
		return nil, fmt.Errorf("compare: %s has no model %q (it has %s)", f.Dir, name, strings.Join(f.models, ", "))
	}
	a := &Audit{Dir: f.Dir, Checkpoint: found, Settings: f.Settings}
	for _, r := range f.records {
		if r.Checkpoint == found {
			a.Epoch = r.Epoch
			a.Records = append(a.Records, r)
		}
	}
	for _, p := range f.pgd {
		if p.Checkpoint == found && p.Epoch == a.Epoch {
			a.PGD = append(a.PGD, p)
		}
	}
	for _, r := range f.robust {
		if r.Checkpoint == found && r.Epoch == a.Epoch {
			a.Robust = append(a.Robust, r)
		}
	}
	return a, nil
}

// Audit is the results of one model (checkpoint) of an audit folder.
type Audit struct {
	Dir        string           // the audit folder
	Checkpoint string           // the checkpoint's file name
	Epoch      int              // its epoch
	Settings   auditor.Settings // the audit's settings
	Records    []auditor.Record // its margins, one per (split, image, norm)
	// PGD holds its robust accuracies from summary.json; nil when the
	// audit has none.
	PGD []auditor.PGDResult
	// Robust holds each image's PGD outcome from robust.csv; nil when the
	// audit did not record them.
	Robust []auditor.RobustImage
}
