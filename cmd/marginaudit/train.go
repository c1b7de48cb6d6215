package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/trainer/dataset"
	"github.com/marginaudit/marginaudit/trainer/model"
	"github.com/marginaudit/marginaudit/trainer/optim"
	"github.com/marginaudit/marginaudit/trainer/train"
)

func trainCommand() *cli.Command {
	return &cli.Command{
		Name:      "train",
		Usage:     "train a classifier, writing one ONNX checkpoint per epoch",
		UsageText: progName + " train --data mnist|fashion-mnist|cifar10 --arch mlp|cnn --out DIR [--adv pgd] [flags]",
		Description: wrapText("Trains in onnxruntime (forward and backward through onnxgrad) with the weights " +
			"in Go, and writes DIR/epoch-000.onnx (the initialisation) to DIR/epoch-NNN.onnx, each a plain " +
			"inference graph whose metadata records the dataset, input shape and range, architecture, seed, " +
			"optimizer and accuracies, plus DIR/train.csv. Every file is written atomically; --resume continues " +
			"from the last complete epoch and reaches the same weights as an uninterrupted run."),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "data set: mnist, fashion-mnist or cifar10"},
			&cli.StringFlag{Name: "data-dir", Usage: "read the data set from `DIR` instead of its default location"},
			&cli.StringFlag{Name: "arch", Usage: "architecture: mlp or cnn"},
			&cli.StringFlag{Name: "hidden", Usage: "dense hidden sizes, e.g. `256,256` (default: 256,256 for mlp, 128 for cnn)"},
			&cli.StringFlag{Name: "channels", Usage: "cnn conv channels, e.g. `32,64` (default 32,64)"},
			&cli.IntFlag{Name: "epochs", Usage: "epochs to train", Value: 5},
			&cli.IntFlag{Name: "batch", Usage: "mini-batch size", Value: train.DefaultBatchSize},
			&cli.StringFlag{Name: "opt", Usage: "optimizer: adam or sgd", Value: optim.Adam},
			&cli.Float64Flag{Name: "lr", Usage: "learning rate", DefaultText: fmt.Sprintf("%g for adam, %g for sgd",
				optim.Config{Name: optim.Adam}.WithDefaults().LR, optim.Config{Name: optim.SGD}.WithDefaults().LR)},
			&cli.Float64Flag{Name: "momentum", Usage: "sgd momentum (with --opt sgd)"},
			&cli.Float64Flag{Name: "weight-decay", Usage: "L2 weight decay"},
			&cli.StringFlag{Name: "schedule", Usage: "learning-rate schedule: constant, step or cosine", Value: optim.Constant},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of the initial weights and the shuffling", Value: 1},
			&cli.IntFlag{Name: "train-limit", Usage: "train on the first `N` training images only"},
			&cli.IntFlag{Name: "test-limit", Usage: "evaluate on the first `N` test images only"},
			&cli.StringFlag{Name: "out", Usage: "write the checkpoints to `DIR`"},
			&cli.BoolFlag{Name: "resume", Usage: "continue from the last complete checkpoint in DIR"},
			&cli.StringFlag{Name: "adv", Usage: "adversarial training: pgd replaces a share of every batch by L∞ PGD examples (default: none)"},
			&cli.Float64Flag{Name: "adv-eps", Usage: "PGD radius ε", DefaultText: advDefaults(func(a *train.Adversarial) string { return fmt.Sprintf("%.4g", a.Eps) })},
			&cli.Float64Flag{Name: "adv-step", Usage: "PGD step size in pixel units", DefaultText: advDefaults(func(a *train.Adversarial) string { return fmt.Sprintf("%.4g", a.Step) })},
			&cli.IntFlag{Name: "adv-steps", Usage: "PGD steps", DefaultText: advDefaults(func(a *train.Adversarial) string { return fmt.Sprint(a.Steps) })},
			&cli.Float64Flag{Name: "adv-frac", Usage: "share of each batch replaced by PGD examples", Value: train.DefaultAdvFrac},
			waitFlag(),
		},
		Action: runTrain,
	}
}

func runTrain(c *cli.Context) error {
	if c.Args().Present() {
		return usagef("train", "unexpected argument %q", c.Args().First())
	}
	for _, f := range []string{"data", "arch", "out"} {
		if c.String(f) == "" {
			return usagef("train", "--%s is required", f)
		}
	}
	name, err := checkDataName("train", c.String("data"))
	if err != nil {
		return err
	}
	arch := model.Arch{Kind: c.String("arch")}
	if arch.Hidden, err = parseIntList("train", "hidden", c.String("hidden")); err != nil {
		return err
	}
	if arch.Channels, err = parseIntList("train", "channels", c.String("channels")); err != nil {
		return err
	}
	if err := refuseZero(c, "train", "batch", "lr", "adv-frac"); err != nil {
		return err
	}
	if !strings.EqualFold(c.String("opt"), optim.SGD) {
		if err := needs(c, "train", "--opt sgd", "momentum"); err != nil {
			return err
		}
	}
	cfg := train.Config{
		Dataset: name, DataDir: c.String("data-dir"),
		TrainLimit: c.Int("train-limit"), TestLimit: c.Int("test-limit"),
		Arch: arch, Epochs: c.Int("epochs"), BatchSize: c.Int("batch"), Seed: c.Uint64("seed"),
		Optim: optim.Config{Name: c.String("opt"), LR: c.Float64("lr"), Momentum: c.Float64("momentum"),
			WeightDecay: c.Float64("weight-decay"), Schedule: optim.Schedule{Kind: c.String("schedule")}},
		Out: c.String("out"), Resume: c.Bool("resume"), Threads: c.Int("threads"),
	}
	if cfg.Adv, err = adversarialFlags(c, name); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return trainFlags.usage("train", err)
	}
	lock, err := lockOutput(c, "train", cfg.Out)
	if err != nil {
		return err
	}
	defer lock.Close()
	p := &trainProgress{bar: newProgressBar(c.App.ErrWriter, c.Bool("quiet"))}
	if err := train.Run(c.Context, cfg, p); err != nil {
		return err
	}
	if p.first > p.epochs { // a resumed run that had finished
		fmt.Fprintf(c.App.Writer, "nothing to train: %s holds epochs 0–%d\n", filepath.Join(cfg.Out, "epoch-*.onnx"), p.epochs)
		return nil
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: epochs %d–%d, test accuracy %.4f after epoch %d\n",
		filepath.Join(cfg.Out, "epoch-*.onnx"), p.first-1, p.lastEpoch, p.testAcc, p.lastEpoch)
	return nil
}

// trainFlags names the flags of train that set each field of train.Config.
var trainFlags = flagNames{
	"Dataset": "data", "Out": "out", "Epochs": "epochs", "BatchSize": "batch", "TrainLimit": "train-limit",
	"TestLimit": "test-limit", "Threads": "threads", "Arch.Kind": "arch", "Arch.Hidden": "hidden",
	"Arch.Channels": "channels", "Optim.Name": "opt", "Optim.LR": "lr", "Optim.Momentum": "momentum",
	"Optim.WeightDecay": "weight-decay", "Optim.Schedule.Kind": "schedule", "Adv.Eps": "adv-eps",
	"Adv.step_size": "adv-step", "Adv.steps": "adv-steps", "Adv.Frac": "adv-frac",
}

// adversarialFlags reads --adv and its parameters over the defaults of
// the data set name; train.Config.Validate checks them.
func adversarialFlags(c *cli.Context, name string) (*train.Adversarial, error) {
	switch c.String("adv") {
	case "", "none":
		return nil, needs(c, "train", "--adv pgd", "adv-eps", "adv-step", "adv-steps", "adv-frac")
	case "pgd":
	default:
		return nil, usagef("train", "--adv %q: want pgd or none", c.String("adv"))
	}
	adv, err := train.DefaultAdversarial(name)
	if err != nil {
		return nil, err
	}
	if c.IsSet("adv-eps") {
		adv.Eps = c.Float64("adv-eps")
	}
	if c.IsSet("adv-step") {
		adv.Step = c.Float64("adv-step")
	}
	if c.IsSet("adv-steps") {
		adv.Steps = c.Int("adv-steps")
	}
	adv.Frac = c.Float64("adv-frac")
	return adv, nil
}

// advDefaults lists a default of adversarial training per data set, as
// "mnist 0.3, fashion-mnist 0.1, cifar10 0.03137".
func advDefaults(value func(*train.Adversarial) string) string {
	var s []string
	for _, name := range dataset.Names() {
		if a, err := train.DefaultAdversarial(name); err == nil {
			s = append(s, name+" "+value(a))
		}
	}
	return strings.Join(s, ", ")
}

// trainProgress renders train.Run's reports.
type trainProgress struct {
	bar       *progressBar
	first     int // the first epoch to train
	epochs    int // the last epoch of the run
	lastEpoch int
	testAcc   float64
}

func (p *trainProgress) Start(s train.Start) {
	p.first, p.epochs = s.First, s.Epochs
	if s.First > s.Epochs {
		p.bar.println(false, "every epoch up to %d is already trained", s.Epochs)
		return
	}
	how := "training"
	if s.Resumed {
		how = fmt.Sprintf("resuming after epoch %d,", s.First-1)
	}
	p.bar.println(false, "%s %s (%d weights) on %d images, epochs %d–%d, %d batches each; test on %d images",
		how, s.Arch, s.Params, s.TrainImages, s.First, s.Epochs, s.Batches, s.TestImages)
}

func (p *trainProgress) Step(s train.Step) {
	if s.Batch == 1 {
		p.bar.begin(fmt.Sprintf("epoch %d", s.Epoch), s.Batches, "batches")
	}
	p.bar.add(1, fmt.Sprintf("loss %.4f  acc %.4f", s.Loss, s.Accuracy))
}

func (p *trainProgress) Epoch(e train.Epoch) {
	m := e.Metadata
	p.lastEpoch, p.testAcc = m.Epoch, m.TestAccuracy
	rate := ""
	if e.Train > 0 {
		rate = fmt.Sprintf("  %.0f images/s", float64(m.TrainImages)/e.Train.Seconds())
	}
	p.bar.println(false, "epoch %3d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  %s%s  → %s",
		m.Epoch, m.TrainLoss, m.TrainAccuracy, m.TestLoss, m.TestAccuracy, e.Train.Round(1e7), rate, filepath.Base(e.Path))
}

// parseIntList parses "a,b,c" ("" gives nil, the default).
func parseIntList(cmd, flag, s string) ([]int, error) {
	return parseInts(cmd, flag, s, 1)
}

// parseInts parses "a,b,c" of integers ≥ least ("" gives nil).
func parseInts(cmd, flag, s string, least int) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	want := "positive integers"
	if least != 1 {
		want = fmt.Sprintf("integers ≥ %d", least)
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < least {
			return nil, usagef(cmd, "--%s %q: want %s separated by commas", flag, s, want)
		}
		out = append(out, v)
	}
	return out, nil
}
