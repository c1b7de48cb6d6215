package train_test

import (
	"context"
	"fmt"
	"log"

	"github.com/marginaudit/marginaudit/trainer/model"
	"github.com/marginaudit/marginaudit/trainer/optim"
	"github.com/marginaudit/marginaudit/trainer/train"
)

// lines is a Progress that prints one line per checkpoint.
type lines struct{}

func (lines) Start(s train.Start) { fmt.Printf("%s, %d weights\n", s.Arch, s.Params) }
func (lines) Step(train.Step)     {}
func (lines) Epoch(e train.Epoch) {
	fmt.Printf("epoch %d: test accuracy %.4f\n", e.Metadata.Epoch, e.Metadata.TestAccuracy)
}

// Train the study's MNIST network for five epochs, writing
// ckpts/epoch-000.onnx … epoch-005.onnx and ckpts/train.csv.
func ExampleRun() {
	err := train.Run(context.Background(), train.Config{
		Dataset:   "mnist",
		Arch:      model.Arch{Kind: model.MLP, Hidden: []int{256, 256}},
		Epochs:    5,
		BatchSize: 128,
		Seed:      1,
		Optim:     optim.Config{Name: optim.Adam, LR: 1e-3},
		Out:       "ckpts",
	}, lines{})
	if err != nil {
		log.Fatal(err)
	}
}
