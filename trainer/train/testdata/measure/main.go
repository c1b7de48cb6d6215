// Command measure trains one model with train.Run and prints one line per
// epoch: test accuracy and seconds of training (wall clock, and the
// process's CPU time over the same batches, which a loaded machine disturbs
// less), and with -robust the robust accuracy under L∞ PGD. It is how the
// accuracies and epoch times in the trainer's issue notes and in
// bench/train/README.md were measured; it is not a test.
//
//	go run ./trainer/train/testdata/measure -data mnist -arch mlp -epochs 5
//	go run ./trainer/train/testdata/measure -data fashion-mnist -arch cnn -epochs 1
//	go run ./trainer/train/testdata/measure -data fashion-mnist -arch cnn -epochs 3 -adv -robust 1000
//	go run ./trainer/train/testdata/measure -data fashion-mnist -arch cnn -epochs 2 -limit 5120 -test-limit 1000 -threads 1
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"time"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/trainer/checkpoint"
	"github.com/marginaudit/marginaudit/trainer/dataset"
	"github.com/marginaudit/marginaudit/trainer/model"
	"github.com/marginaudit/marginaudit/trainer/optim"
	"github.com/marginaudit/marginaudit/trainer/train"
)

type printer struct {
	last    time.Time
	robust  *dataset.Dataset // nil: no robust accuracy
	pgd     attack.PGDOptions
	threads int
	err     error
	// cpu0 is the process's CPU time when the epoch's training began (at
	// the report of the previous epoch), trainCPU that of its batches.
	cpu0, trainCPU time.Duration
}

func (p *printer) Start(s train.Start) {
	fmt.Printf("%s: %d weights, %d training / %d test images, %d batches per epoch, onnxruntime %s, %d CPUs\n",
		s.Arch, s.Params, s.TrainImages, s.TestImages, s.Batches, ort.Version(), runtime.NumCPU())
}

func (p *printer) Step(s train.Step) {
	if s.Batch == s.Batches {
		if t, ok := cpuTime(); ok {
			p.trainCPU = t - p.cpu0
		}
	}
	if time.Since(p.last) > 10*time.Second {
		p.last = time.Now()
		adv := ""
		if s.AdvAccuracy > 0 || s.AdvLoss > 0 {
			adv = fmt.Sprintf(" (adversarial: loss %.4f acc %.4f)", s.AdvLoss, s.AdvAccuracy)
		}
		fmt.Fprintf(os.Stderr, "  epoch %d batch %d/%d loss %.4f acc %.4f%s %.0f img/s\n", s.Epoch, s.Batch, s.Batches, s.Loss, s.Accuracy, adv, float64(s.Images)/s.Elapsed.Seconds())
	}
}

func (p *printer) Epoch(e train.Epoch) {
	md := e.Metadata
	line := fmt.Sprintf("epoch %d: train loss %.4f acc %.4f", md.Epoch, md.TrainLoss, md.TrainAccuracy)
	if md.Adversarial.Method != "" && md.Epoch > 0 {
		line += fmt.Sprintf(" (adversarial: loss %.4f acc %.4f)", md.AdvLoss, md.AdvAccuracy)
	}
	line += fmt.Sprintf(" | test loss %.4f acc %.4f | train %.2f s", md.TestLoss, md.TestAccuracy, e.Train.Seconds())
	if e.Adversarial > 0 {
		line += fmt.Sprintf(" (PGD %.2f s)", e.Adversarial.Seconds())
	}
	if md.Epoch > 0 && p.trainCPU > 0 {
		line += fmt.Sprintf(" (CPU %.2f s)", p.trainCPU.Seconds())
	}
	line += fmt.Sprintf(", eval %.2f s", e.Eval.Seconds())
	if p.robust != nil && md.Epoch > 0 {
		start := time.Now()
		r, err := p.robustness(e.Path)
		if err != nil {
			p.err = err
		} else {
			line += fmt.Sprintf(" | PGD L∞ ε=%g %d steps of %g on %d test images: clean %.4f robust %.4f (%.1f s)",
				p.pgd.Eps, p.pgd.Steps, p.pgd.Step, r.N, r.CleanAccuracy(), r.RobustAccuracy(), time.Since(start).Seconds())
		}
	}
	fmt.Println(line)
	p.cpu0, _ = cpuTime()
}

// robustness measures the robust accuracy of the checkpoint at path.
func (p *printer) robustness(path string) (attack.Robustness, error) {
	m, _, err := checkpoint.Read(path)
	if err != nil {
		return attack.Robustness{}, err
	}
	c, err := attack.NewClassifier(m.Graph(model.AsInitializers), attack.Options{Name: path, Threads: p.threads})
	if err != nil {
		return attack.Robustness{}, err
	}
	defer c.Close()
	return attack.RobustAccuracy(context.Background(), c, p.robust.Images, p.robust.Labels, p.pgd)
}

func main() {
	data := flag.String("data", "mnist", "dataset")
	arch := flag.String("arch", "mlp", "mlp or cnn")
	epochs := flag.Int("epochs", 5, "epochs")
	batch := flag.Int("batch", 128, "batch size")
	lr := flag.Float64("lr", 1e-3, "Adam learning rate")
	threads := flag.Int("threads", 0, "onnxruntime threads (0: one per core)")
	seed := flag.Uint64("seed", 1, "seed")
	limit := flag.Int("limit", 0, "training images (0: all)")
	testLimit := flag.Int("test-limit", 0, "test images (0: all)")
	out := flag.String("out", "", "output folder (default: a temporary one, removed)")
	adv := flag.Bool("adv", false, "PGD adversarial training, with the dataset's defaults (train.DefaultAdversarial)")
	advEps := flag.Float64("adv-eps", 0, "adversarial training ε (0: default)")
	advStep := flag.Float64("adv-step", 0, "adversarial training step (0: default)")
	advSteps := flag.Int("adv-steps", 0, "adversarial training steps (0: default)")
	advFrac := flag.Float64("adv-frac", 0, "share of each batch replaced (0: default)")
	robust := flag.Int("robust", 0, "after every epoch, robust accuracy on this many test images (0: none)")
	robustEps := flag.Float64("robust-eps", 0.1, "robust accuracy: L∞ ε")
	robustSteps := flag.Int("robust-steps", 20, "robust accuracy: PGD steps")
	robustStep := flag.Float64("robust-step", 0, "robust accuracy: PGD step (0: 2.5·ε/steps)")
	flag.Parse()
	dir := *out
	if dir == "" {
		d, err := os.MkdirTemp("", "measure")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	cfg := train.Config{
		Dataset: *data, Arch: model.Arch{Kind: *arch}, Epochs: *epochs, BatchSize: *batch, Seed: *seed,
		Optim: optim.Config{Name: optim.Adam, LR: *lr}, Out: dir, Threads: *threads, TrainLimit: *limit, TestLimit: *testLimit,
	}
	if *adv {
		a, err := train.DefaultAdversarial(*data)
		if err != nil {
			fail(err)
		}
		for _, o := range []struct {
			dst *float64
			v   float64
		}{{&a.Eps, *advEps}, {&a.Step, *advStep}, {&a.Frac, *advFrac}} {
			if o.v != 0 {
				*o.dst = o.v
			}
		}
		if *advSteps != 0 {
			a.Steps = *advSteps
		}
		cfg.Adv = a
		fmt.Printf("adversarial training: %+v\n", *a)
	}
	p := &printer{last: time.Now(), threads: *threads}
	if *robust > 0 {
		test, err := dataset.Load(*data, "test", "")
		if err != nil {
			fail(err)
		}
		step := *robustStep
		if step == 0 {
			step = 2.5 * *robustEps / float64(*robustSteps)
		}
		p.robust = test.Head(*robust)
		p.pgd = attack.PGDOptions{Norm: attack.LInf, Eps: *robustEps, PGDParams: attack.PGDParams{Step: step, Steps: *robustSteps, RandomStart: true}, Seed: 1}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := train.Run(ctx, cfg, p); err != nil {
		fail(err)
	}
	if p.err != nil {
		fail(p.err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "measure:", err)
	os.Exit(1)
}
