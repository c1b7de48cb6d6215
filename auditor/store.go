package auditor

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/marginaudit/marginaudit/internal/atomicfile"
)

// Files of an audit directory.
const (
	SettingsFile       = "settings.json"    // the audit's Settings, written first
	MarginsFile        = "margins.csv"      // all finished checkpoints' records, by epoch
	SummaryFile        = "summary.json"     // see Summary
	TransitionsFile    = "transitions.csv"  // see WriteTransitions
	ConfidenceFile     = "confidence.csv"   // every audited image's max-softmax, by epoch (see Confidence)
	PartsDir           = "parts"            // one margins part per finished checkpoint
	PGDPartsDir        = "parts/pgd"        // one PGD part per finished checkpoint
	ConfidencePartsDir = "parts/confidence" // one confidence part per finished checkpoint
	ModelPartsDir      = "parts/model"      // how each finished checkpoint's model was run
	RobustFile         = "robust.csv"       // every audited image's PGD outcome, by epoch (see RobustImage)
	RobustPartsDir     = "parts/robust"     // one robust part per finished checkpoint
)

// PGDHeader is the header row of a PGD part file.
var PGDHeader = []string{"checkpoint", "epoch", "split", "norm", "eps", "images", "robust"}

// An extraKind is a kind of part file besides the margins part: one file
// per finished checkpoint in its own folder, written by Commit before the
// margins part, removed by OpenStore when the margins part never came (an
// interrupted commit), and absent from stores written before the kind
// existed, which then have no rows of it.
type extraKind struct {
	dir  string // folder of the part files, relative to the store
	what string // one row, in errors
	// file, when set, is the store's file that concatenates the parts'
	// rows by epoch, under header. It is rebuilt with margins.csv, and only
	// when some finished checkpoint has a row of this kind.
	file   string
	header []string

	rows  func(p *Part) int                                   // p's rows of this kind
	owner func(p *Part, i int) (checkpoint string, epoch int) // of row i
	check func(p *Part) error                                 // the rows: valid, no duplicates
	write func(w io.Writer, p *Part) error                    // the header and p's rows
	read  func(r io.Reader, path string, p *Part) error       // p's rows from a part file
}

// The extra part kinds, in the order Commit writes them.
var (
	pgdKind = extraKind{
		dir: PGDPartsDir, what: "PGD result",
		rows:  func(p *Part) int { return len(p.PGD) },
		owner: func(p *Part, i int) (string, int) { return p.PGD[i].Checkpoint, p.PGD[i].Epoch },
		check: func(p *Part) error { _, err := index(nil, p.PGD); return err },
		write: func(w io.Writer, p *Part) error { return writePGD(w, p.PGD) },
		read: func(r io.Reader, path string, p *Part) (err error) {
			p.PGD, err = readPGD(r, path)
			return err
		},
	}
	confidenceKind = extraKind{
		dir: ConfidencePartsDir, what: "confidence", file: ConfidenceFile, header: ConfidenceHeader,
		rows:  func(p *Part) int { return len(p.Confidence) },
		owner: func(p *Part, i int) (string, int) { return p.Confidence[i].Checkpoint, p.Confidence[i].Epoch },
		check: func(p *Part) error { return checkConfidence(p.Confidence) },
		write: func(w io.Writer, p *Part) error { return WriteConfidence(w, p.Confidence) },
		read: func(r io.Reader, path string, p *Part) (err error) {
			p.Confidence, err = ReadConfidence(r, path)
			return err
		},
	}
	modelKind = extraKind{
		dir: ModelPartsDir, what: "model description",
		rows: func(p *Part) int {
			if p.Model == nil {
				return 0
			}
			return 1
		},
		owner: func(p *Part, _ int) (string, int) { return p.Model.Checkpoint, p.Model.Epoch },
		check: func(p *Part) error {
			if p.Model == nil {
				return nil
			}
			return p.Model.validate()
		},
		write: func(w io.Writer, p *Part) error { return writeModelInfo(w, p.Model) },
		read: func(r io.Reader, path string, p *Part) (err error) {
			p.Model, err = readModelInfo(r, path)
			return err
		},
	}
	robustKind = extraKind{
		dir: RobustPartsDir, what: "robust outcome", file: RobustFile, header: RobustHeader,
		rows:  func(p *Part) int { return len(p.Robust) },
		owner: func(p *Part, i int) (string, int) { return p.Robust[i].Checkpoint, p.Robust[i].Epoch },
		check: checkRobust,
		write: func(w io.Writer, p *Part) error { return WriteRobust(w, p.Robust) },
		read: func(r io.Reader, path string, p *Part) (err error) {
			p.Robust, err = ReadRobust(r, path)
			return err
		},
	}
	extraKinds = []*extraKind{&pgdKind, &confidenceKind, &modelKind, &robustKind}
)

// Store is a resumable audit directory. The results of each checkpoint are
// committed atomically when the checkpoint is finished, so an audit that is
// interrupted (killed, out of power, a failing checkpoint) can be run again
// with the same settings and goes on where it stopped. The layout is
//
//	settings.json             the Settings, written when the store is created
//	parts/NAME.csv            records of checkpoint NAME, margins.csv format
//	parts/pgd/NAME.csv        its PGD results (header PGDHeader)
//	parts/confidence/NAME.csv its images' max-softmax, confidence.csv format
//	parts/model/NAME.csv      how its model was run (header ModelHeader)
//	parts/robust/NAME.csv     its images' PGD outcomes, robust.csv format
//	adversarial/NAME/         its perturbations, when saved (see AdversarialDir)
//	margins.csv               all parts' records, by epoch then name
//	confidence.csv            all confidence parts' rows, by epoch then name
//	robust.csv                all robust parts' rows, by epoch then name
//	summary.json              written by WriteReport
//	transitions.csv           written by WriteReport
//
// Every file is written to a hidden temporary file in its folder, synced,
// and renamed over its final name, so no reader ever sees half a file. A
// checkpoint is finished exactly when parts/NAME.csv exists: Commit writes
// the PGD, confidence, model and robust parts and the saved perturbations
// first and the margins part last, and removes the old margins part first
// when it replaces a finished checkpoint (then the old perturbations). OpenStore removes temporary files and PGD, confidence, model
// and robust parts and perturbation folders without their margins part (the leftovers of an
// interrupted commit) and rebuilds margins.csv, confidence.csv and
// robust.csv from the parts, so a crash between a commit and the rebuild
// loses nothing.
//
// A store written before PGD, confidence, model or robust parts existed
// opens all the same; its checkpoints have no PGD results, confidences,
// model descriptions or robust outcomes. confidence.csv (robust.csv) is
// written only when some finished checkpoint has confidences (robust
// outcomes): a store without any has no such file (one already there is
// left alone).
//
// A Store is safe for concurrent use by the goroutines of one process; two
// processes must not use one directory at the same time.
type Store struct {
	dir      string
	settings Settings

	mu    sync.Mutex
	parts map[string]int // finished checkpoint → epoch (-1 when its parts are empty)
}

// OpenStore opens the audit directory dir, creating it when needed, for an
// audit with the given settings. A new directory gets settings.json; an
// existing one must hold the same settings, or OpenStore returns a
// *SettingsError listing the fields that differ. The finished checkpoints'
// parts are read and checked; a corrupt part is an error (a *ParseError
// naming it) that is not repaired: remove the part to redo its checkpoint.
//
// A store has one writer: OpenStore removes the temporary files it finds,
// which another writer of dir may be writing. The command line locks dir
// first (package internal/dirlock); other callers must keep to one writer
// themselves.
func OpenStore(dir string, settings *Settings) (*Store, error) {
	settings = settings.canonical()
	s := &Store{dir: dir, settings: *settings, parts: map[string]int{}}
	want, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("auditor: encoding settings: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("auditor: audit directory: %w", err)
	}
	// Check the settings before changing anything in dir.
	parts, err := s.partNames(PartsDir)
	if err != nil {
		return nil, err
	}
	settingsPath := filepath.Join(dir, SettingsFile)
	have, err := os.ReadFile(settingsPath)
	newStore := errors.Is(err, fs.ErrNotExist)
	switch {
	case newStore:
		if len(parts) > 0 {
			return nil, fmt.Errorf("auditor: %s: results of %d checkpoints but no %s", dir, len(parts), SettingsFile)
		}
	case err != nil:
		return nil, fmt.Errorf("auditor: %w", err)
	default:
		diffs, err := diffJSON(have, want)
		if err != nil {
			return nil, fmt.Errorf("auditor: %s: %w", settingsPath, err)
		}
		if len(diffs) > 0 {
			return nil, &SettingsError{Path: settingsPath, Diffs: diffs}
		}
	}
	dirs := []string{dir, filepath.Join(dir, PartsDir)}
	for _, k := range extraKinds {
		d := filepath.Join(dir, k.dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("auditor: audit directory: %w", err)
		}
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := atomicfile.RemoveTemp(d); err != nil {
			return nil, fmt.Errorf("auditor: %w", err)
		}
	}
	if newStore {
		if err := writeFile(settingsPath, func(w io.Writer) error {
			_, err := w.Write(append(want, '\n'))
			return err
		}); err != nil {
			return nil, err
		}
	}

	for _, name := range parts {
		epoch, err := s.readEpoch(name)
		if err != nil {
			return nil, err
		}
		for other, e := range s.parts {
			if e >= 0 && e == epoch {
				return nil, fmt.Errorf("auditor: %s: checkpoints %s and %s both have epoch %d", dir, other, name, epoch)
			}
		}
		s.parts[name] = epoch
	}
	// Extra parts without a margins part are left over from a commit that
	// did not finish.
	for _, k := range extraKinds {
		names, err := s.partNames(k.dir)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if _, ok := s.parts[name]; !ok {
				if err := os.Remove(s.extraPath(k, name)); err != nil {
					return nil, fmt.Errorf("auditor: removing an unfinished part: %w", err)
				}
			}
		}
	}
	if err := s.cleanAdversarial(); err != nil {
		return nil, fmt.Errorf("auditor: %w", err)
	}
	if err := s.rebuild(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Settings returns the store's settings.
func (s *Store) Settings() Settings { return s.settings }

// Done reports whether the checkpoint with the given file name is finished.
func (s *Store) Done(checkpoint string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.parts[checkpoint]
	return ok
}

// Finished returns the names of the finished checkpoints, by epoch.
func (s *Store) Finished() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order()
}

// order returns the finished checkpoints by epoch, then name. s.mu is held.
func (s *Store) order() []string {
	names := make([]string, 0, len(s.parts))
	for n := range s.parts {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(s.parts[a], s.parts[b]), strings.Compare(a, b)) })
	return names
}

// Part is the complete result of auditing one checkpoint.
type Part struct {
	Checkpoint string      // file name of the checkpoint
	Epoch      int         // its epoch
	Records    []Record    // margins; each with the Checkpoint and Epoch above
	PGD        []PGDResult // robust accuracies; each with the Checkpoint and Epoch above
	// Confidence holds the clean max-softmax of every image of Records,
	// one per (split, index), each with the Checkpoint and Epoch above; or
	// nothing, when the confidences were not measured.
	Confidence []Confidence
	// Model says how the checkpoint's model was run (with the Checkpoint
	// and Epoch above); nil when not recorded.
	Model *ModelInfo
	// Robust holds each image's outcome under each PGD attack, adding up
	// to PGD (with the Checkpoint and Epoch above); or nothing, when not
	// recorded.
	Robust []RobustImage
	// Adversarial holds the perturbations DeepFool found, and with
	// refinement the refined ones, per split and norm, in the order of
	// Records (see AdversarialDir); or nothing, when they were not saved.
	Adversarial []Adversarial
}

// Commit stores the results of a finished checkpoint atomically and
// rebuilds margins.csv. The part must be consistent as described at
// Summarize, and its epoch must not belong to another finished checkpoint.
// Committing a finished checkpoint again replaces its results. When only
// the rebuild of margins.csv fails, the checkpoint is finished all the
// same and margins.csv is rebuilt by the next Commit or OpenStore.
func (s *Store) Commit(p *Part) error {
	if err := p.check(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.write(p); err != nil {
		return err
	}
	if err := s.rebuild(); err != nil {
		return fmt.Errorf("auditor: commit %s: the checkpoint is finished, but %w", p.Checkpoint, err)
	}
	return nil
}

// CommitAll commits the parts that parts yields as Commit would, one after
// the other, holding one at a time, but rebuilds margins.csv,
// confidence.csv and robust.csv once, at the end: merging the shards of a
// long audit commits every checkpoint at once, and its memory must not
// grow with their number. Each part is checked just before it is written,
// so a part that fails its check, or an error that parts yields, stops the
// commit with the parts before it finished; those files are then rebuilt
// by the next Commit or OpenStore. (Merge, which must write nothing when
// a part is wrong, checks them all in a pass of their own first.) The
// store is locked while parts runs: parts must not call its methods.
func (s *Store) CommitAll(parts iter.Seq2[*Part, error]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, err := range parts {
		if err != nil {
			return err
		}
		if err := p.check(); err != nil {
			return err
		}
		if err := s.write(p); err != nil {
			return err
		}
		n++
	}
	if err := s.rebuild(); err != nil {
		return fmt.Errorf("auditor: commit: %d checkpoints are finished, but %w", n, err)
	}
	return nil
}

// checkAll checks, holding one part at a time, that CommitAll can commit
// all the parts that parts yields into a store without finished
// checkpoints: each is consistent as described at Summarize, and no two
// checkpoints share an epoch. It returns the first error that parts
// yields or that a check finds, as CommitAll would, but writes nothing.
func checkAll(parts iter.Seq2[*Part, error]) error {
	epochs := map[string]int{}
	for p, err := range parts {
		if err != nil {
			return err
		}
		if err := p.check(); err != nil {
			return err
		}
		if err := checkEpochFree(epochs, p); err != nil {
			return err
		}
		epochs[p.Checkpoint] = p.Epoch
	}
	return nil
}

// checkEpochFree checks that p's epoch belongs to no checkpoint of
// finished (checkpoint → epoch) other than p's.
func checkEpochFree(finished map[string]int, p *Part) error {
	for name, e := range finished {
		if e == p.Epoch && name != p.Checkpoint {
			return fmt.Errorf("auditor: commit %s: epoch %d belongs to the finished checkpoint %s", p.Checkpoint, p.Epoch, name)
		}
	}
	return nil
}

// check checks that p can be committed (see Summarize).
func (p *Part) check() error {
	if err := checkName(p.Checkpoint); err != nil {
		return fmt.Errorf("auditor: commit: %w", err)
	}
	if p.Epoch < 0 {
		return fmt.Errorf("auditor: commit %s: negative epoch %d", p.Checkpoint, p.Epoch)
	}
	for i := range p.Records {
		if r := &p.Records[i]; r.Checkpoint != p.Checkpoint || r.Epoch != p.Epoch {
			return fmt.Errorf("auditor: commit %s (epoch %d): record %d is of %s (epoch %d)", p.Checkpoint, p.Epoch, i, r.Checkpoint, r.Epoch)
		}
	}
	for _, k := range extraKinds {
		for i := range k.rows(p) {
			if name, epoch := k.owner(p, i); name != p.Checkpoint || epoch != p.Epoch {
				return fmt.Errorf("auditor: commit %s (epoch %d): %s %d is of %s (epoch %d)", p.Checkpoint, p.Epoch, k.what, i, name, epoch)
			}
		}
	}
	if _, err := index(p.Records, nil); err != nil {
		return fmt.Errorf("auditor: commit %s: %w", p.Checkpoint, err)
	}
	for _, k := range extraKinds {
		if err := k.check(p); err != nil {
			return fmt.Errorf("auditor: commit %s: %w", p.Checkpoint, err)
		}
	}
	if err := confidenceCoversRecords(p); err != nil {
		return fmt.Errorf("auditor: commit %s: %w", p.Checkpoint, err)
	}
	if err := checkAdversarial(p); err != nil {
		return fmt.Errorf("auditor: commit %s: %w", p.Checkpoint, err)
	}
	return nil
}

// write stores the files of the checked part p; s.mu is held.
func (s *Store) write(p *Part) error {
	if err := checkEpochFree(s.parts, p); err != nil {
		return err
	}
	if _, ok := s.parts[p.Checkpoint]; ok {
		// Un-finish first, so that a crash below never pairs the new extra
		// parts with the old margins.
		if err := atomicfile.Remove(s.partPath(p.Checkpoint)); err != nil {
			return fmt.Errorf("auditor: commit %s: %w", p.Checkpoint, err)
		}
		delete(s.parts, p.Checkpoint)
	}
	for _, k := range extraKinds {
		if err := writeFile(s.extraPath(k, p.Checkpoint), func(w io.Writer) error { return k.write(w, p) }); err != nil {
			return fmt.Errorf("auditor: commit %s: %w", p.Checkpoint, err)
		}
	}
	if err := s.writeAdversarial(p); err != nil {
		return fmt.Errorf("auditor: commit %s: %w", p.Checkpoint, err)
	}
	if err := writeFile(s.partPath(p.Checkpoint), func(w io.Writer) error { return WriteRecords(w, p.Records) }); err != nil {
		return fmt.Errorf("auditor: commit %s: %w", p.Checkpoint, err)
	}
	s.parts[p.Checkpoint] = p.Epoch
	return nil
}

// WriteReport summarises the finished checkpoints and writes summary.json
// and transitions.csv atomically. It returns the summary. The parts are
// read one checkpoint at a time: the memory it takes grows with the
// checkpoints' number only by the summary itself, not by their records.
func (s *Store) WriteReport() (*Summary, error) {
	s.mu.Lock()
	z := newSummarizer(&s.settings)
	var models []ModelInfo
	err := func() error {
		for _, name := range s.order() {
			recs, err := s.readPart(name)
			if err != nil {
				return err
			}
			p := &Part{Checkpoint: name}
			for _, k := range []*extraKind{&pgdKind, &modelKind} {
				if err := s.readExtra(k, name, p); err != nil {
					return err
				}
			}
			if err := z.add(recs, p.PGD); err != nil {
				return err
			}
			if p.Model != nil {
				models = append(models, *p.Model)
			}
		}
		return nil
	}()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	sum := z.summary()
	sum.describeModels(models)
	if err := writeFile(filepath.Join(s.dir, SummaryFile), func(w io.Writer) error { return WriteSummary(w, sum) }); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(s.dir, TransitionsFile), func(w io.Writer) error { return WriteTransitions(w, sum.Transitions) }); err != nil {
		return nil, err
	}
	return sum, nil
}

func (s *Store) partPath(name string) string { return filepath.Join(s.dir, PartsDir, name+".csv") }
func (s *Store) extraPath(k *extraKind, name string) string {
	return filepath.Join(s.dir, k.dir, name+".csv")
}

// partNames lists the checkpoint names of the part files in sub.
func (s *Store) partNames(sub string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, sub))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auditor: %w", err)
	}
	var names []string
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".csv")
		if !ok || !e.Type().IsRegular() || checkName(name) != nil {
			continue
		}
		names = append(names, name)
	}
	return names, nil
}

// readPart reads and checks the margins part of checkpoint name.
func (s *Store) readPart(name string) ([]Record, error) {
	path := s.partPath(name)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auditor: %w", err)
	}
	defer f.Close()
	recs, err := ReadRecords(bufio.NewReader(f), path)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		if recs[i].Checkpoint != name {
			return nil, fmt.Errorf("auditor: %s: a record of checkpoint %s", path, recs[i].Checkpoint)
		}
	}
	return recs, nil
}

// readExtra reads and checks the part of kind k of checkpoint name into
// p; a missing file (a store written before the kind existed) has no rows.
func (s *Store) readExtra(k *extraKind, name string, p *Part) error {
	path := s.extraPath(k, name)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("auditor: %w", err)
	}
	defer f.Close()
	if err := k.read(bufio.NewReader(f), path, p); err != nil {
		return err
	}
	for i := range k.rows(p) {
		if owner, _ := k.owner(p, i); owner != name {
			return fmt.Errorf("auditor: %s: a %s of checkpoint %s", path, k.what, owner)
		}
	}
	if err := k.check(p); err != nil {
		return fmt.Errorf("auditor: %s: %w", path, err)
	}
	return nil
}

// readEpoch reads and checks every part of the finished checkpoint name
// and returns its epoch, -1 when its parts have no rows.
func (s *Store) readEpoch(name string) (int, error) {
	p, err := s.readAll(name)
	if err != nil {
		return 0, err
	}
	return p.Epoch, nil
}

// readAll reads and checks every part of the finished checkpoint name;
// its Epoch is -1 when its parts have no rows.
func (s *Store) readAll(name string) (*Part, error) {
	p := &Part{Checkpoint: name, Epoch: -1}
	var err error
	if p.Records, err = s.readPart(name); err != nil {
		return nil, err
	}
	from := s.partPath(name)
	if len(p.Records) > 0 {
		p.Epoch = p.Records[0].Epoch // ReadRecords checked that they agree
	}
	for _, k := range extraKinds {
		if err := s.readExtra(k, name, p); err != nil {
			return nil, err
		}
		for i := range k.rows(p) {
			_, epoch := k.owner(p, i)
			if p.Epoch < 0 {
				p.Epoch, from = epoch, s.extraPath(k, name)
			}
			if epoch != p.Epoch {
				return nil, fmt.Errorf("auditor: %s: epoch %d, but %d in %s", s.extraPath(k, name), epoch, p.Epoch, from)
			}
		}
	}
	return p, nil
}

// rebuild rewrites margins.csv, and confidence.csv and any other file of an
// extra kind, as the concatenation of the parts' rows (the parts were
// checked when they were read or written). s.mu is held.
func (s *Store) rebuild() error {
	if err := s.concat(MarginsFile, Header, PartsDir, false); err != nil {
		return err
	}
	for _, k := range extraKinds {
		if k.file == "" {
			continue
		}
		if err := s.concat(k.file, k.header, k.dir, true); err != nil {
			return err
		}
	}
	return nil
}

// errNoRows stops the write of a file that would have no rows.
var errNoRows = errors.New("no rows")

// concat writes the store's file as header followed by the rows of the
// parts in dir of the finished checkpoints, in order, copying one part at a
// time through a small buffer. When optional is set, a missing part adds
// nothing and a file without rows is not written.
func (s *Store) concat(file string, header []string, dir string, optional bool) error {
	err := writeFile(filepath.Join(s.dir, file), func(w io.Writer) error {
		if _, err := io.WriteString(w, strings.Join(header, ",")+"\n"); err != nil {
			return err
		}
		rows := false
		br := bufio.NewReader(nil)
		for _, name := range s.order() {
			n, err := s.copyRows(w, br, filepath.Join(s.dir, dir, name+".csv"))
			if optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			rows = rows || n > 0
		}
		if optional && !rows {
			return errNoRows
		}
		return nil
	})
	if errors.Is(err, errNoRows) {
		return nil
	}
	return err
}

// copyRows copies the rows of the part file path, all but its header, to
// w through br, ending them with a newline, and returns the number of
// bytes of rows it found.
func (s *Store) copyRows(w io.Writer, br *bufio.Reader, path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br.Reset(f)
	// The header has no quoted newline: it ends at the first one.
	_, err = br.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = br.ReadSlice('\n')
	}
	if errors.Is(err, io.EOF) { // a header alone
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	lw := &lastByteWriter{w: w}
	n, err := br.WriteTo(lw)
	if err != nil {
		return n, err
	}
	if n > 0 && lw.last != '\n' {
		_, err = w.Write([]byte{'\n'})
	}
	return n, err
}

// lastByteWriter passes writes on to w and remembers the last byte.
type lastByteWriter struct {
	w    io.Writer
	last byte
}

func (l *lastByteWriter) Write(p []byte) (int, error) {
	if len(p) > 0 {
		l.last = p[len(p)-1]
	}
	return l.w.Write(p)
}

// writeFile writes the store's file path through fn, atomically and with
// mode 0644 (see package atomicfile).
func writeFile(path string, fn func(io.Writer) error) error {
	if err := atomicfile.Write(path, 0o644, fn); err != nil {
		return fmt.Errorf("auditor: %w", err)
	}
	return nil
}
