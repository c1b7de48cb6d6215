package report

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/compare"
)

// audit is an audit directory read into memory.
type audit struct {
	Audit
	slug     string          // Label made safe for file names
	folder   *compare.Folder // the folder as read, for paired comparisons
	settings *auditor.Settings
	records  []auditor.Record // margins as the report uses them (refined when Options.Refined)
	refined  bool             // records holds the refined margins
	// bracket holds DeepFool's and the refined margins side by side; nil
	// when the audit did not refine.
	bracket map[cellKey]*bracketCell
	summary *auditor.Summary     // recomputed from records, PGD from summary.json
	conf    map[imageKey]float64 // max-softmax per image; nil without confidence.csv
	// models describes how each checkpoint was run, by epoch, from
	// summary.json; empty for audits made before it was recorded.
	models map[int]auditor.CheckpointSummary
	// names holds each epoch's checkpoint file name.
	names map[int]string
	// separate is set when the checkpoints had no epochs: separate models
	// numbered in the order given, compared side by side rather than
	// epochs of a training run.
	separate bool
	// member is set when the audit is one model of a model set, named by
	// its label.
	member bool

	epochs []int
	splits []auditor.Split
	norms  []auditor.Norm
	groups map[groupKey]*auditor.Group
	// margins per (epoch, split, norm): the successful attacks' margins of
	// the correctly and incorrectly classified images, with their images.
	cells map[cellKey]*cell
}

type imageKey struct {
	epoch int
	split auditor.Split
	index int
}

type cellKey struct {
	epoch int
	split auditor.Split
	norm  auditor.Norm
}

type groupKey struct {
	cellKey
	group auditor.GroupKind
}

type cell struct {
	correct, incorrect       []float64 // margins
	correctIdx, incorrectIdx []int     // image indices, parallel to the margins
	failures                 int
}

// load reads the audit directory of a with compare.ReadFolder
// (settings.json, margins.csv, and, when present, summary.json for PGD
// robust accuracy and how each checkpoint was run, and robust.csv), and
// confidence.csv when present. Margin statistics are recomputed from
// margins.csv with auditor.Summarize, so they always describe exactly the
// records that the report shows.
func load(a Audit, refined bool) (*audit, []string, error) {
	var notes []string
	out := &audit{Audit: a}
	folder, err := compare.ReadFolder(a.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("report: audit %q: %w", a.Label, err)
	}
	out.folder = folder
	out.settings = &folder.Settings
	recs := slices.Clone(folder.Records())
	path := filepath.Join(a.Dir, auditor.MarginsFile)
	out.refined = refined
	if refined {
		for i := range recs {
			r := &recs[i]
			if !r.Refined() && r.Success {
				return nil, nil, fmt.Errorf("report: %s: %s %s image %d (%s) has no refined margin: audit with refinement or report unrefined margins",
					path, r.Checkpoint, r.Split, r.Index, r.Norm)
			}
			// A refined margin is one where DeepFool failed too; a
			// censored image has none, and counts as a failure.
			r.Margin, r.Success = r.MarginRefined, r.HasRefinedMargin()
			if !r.Success {
				r.Margin = math.NaN()
			}
		}
	}
	out.records = recs
	out.bracket = bracketCells(folder.Records())

	var pgd []auditor.PGDResult
	if sum := folder.Summary(); sum == nil {
		notes = append(notes, fmt.Sprintf("audit %s has no %s: no PGD robust accuracy", a.Label, auditor.SummaryFile))
	} else {
		have := map[string]int{}
		for _, r := range recs {
			have[r.Checkpoint] = r.Epoch
		}
		stale := 0
		out.models = map[int]auditor.CheckpointSummary{}
		for _, c := range sum.Checkpoints {
			if e, ok := have[c.Checkpoint]; ok && e == c.Epoch {
				out.models[c.Epoch] = c
			}
		}
		for _, p := range sum.PGD {
			if e, ok := have[p.Checkpoint]; ok && e == p.Epoch {
				pgd = append(pgd, p.PGDResult)
			} else {
				stale++
			}
		}
		if len(sum.Checkpoints) != len(have) || stale > 0 {
			notes = append(notes, fmt.Sprintf("%s lists %d checkpoints, %s %d: the summary is older than the margins; rerun the audit to refresh it (PGD results of checkpoints missing from the margins are left out)",
				filepath.Join(a.Dir, auditor.SummaryFile), len(sum.Checkpoints), auditor.MarginsFile, len(have)))
		}
	}

	out.summary, err = auditor.Summarize(recs, pgd, out.settings)
	if err != nil {
		return nil, nil, fmt.Errorf("report: %s: %w", filepath.Join(a.Dir, auditor.MarginsFile), err)
	}

	path = filepath.Join(a.Dir, auditor.ConfidenceFile)
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, nil, fmt.Errorf("report: audit %q: %w", a.Label, err)
	default:
		rows, err := auditor.ReadConfidence(f, path)
		f.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("report: %w", err)
		}
		out.conf = make(map[imageKey]float64, len(rows))
		for _, c := range rows {
			out.conf[imageKey{c.Epoch, c.Split, c.Index}] = c.MaxSoftmax
		}
	}

	out.index()
	return out, notes, nil
}

// index fills the lookup tables of a.
func (a *audit) index() {
	a.groups = map[groupKey]*auditor.Group{}
	for i := range a.summary.Groups {
		g := &a.summary.Groups[i]
		a.groups[groupKey{cellKey{g.Epoch, g.Split, g.Norm}, g.Group}] = g
	}
	a.names = map[int]string{}
	a.separate = len(a.summary.Checkpoints) > 0
	for _, c := range a.summary.Checkpoints {
		a.epochs = append(a.epochs, c.Epoch)
		a.names[c.Epoch] = c.Checkpoint
		a.separate = a.separate && a.models[c.Epoch].EpochFrom == auditor.FromPosition
	}
	a.cells = map[cellKey]*cell{}
	splits, norms := map[auditor.Split]bool{}, map[auditor.Norm]bool{}
	for _, r := range a.records {
		splits[r.Split], norms[r.Norm] = true, true
		k := cellKey{r.Epoch, r.Split, r.Norm}
		c := a.cells[k]
		if c == nil {
			c = new(cell)
			a.cells[k] = c
		}
		switch {
		case !r.Success:
			c.failures++
		case r.Correct:
			c.correct = append(c.correct, r.Margin)
			c.correctIdx = append(c.correctIdx, r.Index)
		default:
			c.incorrect = append(c.incorrect, r.Margin)
			c.incorrectIdx = append(c.incorrectIdx, r.Index)
		}
	}
	for _, s := range []auditor.Split{auditor.Train, auditor.Test} {
		if splits[s] {
			a.splits = append(a.splits, s)
		}
	}
	for _, n := range []auditor.Norm{auditor.L2, auditor.LInf} {
		if norms[n] {
			a.norms = append(a.norms, n)
		}
	}
}

// group returns the statistics of one group, nil when it was not audited.
func (a *audit) group(epoch int, split auditor.Split, norm auditor.Norm, kind auditor.GroupKind) *auditor.Group {
	return a.groups[groupKey{cellKey{epoch, split, norm}, kind}]
}

// accuracy returns the clean accuracy of a split at an epoch, NaN when not
// audited.
func (a *audit) accuracy(epoch int, split auditor.Split) (acc auditor.Accuracy, ok bool) {
	for _, c := range a.summary.Checkpoints {
		if c.Epoch != epoch {
			continue
		}
		for _, x := range c.Accuracy {
			if x.Split == split {
				return x, true
			}
		}
	}
	return acc, false
}

// images returns the largest number of images audited on a split at any
// epoch (the audit's n for that split).
func (a *audit) images(split auditor.Split) int {
	n := 0
	for _, c := range a.summary.Checkpoints {
		for _, x := range c.Accuracy {
			if x.Split == split && x.Images > n {
				n = x.Images
			}
		}
	}
	return n
}

// failures returns the number of failed attacks of a norm.
func (a *audit) failures(norm auditor.Norm) int {
	n := 0
	for k, c := range a.cells {
		if k.norm == norm {
			n += c.failures
		}
	}
	return n
}

func (a *audit) hasSplit(s auditor.Split) bool { return slices.Contains(a.splits, s) }
func (a *audit) hasNorm(n auditor.Norm) bool   { return slices.Contains(a.norms, n) }
