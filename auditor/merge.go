package auditor

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/marginaudit/marginaudit/auditor/shard"
)

// ShardFolder is the audit folder of one shard (see Config.Shard), read
// without changing it and without its lock, so that it can be read while
// its audit runs.
type ShardFolder struct {
	Dir      string
	Manifest *shard.Manifest
	// Settings is settings.json as stored.
	Settings []byte
	store    *Store // for reading only
}

// ReadShardFolder reads the settings, the manifest and the names of the
// finished checkpoints of the shard folder dir.
func ReadShardFolder(dir string) (*ShardFolder, error) {
	settings, err := os.ReadFile(filepath.Join(dir, SettingsFile))
	if err != nil {
		return nil, fmt.Errorf("auditor: %s is not an audit folder: %w", dir, err)
	}
	m, err := readManifest(filepath.Join(dir, ShardFile))
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("auditor: %s holds an audit of all the work, not a shard (no %s)", dir, ShardFile)
	}
	f := &ShardFolder{Dir: dir, Manifest: m, Settings: settings, store: &Store{dir: dir, parts: map[string]int{}}}
	if err := json.Unmarshal(settings, &f.store.settings); err != nil {
		return nil, fmt.Errorf("auditor: %s: %w", filepath.Join(dir, SettingsFile), err)
	}
	names, err := f.store.partNames(PartsDir)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		f.store.parts[n] = -1 // the epoch is read with the part
	}
	return f, nil
}

// Done reports whether the unit u is finished: its checkpoint is.
func (f *ShardFolder) Done(u shard.Unit) bool {
	_, ok := f.store.parts[u.Checkpoint]
	return ok
}

// Remaining returns the shard's units that are not finished.
func (f *ShardFolder) Remaining() []shard.Unit {
	var out []shard.Unit
	for _, u := range f.Manifest.Units {
		if !f.Done(u) {
			out = append(out, u)
		}
	}
	return out
}

// ShardSettingsError reports shards whose settings differ.
type ShardSettingsError struct {
	Dirs  [2]string // the first shard and the one that differs
	Diffs []SettingDiff
}

func (e *ShardSettingsError) Error() string {
	diffs := make([]string, len(e.Diffs))
	for i, d := range e.Diffs {
		diffs[i] = fmt.Sprintf("%s: %s in %s, %s in %s", d.Field, d.Old, e.Dirs[0], d.New, e.Dirs[1])
	}
	return fmt.Sprintf("auditor: shards %s and %s were audited with other settings (%s)", e.Dirs[0], e.Dirs[1], strings.Join(diffs, "; "))
}

// UnfinishedError reports shards whose audits have not finished all their
// units.
type UnfinishedError struct {
	Shards []*ShardFolder // each with units left
}

func (e *UnfinishedError) Error() string {
	var parts []string
	for _, f := range e.Shards {
		var units []string
		for _, u := range f.Remaining() {
			units = append(units, u.String())
		}
		parts = append(parts, fmt.Sprintf("shard %s in %s has not finished %s", f.Manifest.Shard, f.Dir, strings.Join(units, ", ")))
	}
	return "auditor: " + strings.Join(parts, "; ")
}

// Merge merges the audit folders of the shards of one audit, dirs, into
// the audit folder out and returns its summary. The shards must have the
// same settings (else a *ShardSettingsError naming the fields), be every
// shard of the work once (else a *shard.CoverError naming what is missing
// or doubled) and have finished (else an *UnfinishedError); then out gets
// the files, byte for byte, that one audit of all the work writes, and is
// an audit folder like that one's, which a later audit can resume or
// extend. Nothing is written when a check fails, and out must not hold an
// audit already.
//
// Merge holds one checkpoint at a time, so its memory does not grow with
// their number: it reads the shards' parts twice, checkpoint by
// checkpoint. The first pass puts each checkpoint's part together and
// checks it — the shards agree on its epoch and on how its model was run,
// hold all its records, and the part is one that Store.Commit takes, its
// epoch no other checkpoint's — writing nothing; only then is out
// created, and the second pass puts the parts together again and commits
// them (Store.CommitAll), margins.csv and the other files concatenating
// the parts being written once, at the end, and summary.json last. So
// only an error of the file system while writing (a full disk) leaves a
// partial audit in out: settings.json with the checkpoints committed
// before the error, which a later audit resumes.
func Merge(dirs []string, out string) (*Summary, error) {
	folders := make([]*ShardFolder, len(dirs))
	manifests := make([]*shard.Manifest, len(dirs))
	var unfinished []*ShardFolder
	for i, d := range dirs {
		f, err := ReadShardFolder(d)
		if err != nil {
			return nil, err
		}
		folders[i], manifests[i] = f, f.Manifest
		diffs, err := diffJSON(folders[0].Settings, f.Settings)
		if err != nil {
			return nil, fmt.Errorf("auditor: %s: %w", filepath.Join(d, SettingsFile), err)
		}
		if len(diffs) > 0 {
			return nil, &ShardSettingsError{Dirs: [2]string{dirs[0], d}, Diffs: diffs}
		}
		if len(f.Remaining()) > 0 {
			unfinished = append(unfinished, f)
		}
	}
	if err := shard.Cover(dirs, manifests); err != nil {
		return nil, err
	}
	if unfinished != nil {
		return nil, &UnfinishedError{Shards: unfinished}
	}
	if _, err := os.Stat(filepath.Join(out, SettingsFile)); !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("auditor: %s holds an audit already; merge into a new folder", out)
	}
	parts := mergeParts(folders)
	if err := checkAll(parts); err != nil {
		return nil, err
	}
	settings := folders[0].store.settings
	store, err := OpenStore(out, &settings)
	if err != nil {
		return nil, err
	}
	if err := store.CommitAll(parts); err != nil {
		return nil, err
	}
	return store.WriteReport()
}

// A piece is a unit with the folder that holds it.
type piece struct {
	unit   shard.Unit
	folder *ShardFolder
}

// mergeParts yields each checkpoint's part, put together from its units'
// parts in the shard folders when it is asked for, in the order of the
// work's items: rows in the order one audit writes them, by split (as in
// the settings), norm, then image, units by their first image. It can be
// ranged over again, and reads the folders again then.
func mergeParts(folders []*ShardFolder) iter.Seq2[*Part, error] {
	var order []string
	pieces := map[string][]piece{}
	for _, f := range folders {
		for _, u := range f.Manifest.Units {
			pieces[u.Checkpoint] = append(pieces[u.Checkpoint], piece{u, f})
		}
	}
	for _, it := range folders[0].Manifest.Items {
		if !slices.Contains(order, it.Checkpoint) {
			order = append(order, it.Checkpoint)
		}
	}
	for _, ps := range pieces {
		slices.SortStableFunc(ps, func(a, b piece) int { return cmp.Compare(a.unit.Lo, b.unit.Lo) })
	}
	s := &folders[0].store.settings
	return func(yield func(*Part, error) bool) {
		for _, name := range order {
			p, err := mergeCheckpoint(name, pieces[name], s)
			if !yield(p, err) || err != nil {
				return
			}
		}
	}
}

// mergeCheckpoint puts together the part of checkpoint name from the
// pieces, sorted by their first image: every kind of row of a Part (a
// kind it does not carry over is caught by TestMergeEqualsOneAudit, which
// compares every file of the folders).
func mergeCheckpoint(name string, pieces []piece, s *Settings) (*Part, error) {
	read := map[*ShardFolder]*Part{}
	var out *Part
	for _, pc := range pieces {
		if read[pc.folder] != nil {
			continue
		}
		p, err := pc.folder.store.readAll(name)
		if err != nil {
			return nil, err
		}
		read[pc.folder] = p
		if want := pc.folder.imagesOf(name) * len(s.Norms); len(p.Records) != want {
			return nil, fmt.Errorf("auditor: %s: %d records of %s, but its units there take %d", pc.folder.Dir, len(p.Records), name, want)
		}
		if out == nil {
			out = &Part{Checkpoint: name, Epoch: p.Epoch, Model: p.Model}
			continue
		}
		if p.Epoch != out.Epoch || (p.Model == nil) != (out.Model == nil) || (p.Model != nil && *p.Model != *out.Model) {
			return nil, fmt.Errorf("auditor: %s and %s differ on checkpoint %s (epoch %d and %d, or how its model was run)", pieces[0].folder.Dir, pc.folder.Dir, name, out.Epoch, p.Epoch)
		}
	}
	for _, split := range s.Splits {
		var here []piece
		for _, pc := range pieces {
			if pc.unit.Split == string(split) {
				here = append(here, pc)
			}
		}
		for _, norm := range s.Norms {
			for _, pc := range here {
				out.Records = append(out.Records, rowsOf(read[pc.folder].Records, func(r *Record) bool { return r.Split == split && r.Norm == norm })...)
			}
		}
		for _, pc := range here {
			p := read[pc.folder]
			out.Confidence = append(out.Confidence, rowsOf(p.Confidence, func(c *Confidence) bool { return c.Split == split })...)
			out.PGD = append(out.PGD, rowsOf(p.PGD, func(r *PGDResult) bool { return r.Split == split })...)
			out.Robust = append(out.Robust, rowsOf(p.Robust, func(r *RobustImage) bool { return r.Split == split })...)
		}
	}
	adv, err := mergeAdversarial(name, pieces, s)
	if err != nil {
		return nil, err
	}
	out.Adversarial = adv
	return out, nil
}

// mergeAdversarial puts together the saved perturbations of checkpoint
// name from the pieces, in the order of its records: none when no shard
// saved them, an error naming a shard without them when others did.
func mergeAdversarial(name string, pieces []piece, s *Settings) ([]Adversarial, error) {
	var with, without []string
	for _, pc := range pieces {
		if pc.folder.store.HasAdversarial(name) {
			with = append(with, pc.folder.Dir)
		} else {
			without = append(without, pc.folder.Dir)
		}
	}
	switch {
	case len(with) == 0:
		return nil, nil
	case len(without) > 0:
		return nil, fmt.Errorf("auditor: %s saved the perturbations of %s (--save-adversarial) but %s did not: audit the shards alike",
			with[0], name, without[0])
	}
	kinds := []bool{false} // DeepFool's, and the refined points'
	if s.Refine {
		kinds = append(kinds, true)
	}
	var out []Adversarial
	for _, refined := range kinds {
		for _, split := range s.Splits {
			for _, norm := range s.Norms {
				m, err := mergeAdversarialOf(name, pieces, split, norm, refined)
				if err != nil {
					return nil, err
				}
				if m != nil {
					out = append(out, *m)
				}
			}
		}
	}
	return out, nil
}

// mergeAdversarialOf concatenates the perturbations of one split and norm
// of checkpoint name, DeepFool's or the refined ones. Shards refined
// before the refined perturbations were saved have none: nil when no
// shard has them, an error naming one without them when others do.
func mergeAdversarialOf(name string, pieces []piece, split Split, norm Norm, refined bool) (*Adversarial, error) {
	var m *Adversarial
	var without string
	for _, pc := range pieces {
		if pc.unit.Split != string(split) {
			continue
		}
		a, err := ReadAdversarial(pc.folder.Dir, name, split, norm, refined)
		if refined && errors.Is(err, fs.ErrNotExist) {
			without = pc.folder.Dir
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == nil {
			m = &Adversarial{Split: split, Norm: norm, Refined: refined, Shape: a.Shape}
		}
		m.Index = append(m.Index, a.Index...)
		m.AdvPred = append(m.AdvPred, a.AdvPred...)
		m.Delta = append(m.Delta, a.Delta...)
	}
	if m != nil && without != "" {
		return nil, fmt.Errorf("auditor: %s saved no refined perturbations of %s (audited before they were saved) but others did: audit the shards alike", without, name)
	}
	return m, nil
}

// imagesOf counts the images of the folder's units of checkpoint name.
func (f *ShardFolder) imagesOf(name string) int {
	n := 0
	for _, u := range f.Manifest.Units {
		if u.Checkpoint == name {
			n += u.Len()
		}
	}
	return n
}

// rowsOf returns the rows that keep selects, in order.
func rowsOf[T any](rows []T, keep func(*T) bool) []T {
	var out []T
	for i := range rows {
		if keep(&rows[i]) {
			out = append(out, rows[i])
		}
	}
	return out
}
