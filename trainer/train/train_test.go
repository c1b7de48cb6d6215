package train_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/option"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/trainer/checkpoint"
	"github.com/marginaudit/marginaudit/trainer/checkpoint/checkpointtest"
	"github.com/marginaudit/marginaudit/trainer/dataset"
	"github.com/marginaudit/marginaudit/trainer/model"
	"github.com/marginaudit/marginaudit/trainer/optim"
	"github.com/marginaudit/marginaudit/trainer/train"
)

// synthetic returns n 1×8×8 images of 4 classes: class c is a bright 3×3
// square in corner c over uniform noise in [0, 0.5].
func synthetic(n int, seed uint64, split string) *dataset.Dataset {
	r := rand.New(rand.NewPCG(seed, 1))
	const h, w = 8, 8
	d := &dataset.Dataset{Name: "synthetic", Split: split, N: n, C: 1, H: h, W: w, Classes: 4,
		Images: make([]float32, n*h*w), Labels: make([]int, n)}
	for i := range n {
		c := r.IntN(4)
		d.Labels[i] = c
		img := d.Images[i*h*w : (i+1)*h*w]
		for j := range img {
			img[j] = float32(0.5 * r.Float64())
		}
		r0, c0 := (c/2)*5, (c%2)*5
		for y := r0; y < r0+3; y++ {
			for x := c0; x < c0+3; x++ {
				img[y*w+x] = float32(0.7 + 0.3*r.Float64())
			}
		}
	}
	return d
}

func baseConfig(t *testing.T, arch model.Arch, epochs int) train.Config {
	return train.Config{
		Train: synthetic(200, 1, "train"), Test: synthetic(100, 2, "test"),
		Arch: arch, Epochs: epochs, BatchSize: 32, EvalBatchSize: 64, Seed: 42,
		Optim:   optim.Config{Name: optim.Adam, LR: 1e-2, WeightDecay: 1e-4},
		Out:     t.TempDir(),
		Threads: 2,
	}
}

var smallMLP = model.Arch{Kind: model.MLP, Hidden: []int{16}}
var smallCNN = model.Arch{Kind: model.CNN, Channels: []int{4, 8}, Hidden: []int{16}}

// recorder is a Progress that keeps what it is told.
type recorder struct {
	start  []train.Start
	steps  []train.Step
	epochs []train.Epoch
	cancel func(train.Step)
}

func (r *recorder) Start(s train.Start) { r.start = append(r.start, s) }
func (r *recorder) Step(s train.Step) {
	r.steps = append(r.steps, s)
	if r.cancel != nil {
		r.cancel(s)
	}
}
func (r *recorder) Epoch(e train.Epoch) { r.epochs = append(r.epochs, e) }

func TestRunLearns(t *testing.T) {
	orttest.Require(t)
	for _, arch := range []model.Arch{smallMLP, smallCNN} {
		t.Run(arch.Kind, func(t *testing.T) {
			cfg := baseConfig(t, arch, 4)
			rec := &recorder{}
			if err := train.Run(context.Background(), cfg, rec); err != nil {
				t.Fatal(err)
			}
			if len(rec.start) != 1 || rec.start[0].First != 1 || rec.start[0].Batches != 7 || rec.start[0].Resumed {
				t.Errorf("Start = %+v", rec.start)
			}
			if len(rec.steps) != 4*7 || len(rec.epochs) != 5 {
				t.Fatalf("%d steps and %d epochs reported, want 28 and 5", len(rec.steps), len(rec.epochs))
			}
			first, last := rec.epochs[0].Metadata, rec.epochs[4].Metadata
			t.Logf("loss %.3f → %.3f, test accuracy %.3f → %.3f", first.TrainLoss, last.TrainLoss, first.TestAccuracy, last.TestAccuracy)
			if !(last.TrainLoss < 0.5*first.TrainLoss) {
				t.Errorf("training loss %v → %v: did not halve", first.TrainLoss, last.TrainLoss)
			}
			// The corners are unmistakable: 4 epochs reach ≥ 90 % on the
			// test images (chance: 25 %).
			if last.TestAccuracy < 0.9 {
				t.Errorf("test accuracy %v after 4 epochs", last.TestAccuracy)
			}
			for e := 0; e <= 4; e++ {
				if _, err := os.Stat(checkpoint.Path(cfg.Out, e)); err != nil {
					t.Error(err)
				}
			}
			rows := readCSV(t, filepath.Join(cfg.Out, checkpoint.CSVName))
			if len(rows) != 6 || !slices.Equal(rows[0], checkpoint.CSVHeader) || rows[5][0] != "4" {
				t.Errorf("train.csv: %v", rows)
			}
		})
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestRunMetadata checks that a checkpoint records the run's settings.
func TestRunMetadata(t *testing.T) {
	orttest.Require(t)
	cfg := baseConfig(t, smallCNN, 1)
	cfg.Optim = optim.Config{Name: optim.SGD, LR: 0.05, Momentum: 0.9, Schedule: optim.Schedule{Kind: optim.StepDecay, StepSize: 3, Gamma: 0.5}}
	cfg.TrainLimit = 150
	if err := train.Run(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	m, md, err := checkpoint.Read(checkpoint.Path(cfg.Out, 1))
	if err != nil {
		t.Fatal(err)
	}
	want := checkpoint.Metadata{
		Dataset: "synthetic", Classes: 4, InputShape: []int{1, 8, 8}, InputRange: [2]float64{0, 1}, Normalization: "none",
		Arch: smallCNN.WithDefaults(), Epoch: 1, Epochs: 1, Seed: 42, BatchSize: 32, TrainImages: 150, TestImages: 100,
		Optim: cfg.Optim.WithDefaults(), EpochLR: 0.05,
	}
	got := *md
	got.TrainLoss, got.TrainAccuracy, got.TestLoss, got.TestAccuracy, got.Seconds = 0, 0, 0, 0, 0
	if !reflectEqual(got, want) {
		t.Errorf("metadata\n got %+v\nwant %+v", got, want)
	}
	if md.TestAccuracy <= 0 || md.TrainLoss <= 0 || md.Seconds <= 0 {
		t.Errorf("measurements missing: %+v", md)
	}
	if m.Arch.String() != smallCNN.WithDefaults().String() {
		t.Errorf("arch %v", m.Arch)
	}
}

func reflectEqual(a, b checkpoint.Metadata) bool {
	return a.Arch.String() == b.Arch.String() && slices.Equal(a.InputShape, b.InputShape) &&
		strconv.Quote(fmtMD(a)) == strconv.Quote(fmtMD(b))
}

func fmtMD(m checkpoint.Metadata) string {
	s := ""
	for _, p := range m.Props() {
		s += p.GetKey() + "=" + p.GetValue() + "\n"
	}
	return s
}

// TestResumeEquivalence trains 3 epochs in one go, and 1 epoch then 2 more
// resumed in the same folder, and expects identical weights and records.
func TestResumeEquivalence(t *testing.T) {
	orttest.Require(t)
	for _, arch := range []model.Arch{smallMLP, smallCNN} {
		t.Run(arch.Kind, func(t *testing.T) {
			ctx := context.Background()
			full := baseConfig(t, arch, 3)
			full.Optim.Schedule = optim.Schedule{Kind: optim.Cosine}
			if err := train.Run(ctx, full, nil); err != nil {
				t.Fatal(err)
			}
			part := full
			part.Out = t.TempDir()
			part.Epochs = 1
			if err := train.Run(ctx, part, nil); err != nil {
				t.Fatal(err)
			}
			// Without Resume the folder is refused.
			part.Epochs = 3
			if err := train.Run(ctx, part, nil); !errors.Is(err, train.ErrExists) {
				t.Fatalf("second run without Resume: %v, want ErrExists", err)
			}
			part.Resume = true
			rec := &recorder{}
			if err := train.Run(ctx, part, rec); err != nil {
				t.Fatal(err)
			}
			if s := rec.start[0]; !s.Resumed || s.First != 2 || len(rec.epochs) != 2 {
				t.Errorf("resumed run: start %+v, %d epochs", s, len(rec.epochs))
			}
			checkpointtest.SameCheckpoints(t, part.Out, full.Out, 3)
			fullRows := readCSV(t, filepath.Join(full.Out, checkpoint.CSVName))
			partRows := readCSV(t, filepath.Join(part.Out, checkpoint.CSVName))
			if len(fullRows) != 5 || len(partRows) != 5 {
				t.Fatalf("train.csv rows: %d and %d, want 5", len(fullRows), len(partRows))
			}
			for i := range fullRows {
				// All columns but the seconds agree.
				if !slices.Equal(fullRows[i][:6], partRows[i][:6]) {
					t.Errorf("train.csv row %d: %v vs %v", i, fullRows[i], partRows[i])
				}
			}

			// Resuming with another seed is refused.
			other := part
			other.Seed++
			other.Epochs = 4
			if err := train.Run(ctx, other, nil); !errors.Is(err, train.ErrResumeMismatch) {
				t.Errorf("resume with another seed: %v, want ErrResumeMismatch", err)
			}
		})
	}
}

// TestThreadsSameResults trains the CNN with 1, 2 and 3 threads and expects
// bit-identical checkpoints: a batch is cut into parts of at most 64 images
// whatever the thread count, and the parts' gradients are summed in the
// same order. Batches of 128 from 200 images give parts of 64+64 and 64+8,
// evaluation batches of 200 four parts, so that three workers take part in
// evaluation and two in steps. With PGD adversarial training too, whose
// attack runs on as many workers as there are threads.
func TestThreadsSameResults(t *testing.T) {
	orttest.Require(t)
	for _, adv := range []bool{false, true} {
		t.Run(fmt.Sprint("adversarial=", adv), func(t *testing.T) {
			var first string
			for _, threads := range []int{1, 2, 3} {
				cfg := baseConfig(t, smallCNN, 2)
				cfg.BatchSize, cfg.EvalBatchSize, cfg.Threads = 128, 200, threads
				if adv {
					cfg.Adv = &train.Adversarial{Eps: 0.1, PGDParams: attack.PGDParams{Steps: 3, RandomStart: true}}
				}
				if err := train.Run(context.Background(), cfg, nil); err != nil {
					t.Fatal(err)
				}
				if first == "" {
					first = cfg.Out
					continue
				}
				checkpointtest.SameCheckpoints(t, cfg.Out, first, 2)
			}
		})
	}
}

// TestRunCancel cancels in the middle of epoch 2 and resumes: the epoch is
// repeated from its start and the result equals an uninterrupted run.
func TestRunCancel(t *testing.T) {
	orttest.Require(t)
	full := baseConfig(t, smallMLP, 2)
	if err := train.Run(context.Background(), full, nil); err != nil {
		t.Fatal(err)
	}
	cfg := full
	cfg.Out = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{cancel: func(s train.Step) {
		if s.Epoch == 2 && s.Batch == 3 {
			cancel()
		}
	}}
	if err := train.Run(ctx, cfg, rec); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v, want context.Canceled", err)
	}
	if n, _ := checkpoint.Latest(cfg.Out); n != 1 {
		t.Errorf("after cancelling in epoch 2 the last checkpoint is %d, want 1", n)
	}
	entries, _ := os.ReadDir(cfg.Out)
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".onnx" && filepath.Ext(e.Name()) != ".state" && e.Name() != checkpoint.CSVName {
			t.Errorf("stray file %s", e.Name())
		}
	}
	cfg.Resume = true
	if err := train.Run(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	a, _, _ := checkpoint.Read(checkpoint.Path(full.Out, 2))
	b, _, _ := checkpoint.Read(checkpoint.Path(cfg.Out, 2))
	for i, p := range a.Params {
		if !slices.Equal(p.Data, b.Params[i].Data) {
			t.Errorf("%s differs after cancel and resume", p.Name)
		}
	}
}

func TestRunRejects(t *testing.T) {
	base := baseConfig(t, smallMLP, 1)
	for _, tc := range []struct {
		field string // the field the error names
		mod   func(*train.Config)
	}{
		{"Out", func(c *train.Config) { c.Out = "" }},
		{"Dataset", func(c *train.Config) { c.Train, c.Test, c.Dataset = nil, nil, "" }},
		{"Dataset", func(c *train.Config) { c.Train, c.Test, c.Dataset = nil, nil, "imagenet" }},
		{"Train", func(c *train.Config) { c.Test = nil }},
		{"Arch.Kind", func(c *train.Config) { c.Train, c.Test, c.Dataset, c.Arch = nil, nil, "mnist", model.Arch{Kind: "rnn"} }},
		{"Arch.Channels", func(c *train.Config) {
			c.Train, c.Test, c.Dataset, c.Arch = nil, nil, "mnist", model.Arch{Kind: "cnn", Channels: []int{4, 4, 4, 4, 4}}
		}},
		{"Optim.Name", func(c *train.Config) { c.Optim.Name = "lbfgs" }},
		{"Optim.LR", func(c *train.Config) { c.Optim.LR = -1 }},
		{"Optim.Schedule.Kind", func(c *train.Config) { c.Optim.Schedule.Kind = "linear" }},
		{"Epochs", func(c *train.Config) { c.Epochs = -1 }},
		{"BatchSize", func(c *train.Config) { c.BatchSize = -3 }},
		{"TrainLimit", func(c *train.Config) { c.TrainLimit = -1 }},
		{"Threads", func(c *train.Config) { c.Threads = -1 }},
	} {
		cfg := base
		tc.mod(&cfg)
		err := train.Run(context.Background(), cfg, nil)
		var oe *option.Error
		if !errors.Is(err, train.ErrConfig) || !errors.As(err, &oe) || oe.Field != tc.field {
			t.Errorf("%s: %v, want ErrConfig naming %s", tc.field, err, tc.field)
		}
	}
	// A bad architecture for the images given is found when they are read.
	cfg := base
	cfg.Arch = model.Arch{Kind: "rnn"}
	if err := train.Run(context.Background(), cfg, nil); !errors.Is(err, train.ErrConfig) {
		t.Errorf("bad architecture: %v, want ErrConfig", err)
	}
}

func TestShuffle(t *testing.T) {
	a := train.Shuffle(7, 3, 1000)
	if !slices.Equal(a, train.Shuffle(7, 3, 1000)) {
		t.Error("Shuffle is not a function of (seed, epoch, n)")
	}
	if slices.Equal(a, train.Shuffle(7, 4, 1000)) || slices.Equal(a, train.Shuffle(8, 3, 1000)) {
		t.Error("other epochs or seeds give the same order")
	}
	s := slices.Clone(a)
	slices.Sort(s)
	for i, v := range s {
		if v != i {
			t.Fatalf("not a permutation: %v", a)
		}
	}
	// Golden prefix: the order must not change between releases, or resumed
	// runs and recorded experiments would no longer reproduce.
	if got, want := train.Shuffle(1, 1, 10), []int{6, 0, 3, 1, 7, 5, 4, 9, 2, 8}; !slices.Equal(got, want) {
		t.Errorf("Shuffle(1, 1, 10) = %v, want %v", got, want)
	}
}
