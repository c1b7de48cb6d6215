// Command measure trains one model with train.Run and prints one line per
// epoch: test accuracy and seconds of training. It is how the accuracies and
// epoch times in the trainer's issue notes were measured; it is not a test.
//
//	go run ./trainer/train/testdata/measure -data mnist -arch mlp -epochs 5
//	go run ./trainer/train/testdata/measure -data fashion-mnist -arch cnn -epochs 1
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"time"

	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/trainer/model"
	"github.com/marginaudit/marginaudit/trainer/optim"
	"github.com/marginaudit/marginaudit/trainer/train"
)

type printer struct{ last time.Time }

func (p *printer) Start(s train.Start) {
	fmt.Printf("%s: %d weights, %d training / %d test images, %d batches per epoch, onnxruntime %s, %d CPUs\n",
		s.Arch, s.Params, s.TrainImages, s.TestImages, s.Batches, ort.Version(), runtime.NumCPU())
}

func (p *printer) Step(s train.Step) {
	if time.Since(p.last) > 10*time.Second {
		p.last = time.Now()
		fmt.Fprintf(os.Stderr, "  epoch %d batch %d/%d loss %.4f acc %.4f %.0f img/s\n", s.Epoch, s.Batch, s.Batches, s.Loss, s.Accuracy, float64(s.Images)/s.Elapsed.Seconds())
	}
}

func (p *printer) Epoch(e train.Epoch) {
	md := e.Metadata
	fmt.Printf("epoch %d: train loss %.4f acc %.4f | test loss %.4f acc %.4f | train %.1f s, eval %.1f s\n",
		md.Epoch, md.TrainLoss, md.TrainAccuracy, md.TestLoss, md.TestAccuracy, e.Train.Seconds(), e.Eval.Seconds())
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
	out := flag.String("out", "", "output folder (default: a temporary one, removed)")
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := train.Run(ctx, train.Config{
		Dataset: *data, Arch: model.Arch{Kind: *arch}, Epochs: *epochs, BatchSize: *batch, Seed: *seed,
		Optim: optim.Config{Name: optim.Adam, LR: *lr}, Out: dir, Threads: *threads, TrainLimit: *limit,
	}, &printer{last: time.Now()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "measure:", err)
		os.Exit(1)
	}
}
