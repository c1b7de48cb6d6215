package auditor

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/marginaudit/marginaudit/onnxgrad"
)

// MetadataEpoch is the metadata_props key of an ONNX model that holds its
// training epoch, as marginaudit's trainer writes it.
const MetadataEpoch = "epoch"

// EpochSource says where a checkpoint's epoch comes from.
type EpochSource string

// Where an epoch can come from, in order of preference.
const (
	FromMetadata EpochSource = "metadata" // metadata_props key "epoch"
	FromName     EpochSource = "name"     // the file name, see EpochFromName
	FromPosition EpochSource = "position" // the checkpoint's place in the given order
)

// Checkpoint is an ONNX model file to audit.
type Checkpoint struct {
	Path  string      // as found: an argument, or an argument's folder joined with the file name
	Name  string      // file name, the key of the checkpoint's records
	Epoch int         // ≥ 0, or -1 when Err is set and the name holds no epoch
	From  EpochSource // where Epoch comes from
	// Err is set when the model could not be loaded or its metadata epoch
	// is malformed. Such a checkpoint keeps its place in the list, with the
	// epoch from its name when there is one, so that a batch can report it
	// and go on with the others; it takes part in no epoch checks.
	Err error
}

// DuplicateEpochError reports two checkpoints that claim the same epoch.
type DuplicateEpochError struct {
	Epoch int
	A, B  Checkpoint
}

// Error names both checkpoints and where their epochs come from.
func (e *DuplicateEpochError) Error() string {
	return fmt.Sprintf("auditor: checkpoints %s (epoch from %s) and %s (epoch from %s) both claim epoch %d",
		e.A.Path, e.A.From, e.B.Path, e.B.From, e.Epoch)
}

// Discover lists the checkpoints among paths, sorted by epoch. A path that
// is a folder contributes its *.onnx files (any case of the extension, not
// recursively, skipping names that start with a dot such as temporary
// files); a path that is a file is taken whatever its name. A file given
// twice counts once.
//
// Each checkpoint's epoch is read, in order of preference, from the model's
// metadata_props key "epoch" (a non-negative integer), from its file name
// (see EpochFromName), or, only when no checkpoint has an epoch either
// way, from its position: folders in argument order, each folder's files
// sorted by name, numbered from 0. It is an error when some checkpoints
// have an epoch and others have none, when two checkpoints claim one epoch
// (a *DuplicateEpochError), or when two have the same file name (the name
// is the key of a checkpoint's records).
//
// The models are loaded with onnxgrad.Load to read their metadata; one that
// fails to load is not an error of Discover but is returned with its Err
// set (see Checkpoint).
func Discover(paths []string) ([]Checkpoint, error) {
	var files []string
	seen := map[string]bool{}
	add := func(path string) error {
		abs, err := filepath.Abs(path)
		if err != nil {
			return fmt.Errorf("auditor: %w", err)
		}
		if !seen[abs] {
			seen[abs] = true
			files = append(files, path)
		}
		return nil
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("auditor: checkpoint: %w", err)
		}
		if !st.IsDir() {
			if err := add(p); err != nil {
				return nil, err
			}
			continue
		}
		ents, err := os.ReadDir(p) // sorted by name
		if err != nil {
			return nil, fmt.Errorf("auditor: checkpoint folder: %w", err)
		}
		n := 0
		for _, e := range ents {
			name := e.Name()
			if strings.HasPrefix(name, ".") || !strings.EqualFold(filepath.Ext(name), ".onnx") {
				continue
			}
			if e.Type()&fs.ModeType&^fs.ModeSymlink != 0 {
				continue // a folder or a device named *.onnx
			}
			if err := add(filepath.Join(p, name)); err != nil {
				return nil, err
			}
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("auditor: no *.onnx checkpoint in folder %s", p)
		}
	}

	cks := make([]Checkpoint, len(files))
	byName := map[string]string{}
	for i, f := range files {
		c := Checkpoint{Path: f, Name: filepath.Base(f), Epoch: -1}
		if other, ok := byName[c.Name]; ok {
			return nil, fmt.Errorf("auditor: checkpoints %s and %s have the same file name", other, f)
		}
		byName[c.Name] = f
		if err := checkName(c.Name); err != nil {
			return nil, fmt.Errorf("auditor: %s: %w", f, err)
		}
		if e, ok, err := metadataEpoch(f); err != nil {
			c.Err = err
		} else if ok {
			c.Epoch, c.From = e, FromMetadata
		}
		if c.From == "" {
			if e, ok := EpochFromName(c.Name); ok {
				c.Epoch, c.From = e, FromName
			}
		}
		cks[i] = c
	}

	var with, without []int
	for i, c := range cks {
		switch {
		case c.Err != nil:
		case c.From != "":
			with = append(with, i)
		default:
			without = append(without, i)
		}
	}
	if len(with) > 0 && len(without) > 0 {
		a, b := cks[with[0]], cks[without[0]]
		return nil, fmt.Errorf("auditor: checkpoint %s has no epoch in its metadata or name, but %s has (epoch %d from %s); give checkpoints of one run",
			b.Path, a.Path, a.Epoch, a.From)
	}
	if len(with) == 0 {
		// Position order: all loadable checkpoints numbered as given.
		for n, i := range without {
			cks[i].Epoch, cks[i].From = n, FromPosition
		}
	}
	claimed := map[int]int{}
	for i, c := range cks {
		if c.Err != nil {
			continue
		}
		if j, ok := claimed[c.Epoch]; ok {
			return nil, &DuplicateEpochError{Epoch: c.Epoch, A: cks[j], B: c}
		}
		claimed[c.Epoch] = i
	}
	// Stable: failed checkpoints without an epoch (-1) come first, in the
	// order given.
	slices.SortStableFunc(cks, func(a, b Checkpoint) int { return cmp.Compare(a.Epoch, b.Epoch) })
	return cks, nil
}

// ErrMetadataEpoch is wrapped by the Err of a checkpoint whose metadata
// epoch is not a non-negative integer.
var ErrMetadataEpoch = errors.New("metadata epoch is not a non-negative integer")

// metadataEpoch loads the model at path and returns its metadata epoch, if
// it has one.
func metadataEpoch(path string) (epoch int, ok bool, err error) {
	m, err := onnxgrad.Load(path)
	if err != nil {
		return 0, false, err // onnxgrad's errors name the file
	}
	for _, p := range m.GetMetadataProps() {
		if p.GetKey() != MetadataEpoch {
			continue
		}
		v := strings.TrimSpace(p.GetValue())
		if e, err := strconv.Atoi(v); err == nil && e >= 0 {
			return e, true, nil
		}
		// Python writes whole numbers as floats at times: accept "3.0".
		if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1e9 && f == float64(int(f)) {
			return int(f), true, nil
		}
		return 0, false, fmt.Errorf("auditor: checkpoint %s: %w: %q", path, ErrMetadataEpoch, p.GetValue())
	}
	return 0, false, nil
}

// epochName matches an epoch in a file name: "epoch", "ep" or "e", an
// optional separator (- _ =), and digits, at the start of the name or
// after a character that is not a letter or a digit, and followed by the
// end or by such a character.
var epochName = regexp.MustCompile(`(?i)(?:^|[^a-z0-9])(?:epoch|ep|e)[-_=]?([0-9]{1,9})(?:[^a-z0-9]|$)`)

// EpochFromName returns the epoch in a checkpoint's file name, with or
// without its folder and extension. The accepted forms, in any letter case,
// are "epoch", "ep" or "e", optionally followed by "-", "_" or "=", then up
// to 9 digits, standing apart from the rest of the name (not preceded or
// followed by a letter or a digit):
//
//	epoch-007.onnx, epoch7.onnx, epoch_7.onnx   → 7
//	model_ep7.onnx, ckpt_e12.onnx               → 7, 12
//	run-epoch=3.onnx, epoch=3-step=1500.onnx    → 3 (Lightning style)
//
// Names without such a part ("model.onnx", "step100.onnx", "e2e.onnx") and
// names with two different epochs ("epoch1-e2.onnx") have none: the result
// is then -1, false.
func EpochFromName(name string) (int, bool) {
	base := filepath.Base(name)
	if ext := filepath.Ext(base); strings.EqualFold(ext, ".onnx") {
		base = strings.TrimSuffix(base, ext)
	}
	epoch, found := -1, false
	// Matches can share a separator ("e1_e2"): search again from inside
	// the previous match.
	for s := base; ; {
		loc := epochName.FindStringSubmatchIndex(s)
		if loc == nil {
			break
		}
		e, _ := strconv.Atoi(s[loc[2]:loc[3]])
		if found && e != epoch {
			return -1, false
		}
		epoch, found = e, true
		s = s[loc[3]:]
	}
	return epoch, found
}
