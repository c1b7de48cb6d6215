package train

import (
	"context"
	"fmt"
	"math"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/trainer/checkpoint"
	"github.com/marginaudit/marginaudit/trainer/model"
)

// adversary makes the adversarial examples of adversarial training: PGD
// (package attack) against a classifier whose weights are the model's
// Param.Data slices, bound as graph inputs, so that every batch is attacked
// with the weights of that moment through sessions made once.
type adversary struct {
	cfg Adversarial
	c   *attack.Classifier
	pgd *attack.PGD
	adv []float32 // the adversarial images of a batch
}

// newAdversary builds the classifier and the PGD attack for m.
func newAdversary(m *model.Model, a Adversarial, threads int) (*adversary, error) {
	bound := make([]attack.BoundInput, len(m.Params))
	for i, p := range m.Params {
		bound[i] = attack.BoundInput{Name: p.Name, Shape: p.Dims, Data: p.Data}
	}
	c, err := attack.NewClassifier(m.Graph(model.AsInputs), attack.Options{
		Name: "training model", Threads: threads, Scores: attack.LogitScores, Bound: bound,
	})
	if err != nil {
		return nil, fmt.Errorf("train: adversarial training: %w", err)
	}
	// BatchSize 0: the whole share of a mini-batch in one run per step and
	// worker.
	// Without EarlyStop every image takes all the steps, as in Madry et al.
	pgd, err := attack.NewPGD(c, attack.PGDOptions{Norm: a.Norm, Eps: a.Eps, PGDParams: a.PGDParams})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("train: adversarial training: %w", err)
	}
	return &adversary{cfg: a, c: c, pgd: pgd}, nil
}

// count returns how many of a batch of n images are replaced: ⌊Frac·n + ½⌋.
func (a *adversary) count(n int) int {
	return min(n, int(math.Floor(a.cfg.Frac*float64(n)+0.5)))
}

// replace overwrites the first m images of x (size values each) with their
// PGD adversarial examples for the given labels, with the random starts of
// batch b of epoch e of a run with the given seed.
func (a *adversary) replace(ctx context.Context, x []float32, labels []int, m, size int, seed uint64, e, b int) error {
	if m == 0 {
		return nil
	}
	a.adv = grow(a.adv, m*size)
	a.pgd.Reseed(advSeed(seed, e, b))
	if err := a.pgd.Attack(ctx, a.adv, x[:m*size], labels[:m], nil); err != nil {
		return err
	}
	copy(x[:m*size], a.adv)
	return nil
}

// Close releases the classifier's sessions.
func (a *adversary) Close() error {
	if a == nil {
		return nil
	}
	return a.c.Close()
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// advStream separates the random starts' seeds from the other uses of the
// run's seed (initialisation, shuffling).
const advStream = 0x70676400 << 32 // "pgd\0"

// advSeed returns the seed of the PGD random starts of batch b (0-based) of
// epoch e: a function of (seed, e, b) alone, so that a resumed run draws the
// starts of an uninterrupted one. It chains SplitMix64's finaliser (Steele et
// al., "Fast splittable pseudorandom number generators", OOPSLA 2014),
// whose constants are fixed here, over the three numbers.
func advSeed(seed uint64, e, b int) uint64 {
	return mix64(mix64(mix64(seed^advStream)+uint64(e)) + uint64(b))
}

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// record returns the adversarial settings as a checkpoint records them; the
// zero value for nil.
func (a *Adversarial) record() checkpoint.Adversarial {
	if a == nil {
		return checkpoint.Adversarial{}
	}
	return checkpoint.Adversarial{
		Method: "pgd", Norm: string(a.Norm),
		Eps: a.Eps, Step: a.Step, Steps: a.Steps, Frac: a.Frac, RandomStart: a.RandomStart,
	}
}
