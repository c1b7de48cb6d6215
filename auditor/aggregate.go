package auditor

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat"
)

// Summarize aggregates the records and PGD results of an audit into a
// Summary with the given settings (which may be nil):
//
//   - Checkpoints: one entry per checkpoint, sorted by epoch, with the clean
//     accuracy on each audited split.
//   - Groups: for every (epoch, split, norm) with records, the groups all,
//     correct and incorrect (present even when empty), sorted by epoch,
//     split (train, test), norm (l2, linf) and group.
//   - Transitions: as returned by Transitions.
//   - PGD: the results with their robust accuracy, sorted by epoch, split,
//     norm and eps.
//
// The input must be consistent: every record valid, no two records for one
// (checkpoint, split, index, norm), one epoch per checkpoint and one
// checkpoint per epoch, and the same label and prediction for an image in
// every norm (a prediction does not depend on the norm of the attack).
// Violations are reported as errors naming the records.
func Summarize(records []Record, pgd []PGDResult, settings *Settings) (*Summary, error) {
	ix, err := index(records, pgd)
	if err != nil {
		return nil, err
	}
	recs := map[string][]Record{}
	for _, r := range records {
		recs[r.Checkpoint] = append(recs[r.Checkpoint], r)
	}
	results := map[string][]PGDResult{}
	for _, p := range pgd {
		results[p.Checkpoint] = append(results[p.Checkpoint], p)
	}
	z := newSummarizer(settings)
	for _, c := range ix.checkpoints {
		if err := z.add(recs[c.name], results[c.name]); err != nil {
			return nil, err
		}
	}
	return z.summary(), nil
}

// A summarizer builds a Summary one checkpoint at a time, in the order of
// their epochs, so that an audit is summarised part by part: it holds one
// checkpoint's records, and the labels and predictions of the previous
// checkpoint of each split (for the transitions), never the whole audit.
type summarizer struct {
	s           *Summary
	refined     bool                       // some record has a refined margin
	certified   bool                       // some record has a certified lower bound
	prev        map[Split]*checkpointIndex // the last checkpoint with images of each split
	transitions map[Split][]Transition     // by epoch
	epoch       int                        // of the last checkpoint added
}

func newSummarizer(settings *Settings) *summarizer {
	return &summarizer{
		s: &Summary{
			Format:      SummaryFormat,
			Version:     SummaryVersion,
			Settings:    settings,
			Checkpoints: []CheckpointSummary{},
			Groups:      []Group{},
			PGD:         []PGDAccuracy{},
		},
		prev:        map[Split]*checkpointIndex{},
		transitions: map[Split][]Transition{},
		epoch:       -1,
	}
}

// add summarises the records and PGD results of one checkpoint, which must
// be consistent as described at Summarize and have a larger epoch than the
// checkpoint added before. A checkpoint without any adds nothing.
func (z *summarizer) add(records []Record, pgd []PGDResult) error {
	ix, err := index(records, pgd)
	if err != nil {
		return err
	}
	switch {
	case len(ix.checkpoints) == 0:
		return nil
	case len(ix.checkpoints) > 1:
		a, b := ix.checkpoints[0], ix.checkpoints[1]
		return fmt.Errorf("auditor: summarising checkpoint %s: records of %s too", a.name, b.name)
	}
	c := ix.checkpoints[0]
	if c.epoch <= z.epoch {
		return fmt.Errorf("auditor: summarising checkpoint %s: epoch %d after epoch %d", c.name, c.epoch, z.epoch)
	}
	z.epoch = c.epoch

	cs := CheckpointSummary{Checkpoint: c.name, Epoch: c.epoch, Accuracy: []Accuracy{}}
	for _, sp := range []Split{Train, Test} {
		imgs, ok := c.images[sp]
		if !ok {
			continue
		}
		a := Accuracy{Split: sp, Images: len(imgs)}
		for _, im := range imgs {
			if im.label == im.pred {
				a.Correct++
			}
		}
		a.Accuracy = Float(ratio(a.Correct, a.Images))
		cs.Accuracy = append(cs.Accuracy, a)
		if prev := z.prev[sp]; prev != nil {
			z.transitions[sp] = append(z.transitions[sp], transition(sp, prev, c))
		}
		z.prev[sp] = c
	}
	z.s.Checkpoints = append(z.s.Checkpoints, cs)

	// Sort a copy of the records by group key so that each (split, norm)
	// is one contiguous run.
	sorted := slices.Clone(records)
	slices.SortStableFunc(sorted, func(a, b Record) int {
		return cmp.Or(
			cmp.Compare(a.Split.order(), b.Split.order()),
			cmp.Compare(normOrder(a.Norm), normOrder(b.Norm)),
		)
	})
	z.refined = z.refined || slices.ContainsFunc(records, func(r Record) bool { return r.Refined() })
	z.certified = z.certified || slices.ContainsFunc(records, func(r Record) bool { return r.Certified })
	for lo := 0; lo < len(sorted); {
		hi := lo + 1
		for hi < len(sorted) && sorted[hi].Split == sorted[lo].Split && sorted[hi].Norm == sorted[lo].Norm {
			hi++
		}
		z.s.Groups = append(z.s.Groups, groups(sorted[lo:hi])...)
		lo = hi
	}

	first := len(z.s.PGD)
	for _, p := range pgd {
		z.s.PGD = append(z.s.PGD, PGDAccuracy{PGDResult: p, RobustAccuracy: Float(ratio(p.Robust, p.Images))})
	}
	slices.SortStableFunc(z.s.PGD[first:], func(a, b PGDAccuracy) int {
		return cmp.Or(
			cmp.Compare(a.Split.order(), b.Split.order()),
			cmp.Compare(normOrder(a.Norm), normOrder(b.Norm)),
			cmp.Compare(a.Eps, b.Eps),
		)
	})
	return nil
}

// summary returns the Summary of the checkpoints added.
func (z *summarizer) summary() *Summary {
	// No refined margins (certified bounds) anywhere: null, not
	// statistics of none.
	for i := range z.s.Groups {
		if !z.refined {
			z.s.Groups[i].MarginRefined = nil
		}
		if !z.certified {
			z.s.Groups[i].MarginLower = nil
		}
	}
	z.s.Transitions = append(append([]Transition{}, z.transitions[Train]...), z.transitions[Test]...)
	return z.s
}

// groups computes the three groups of the records of one (epoch, split,
// norm), each with the statistics of its refined margins and certified
// lower bounds (see summarizer.summary).
func groups(recs []Record) []Group {
	out := make([]Group, 0, len(groupKinds))
	var margins, refinedMargins, lower []float64
	for _, kind := range groupKinds {
		g := Group{
			Checkpoint: recs[0].Checkpoint,
			Epoch:      recs[0].Epoch,
			Split:      recs[0].Split,
			Norm:       recs[0].Norm,
			Group:      kind,
		}
		margins, refinedMargins, lower = margins[:0], refinedMargins[:0], lower[:0]
		for i := range recs {
			r := &recs[i]
			if (kind == Correct && !r.Correct) || (kind == Incorrect && r.Correct) {
				continue
			}
			g.Images++
			if r.Certified {
				lower = append(lower, r.MarginLower)
			}
			switch {
			case r.Censored:
				g.Censored++
			case r.Refined():
				refinedMargins = append(refinedMargins, r.MarginRefined)
			}
			if !r.Success {
				g.Failures++
				continue
			}
			margins = append(margins, r.Margin)
		}
		g.Margin = Describe(margins)
		d := Describe(refinedMargins)
		g.MarginRefined = &d
		l := Describe(lower)
		g.MarginLower = &l
		out = append(out, g)
	}
	return out
}

// Describe returns the statistics of a sample of margins (see Dist). It
// sorts x in place.
func Describe(x []float64) Dist {
	d := Dist{N: len(x)}
	nan := Float(math.NaN())
	if len(x) == 0 {
		d.Mean, d.SE, d.Min, d.Q1, d.Median, d.Q3, d.Max = nan, nan, nan, nan, nan, nan, nan
		return d
	}
	slices.Sort(x)
	mean, std := stat.MeanStdDev(x, nil) // std is NaN for one value: 0/0
	d.Mean = Float(mean)
	d.SE = Float(stat.StdErr(std, float64(len(x))))
	d.Min = Float(x[0])
	d.Q1 = Float(stat.Quantile(0.25, stat.Empirical, x, nil))
	d.Median = Float(stat.Quantile(0.5, stat.Empirical, x, nil))
	d.Q3 = Float(stat.Quantile(0.75, stat.Empirical, x, nil))
	d.Max = Float(x[len(x)-1])
	return d
}

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// Transitions counts, for each split and each pair of adjacent audited
// epochs of that split (sorted by epoch), the images that stay correct,
// become incorrect, become correct or stay incorrect, matching images by
// their index. Each image counts once whatever the number of norms. The
// result is sorted by split (train, test) and epoch. The input must be
// consistent as described at Summarize.
func Transitions(records []Record) ([]Transition, error) {
	ix, err := index(records, nil)
	if err != nil {
		return nil, err
	}
	return transitions(ix), nil
}

func transitions(ix *recordIndex) []Transition {
	out := []Transition{}
	for _, sp := range []Split{Train, Test} {
		var prev *checkpointIndex
		for _, c := range ix.checkpoints {
			if _, ok := c.images[sp]; !ok {
				continue
			}
			if prev != nil {
				out = append(out, transition(sp, prev, c))
			}
			prev = c
		}
	}
	return out
}

// transition counts the images of split sp from checkpoint prev to cur.
func transition(sp Split, prev, cur *checkpointIndex) Transition {
	t := Transition{
		Split: sp, FromEpoch: prev.epoch, ToEpoch: cur.epoch,
		FromCheckpoint: prev.name, ToCheckpoint: cur.name,
	}
	before, after := prev.images[sp], cur.images[sp]
	for i, b := range before {
		a, ok := after[i]
		if !ok {
			t.OnlyFrom++
			continue
		}
		switch bc, ac := b.correct(), a.correct(); {
		case bc && ac:
			t.CorrectCorrect++
		case bc:
			t.CorrectIncorrect++
		case ac:
			t.IncorrectCorrect++
		default:
			t.IncorrectIncorrect++
		}
	}
	for i := range after {
		if _, ok := before[i]; !ok {
			t.OnlyTo++
		}
	}
	return t
}

// recordIndex is the consistency-checked view of an audit's records:
// checkpoints sorted by epoch, each with its images per split.
type recordIndex struct {
	checkpoints []*checkpointIndex
}

type checkpointIndex struct {
	name   string
	epoch  int
	images map[Split]map[int]image
}

type image struct {
	label, pred int
	norm        Norm // first norm seen, for error messages
}

func (im image) correct() bool { return im.label == im.pred }

// index validates records and PGD results and builds their recordIndex.
func index(records []Record, pgd []PGDResult) (*recordIndex, error) {
	byName := map[string]*checkpointIndex{}
	byEpoch := map[int]string{}
	checkpoint := func(name string, epoch int) (*checkpointIndex, error) {
		c, ok := byName[name]
		if ok {
			if c.epoch != epoch {
				return nil, fmt.Errorf("auditor: checkpoint %s has epochs %d and %d", name, c.epoch, epoch)
			}
			return c, nil
		}
		if other, ok := byEpoch[epoch]; ok {
			return nil, fmt.Errorf("auditor: checkpoints %s and %s both have epoch %d", other, name, epoch)
		}
		c = &checkpointIndex{name: name, epoch: epoch, images: map[Split]map[int]image{}}
		byName[name], byEpoch[epoch] = c, name
		return c, nil
	}
	seen := make(map[recordKey]bool, len(records))
	for i := range records {
		r := &records[i]
		if fe := r.validate(); fe != nil {
			return nil, fmt.Errorf("auditor: record %d (%s %s image %d %s): %s: %w", i, r.Checkpoint, r.Split, r.Index, r.Norm, Header[fe.column], fe)
		}
		if seen[r.key()] {
			return nil, fmt.Errorf("auditor: two records for %s %s image %d norm %s", r.Checkpoint, r.Split, r.Index, r.Norm)
		}
		seen[r.key()] = true
		c, err := checkpoint(r.Checkpoint, r.Epoch)
		if err != nil {
			return nil, err
		}
		imgs := c.images[r.Split]
		if imgs == nil {
			imgs = map[int]image{}
			c.images[r.Split] = imgs
		}
		im, ok := imgs[r.Index]
		if !ok {
			imgs[r.Index] = image{label: r.Label, pred: r.Pred, norm: r.Norm}
			continue
		}
		if im.label != r.Label || im.pred != r.Pred {
			return nil, fmt.Errorf("auditor: %s %s image %d: label %d and prediction %d in norm %s but label %d and prediction %d in norm %s",
				r.Checkpoint, r.Split, r.Index, im.label, im.pred, im.norm, r.Label, r.Pred, r.Norm)
		}
	}
	type pgdKey struct {
		checkpoint string
		split      Split
		norm       Norm
		eps        float64
	}
	seenPGD := map[pgdKey]bool{}
	for i := range pgd {
		p := &pgd[i]
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("auditor: PGD result %d (%s %s %s eps %v): %w", i, p.Checkpoint, p.Split, p.Norm, p.Eps, err)
		}
		k := pgdKey{p.Checkpoint, p.Split, p.Norm, p.Eps}
		if seenPGD[k] {
			return nil, fmt.Errorf("auditor: two PGD results for %s %s %s eps %v", p.Checkpoint, p.Split, p.Norm, p.Eps)
		}
		seenPGD[k] = true
		if _, err := checkpoint(p.Checkpoint, p.Epoch); err != nil {
			return nil, err
		}
	}
	ix := &recordIndex{}
	for _, c := range byName {
		ix.checkpoints = append(ix.checkpoints, c)
	}
	slices.SortFunc(ix.checkpoints, func(a, b *checkpointIndex) int { return cmp.Compare(a.epoch, b.epoch) })
	return ix, nil
}
