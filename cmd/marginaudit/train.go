package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

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
			&cli.IntFlag{Name: "batch", Usage: "mini-batch size", Value: 128},
			&cli.StringFlag{Name: "opt", Usage: "optimizer: adam or sgd", Value: "adam"},
			&cli.Float64Flag{Name: "lr", Usage: "learning rate (default 0.001 for adam, 0.01 for sgd)"},
			&cli.Float64Flag{Name: "momentum", Usage: "sgd momentum"},
			&cli.Float64Flag{Name: "weight-decay", Usage: "L2 weight decay"},
			&cli.StringFlag{Name: "schedule", Usage: "learning-rate schedule: constant, step or cosine", Value: "constant"},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of the initial weights and the shuffling", Value: 1},
			&cli.IntFlag{Name: "train-limit", Usage: "train on the first `N` training images only"},
			&cli.IntFlag{Name: "test-limit", Usage: "evaluate on the first `N` test images only"},
			&cli.StringFlag{Name: "out", Usage: "write the checkpoints to `DIR`"},
			&cli.BoolFlag{Name: "resume", Usage: "continue from the last complete checkpoint in DIR"},
			&cli.StringFlag{Name: "adv", Usage: "adversarial training: pgd replaces a share of every batch by L∞ PGD examples (default: none)"},
			&cli.Float64Flag{Name: "adv-eps", Usage: "PGD radius ε (default per data set: mnist 0.3, fashion-mnist 0.1, cifar10 8/255)"},
			&cli.Float64Flag{Name: "adv-step", Usage: "PGD step size (default: mnist and fashion-mnist 0.01, cifar10 2/255)"},
			&cli.IntFlag{Name: "adv-steps", Usage: "PGD steps (default: mnist 40, fashion-mnist 20, cifar10 10)"},
			&cli.Float64Flag{Name: "adv-frac", Usage: "share of each batch replaced by PGD examples", Value: 0.5},
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
	arch := model.Arch{Kind: c.String("arch")}
	var err error
	if arch.Hidden, err = parseIntList("train", "hidden", c.String("hidden")); err != nil {
		return err
	}
	if arch.Channels, err = parseIntList("train", "channels", c.String("channels")); err != nil {
		return err
	}
	cfg := train.Config{
		Dataset: c.String("data"), DataDir: c.String("data-dir"),
		TrainLimit: c.Int("train-limit"), TestLimit: c.Int("test-limit"),
		Arch: arch, Epochs: c.Int("epochs"), BatchSize: c.Int("batch"), Seed: c.Uint64("seed"),
		Optim: optim.Config{Name: c.String("opt"), LR: c.Float64("lr"), Momentum: c.Float64("momentum"),
			WeightDecay: c.Float64("weight-decay"), Schedule: optim.Schedule{Kind: c.String("schedule")}},
		Out: c.String("out"), Resume: c.Bool("resume"), Threads: c.Int("threads"),
	}
	if cfg.Adv, err = adversarialFlags(c); err != nil {
		return err
	}
	p := &trainProgress{bar: newProgressBar(c.App.ErrWriter, c.Bool("quiet"))}
	if err := train.Run(c.Context, cfg, p); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: epochs %d–%d, test accuracy %.4f after epoch %d\n",
		filepath.Join(cfg.Out, "epoch-*.onnx"), p.first-1, p.lastEpoch, p.testAcc, p.lastEpoch)
	return nil
}

// adversarialFlags reads --adv and its parameters over the data set's
// defaults.
func adversarialFlags(c *cli.Context) (*train.Adversarial, error) {
	switch c.String("adv") {
	case "", "none":
		for _, f := range []string{"adv-eps", "adv-step", "adv-steps"} {
			if c.IsSet(f) {
				return nil, usagef("train", "--%s needs --adv pgd", f)
			}
		}
		return nil, nil
	case "pgd":
	default:
		return nil, usagef("train", "--adv %q: want pgd or none", c.String("adv"))
	}
	adv, err := train.DefaultAdversarial(c.String("data"))
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
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
	if !(adv.Eps > 0) || !(adv.Step > 0) || adv.Steps <= 0 || !(adv.Frac > 0 && adv.Frac <= 1) {
		return nil, usagef("train", "adversarial settings ε=%g, step %g, %d steps, frac %g: want positive values and 0 < frac ≤ 1", adv.Eps, adv.Step, adv.Steps, adv.Frac)
	}
	return adv, nil
}

// trainProgress renders train.Run's reports.
type trainProgress struct {
	bar       *progressBar
	first     int
	lastEpoch int
	testAcc   float64
}

func (p *trainProgress) Start(s train.Start) {
	p.first = s.First
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
