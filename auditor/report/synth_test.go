package report_test

import (
	"cmp"
	"fmt"
	"math"
	"testing"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/attack"
)

// synth describes a synthetic but realistic audit: accuracy rising from
// chance to a plateau, mean margins growing then flattening, misclassified
// images with smaller margins, a few failed attacks.
type synth struct {
	seed       uint64
	epochs     int     // checkpoints epoch-000 … epoch-(epochs-1)
	n          int     // images per split
	classes    int     // 10
	scale      float64 // margin scale (adversarial training: larger)
	linfScale  float64 // L∞ margin / L2 margin
	accDrop    float64 // accuracy lost against the standard model
	failRate   float64 // fraction of failed attacks
	confidence bool    // measure confidences (confidence.csv)
	pgd        bool    // PGD L∞ results at ε = 0.1
	refine     bool    // refined margins: 0.97 times the DeepFool margins
	censor     int     // with refine: test images below this index are censored at radius 28
	certify    bool    // with refine: certified lower bounds, half the refined margins (0 if misclassified)
	// models records how each checkpoint was run (auditor.ModelInfo),
	// with the pixel range [0, 1] from the checkpoints' metadata
	// (settings.json then stores [0, 0]), as audits do since they record
	// it; without, the audit is one made before.
	models bool
	// separate names the checkpoints of an audit of separate models, with
	// no epochs (numbered in this order); nil for a training run.
	separate []string
	// images seeds the images' labels and difficulties, so that audits
	// of different models share their images; 0: seed.
	images uint64
	// stage is how far into training the checkpoints are, in epochs, on
	// top of their position: separate models of a model set are trained.
	stage int
}

// accuracy is the fraction of images a checkpoint gets right.
func (s synth) accuracy(split auditor.Split, epoch int) float64 {
	if epoch == 0 {
		return 0.1
	}
	a := 0.88 + 0.1*(1-math.Exp(-float64(epoch)/2.5)) - s.accDrop
	if split == auditor.Test {
		a -= 0.015 * (1 - math.Exp(-float64(epoch)/4))
	}
	return a
}

// meanMargin is the mean L2 margin of correct images: small at
// initialisation, then growing and flattening.
func (s synth) meanMargin(epoch int) float64 {
	if epoch == 0 {
		return 0.05 * s.scale
	}
	return s.scale * (0.55 + 0.9*(1-math.Exp(-float64(epoch)/2.2)))
}

// write writes the audit into dir with auditor.Store, as an audit does.
func (s synth) write(t testing.TB, dir string) {
	t.Helper()
	settings := &auditor.Settings{
		Data: "mnist", Splits: []auditor.Split{auditor.Train, auditor.Test}, N: s.n, Sample: "first", Seed: 1,
		Norms:          []auditor.Norm{auditor.L2, auditor.LInf},
		DeepFoolParams: attack.DeepFoolParams{Overshoot: 0.02, MaxIter: 50, Retries: 10},
	}
	if s.refine {
		settings.RefineParams = attack.DefaultRefineParams()
	}
	if s.certify {
		settings.CertifySettings = auditor.DefaultCertifySettings()
	}
	if !s.models {
		settings.Range = [2]float64{0, 1}
	}
	if s.pgd {
		settings.PGD = auditor.PGDSettings{Norms: []auditor.Norm{auditor.LInf}, Eps: []float64{0.1}, PGDParams: attack.PGDParams{Steps: 20, Step: 0.25, RandomStart: true}}
	}
	store, err := auditor.OpenStore(dir, settings)
	if err != nil {
		t.Fatal(err)
	}
	rng := splitmix64(cmp.Or(s.images, s.seed))
	// Each image has a fixed difficulty; a checkpoint gets it right when
	// the difficulty is below its accuracy, with a little noise, so that
	// most transitions are correct→correct and a few go back and forth.
	difficulty := map[auditor.Split][]float64{}
	labels := map[auditor.Split][]int{}
	for _, sp := range settings.Splits {
		for range s.n {
			difficulty[sp] = append(difficulty[sp], rng.float())
			labels[sp] = append(labels[sp], int(rng.next()%uint64(s.classes)))
		}
	}
	epochs := s.epochs
	if s.separate != nil {
		epochs = len(s.separate)
	}
	if s.images != 0 {
		rng = splitmix64(s.seed)
	}
	for e := range epochs {
		name, from := fmt.Sprintf("epoch-%03d.onnx", e), auditor.FromName
		if s.separate != nil {
			name, from = s.separate[e], auditor.FromPosition
		}
		part := &auditor.Part{Checkpoint: name, Epoch: e}
		if s.models {
			part.Model = &auditor.ModelInfo{Checkpoint: name, Epoch: e, Scores: "logits", EpochFrom: from,
				InputRange: [2]float64{0, 1}, Normalization: "none"}
		}
		for _, sp := range settings.Splits {
			acc := s.accuracy(sp, e+s.stage)
			robust := 0
			for i := range s.n {
				label := labels[sp][i]
				correct := difficulty[sp][i]+0.03*rng.norm() < acc
				pred := label
				if !correct {
					pred = (label + 1 + int(rng.next()%uint64(s.classes-1))) % s.classes
				}
				// Lognormal margins; misclassified images lie closer to the
				// boundary of their predicted class.
				z := rng.norm()
				m := s.meanMargin(e+s.stage) * math.Exp(0.35*z-0.35*0.35/2)
				if !correct {
					m *= 0.25 + 0.2*rng.float()
				}
				if correct && m*s.linfScale > 0.1 {
					robust++
				}
				if s.confidence {
					// Confident where the margin is large; noisy.
					c := 1 / (1 + math.Exp(-(3*m/s.meanMargin(max(e+s.stage, 1)) + 0.8*rng.norm())))
					part.Confidence = append(part.Confidence, auditor.Confidence{Checkpoint: name, Epoch: e, Split: sp, Index: i, MaxSoftmax: math.Max(0.1, c)})
				}
				for _, norm := range settings.Norms {
					mm := m
					if norm == auditor.LInf {
						mm = m * s.linfScale * math.Exp(0.1*rng.norm())
					}
					r := auditor.Record{
						Checkpoint: name, Epoch: e, Split: sp, Index: i, Label: label, Pred: pred, Correct: correct,
						Norm: norm, Margin: mm, MarginRefined: math.NaN(), Iterations: 2 + int(rng.next()%5), Success: true,
					}
					if s.refine {
						r.MarginRefined = 0.97 * mm
					}
					if rng.float() < s.failRate {
						r.Success, r.Margin, r.Retries = false, math.NaN(), settings.Retries
					}
					if s.refine && sp == auditor.Test && i < s.censor {
						r.Success, r.Margin, r.MarginRefined, r.Censored = false, math.NaN(), 28, true
					}
					if s.certify {
						r.Certified = true
						if correct {
							r.MarginLower = 0.5 * r.MarginRefined
						}
					}
					part.Records = append(part.Records, r)
				}
			}
			if s.pgd && sp == auditor.Test {
				part.PGD = append(part.PGD, auditor.PGDResult{Checkpoint: name, Epoch: e, Split: sp, Norm: auditor.LInf, Eps: 0.1, Images: s.n, Robust: robust})
			}
		}
		if err := store.Commit(part); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.WriteReport(); err != nil {
		t.Fatal(err)
	}
}

// standard and adversarial are the two synthetic trainings of the tests.
func standardSynth(epochs, n int) synth {
	return synth{seed: 1, epochs: epochs, n: n, classes: 10, scale: 1, linfScale: 0.07, failRate: 0.002, confidence: true, pgd: true, models: true}
}

// separateSynth is an audit of three separate models, compared side by
// side: the checkpoints have no epochs.
func separateSynth(n int) synth {
	return synth{seed: 3, n: n, classes: 10, scale: 1.2, linfScale: 0.08, failRate: 0.002, confidence: true, pgd: true, models: true,
		separate: []string{"resnet18.onnx", "vgg11.onnx", "mlp.onnx"}}
}

// modelSynth is an audit of one model without an epoch, on the images
// seeded by images: three of them with the same images form a model set.
func modelSynth(seed, images uint64, name string, scale, accDrop float64) synth {
	return synth{seed: seed, images: images, n: 30, classes: 10, scale: scale, linfScale: 0.08, accDrop: accDrop, failRate: 0.01,
		confidence: true, pgd: true, models: true, separate: []string{name}, stage: 6}
}

func adversarialSynth(epochs, n int) synth {
	return synth{seed: 2, epochs: epochs, n: n, classes: 10, scale: 1.5, linfScale: 0.1, accDrop: 0.02, failRate: 0.002, pgd: true}
}
