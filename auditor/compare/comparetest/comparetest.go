// Package comparetest writes small synthetic audit folders for the tests
// of package compare and of the diff command.
package comparetest

import (
	"github.com/marginaudit/marginaudit/auditor/attack"
	"math"
	"testing"

	"github.com/marginaudit/marginaudit/auditor"
)

// Settings returns the settings of a synthetic audit of n test images in
// both norms, with PGD at L∞ ε = 0.1.
func Settings(n int) *auditor.Settings {
	return &auditor.Settings{
		Data: "mnist", Splits: []auditor.Split{auditor.Test}, N: n, Sample: "first", Seed: 1,
		Range: [2]float64{0, 1}, Norms: []auditor.Norm{auditor.L2, auditor.LInf},
		DeepFoolParams: attack.DeepFoolParams{Overshoot: 0.02, MaxIter: 50, Retries: 10},
		PGD: auditor.PGDSettings{Norms: []auditor.Norm{auditor.LInf}, Eps: []float64{0.1},
			PGDParams: attack.PGDParams{Steps: 10, Step: 0.25}},
	}
}

// Model describes one synthetic checkpoint: for image i (label i mod 10)
// of the test split, its margin in norm n (NaN for a failed attack) and
// whether it is classified correctly; Robust counts its images robust at
// ε = 0.1 (the first ones).
type Model struct {
	Checkpoint string
	Epoch      int
	Margin     func(i int, n auditor.Norm) float64
	// Refined, when set (for settings with refinement), gives image i's
	// refined margin in norm n, or with censored true the largest radius
	// tried.
	Refined func(i int, n auditor.Norm) (margin float64, censored bool)
	Correct func(i int) bool
	Robust  int
}

// Write commits the models to the audit folder dir with settings s, as the
// audit command does, and writes its summary.
func Write(t testing.TB, dir string, s *auditor.Settings, models ...Model) {
	t.Helper()
	st, err := auditor.OpenStore(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range models {
		p := &auditor.Part{Checkpoint: m.Checkpoint, Epoch: m.Epoch}
		for _, n := range s.Norms {
			for i := range s.N {
				label, pred := i%10, i%10
				if !m.Correct(i) {
					pred = (label + 1) % 10
				}
				v := m.Margin(i, n)
				r := auditor.Record{Checkpoint: m.Checkpoint, Epoch: m.Epoch, Split: auditor.Test, Index: i,
					Label: label, Pred: pred, Correct: label == pred, Norm: n, Margin: v, MarginRefined: math.NaN(),
					Iterations: 3, Success: !math.IsNaN(v)}
				if m.Refined != nil {
					r.MarginRefined, r.Censored = m.Refined(i, n)
				}
				p.Records = append(p.Records, r)
			}
		}
		for _, n := range s.PGD.Norms {
			for _, eps := range s.PGD.Eps {
				p.PGD = append(p.PGD, auditor.PGDResult{Checkpoint: m.Checkpoint, Epoch: m.Epoch, Split: auditor.Test, Norm: n, Eps: eps, Images: s.N, Robust: m.Robust})
				for i := range s.N {
					p.Robust = append(p.Robust, auditor.RobustImage{Checkpoint: m.Checkpoint, Epoch: m.Epoch, Split: auditor.Test, Norm: n, Eps: eps, Index: i, Robust: i < m.Robust})
				}
			}
		}
		if err := st.Commit(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.WriteReport(); err != nil {
		t.Fatal(err)
	}
}
