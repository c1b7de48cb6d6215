package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/report"
	"github.com/marginaudit/marginaudit/trainer/model"
	"github.com/marginaudit/marginaudit/trainer/optim"
	"github.com/marginaudit/marginaudit/trainer/train"
)

func studyCommand() *cli.Command {
	return &cli.Command{
		Name:      "study",
		Usage:     "rerun the study: train standard and adversarial models, audit every epoch, report",
		UsageText: progName + " study --data mnist|fashion-mnist|cifar10 --out DIR [--arch mlp|cnn] [--epochs E] [flags]",
		Description: wrapText("Trains a standard and a PGD adversarially trained model (DIR/standard/ckpts, " +
			"DIR/adversarial/ckpts), audits every checkpoint on train and test images with DeepFool L2 and L∞ " +
			"and PGD at the training radius (DIR/*/audit; --refine adds FMN's refined margins, --certify certified lower bounds, --save-adversarial the perturbations for the report's gallery), and writes the report (DIR/report/index.html). " +
			"Every stage resumes: rerun the same command after an interruption. Defaults follow the study: " +
			"a dense network on MNIST, a CNN on Fashion-MNIST and CIFAR-10, PGD radius 0.3, 0.1 and 8/255."),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "data set: mnist, fashion-mnist or cifar10"},
			&cli.StringFlag{Name: "data-dir", Usage: "read the data set from `DIR`"},
			&cli.StringFlag{Name: "out", Usage: "write everything under `DIR`"},
			&cli.StringFlag{Name: "arch", Usage: "architecture: mlp or cnn (default: mlp for mnist, cnn otherwise)"},
			&cli.StringFlag{Name: "hidden", Usage: "dense hidden sizes, e.g. `256,256`"},
			&cli.StringFlag{Name: "channels", Usage: "cnn conv channels, e.g. `32,64`"},
			&cli.IntFlag{Name: "epochs", Usage: "epochs to train", Value: 5},
			&cli.IntFlag{Name: "batch", Usage: "mini-batch size", Value: train.DefaultBatchSize},
			&cli.Float64Flag{Name: "lr", Usage: "Adam learning rate", Value: optim.Config{Name: optim.Adam}.WithDefaults().LR},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of training, image subsets and attacks", Value: 1},
			&cli.IntFlag{Name: "train-limit", Usage: "train on the first `N` training images only"},
			&cli.IntFlag{Name: "test-limit", Usage: "evaluate training on the first `N` test images only"},
			&cli.IntFlag{Name: "n", Usage: "images audited per split (a seeded random subset)", Value: 500},
			&cli.IntFlag{Name: "adv-steps", Usage: "PGD steps of adversarial training (default per data set)"},
			&cli.BoolFlag{Name: "no-adv", Usage: "skip adversarial training"},
			refineFlag(), refineStepsFlag(), certifyFlag(), certifyStepsFlag(), saveAdversarialFlag(),
			waitFlag(),
		},
		Action: runStudy,
	}
}

// studyFlags names the flags of study that set the training and audit
// options.
var studyFlags = flagNames{
	"Dataset": "data", "Arch.Kind": "arch", "Arch.Hidden": "hidden", "Arch.Channels": "channels",
	"Epochs": "epochs", "BatchSize": "batch", "Optim.LR": "lr", "TrainLimit": "train-limit", "TestLimit": "test-limit",
	"Adv.steps": "adv-steps", "n": "n", "threads": "threads", "Threads": "threads", "fmn_steps": "refine-steps",
	"certify_steps": "certify-steps",
}

func runStudy(c *cli.Context) error {
	if c.Args().Present() {
		return usagef("study", "unexpected argument %q", c.Args().First())
	}
	for _, f := range []string{"data", "out"} {
		if c.String(f) == "" {
			return usagef("study", "--%s is required", f)
		}
	}
	name, err := checkDataName("study", c.String("data"))
	if err != nil {
		return err
	}
	arch := model.Arch{Kind: c.String("arch")}
	if arch.Kind == "" {
		arch.Kind = "cnn"
		if name == "mnist" {
			arch.Kind = "mlp"
		}
	}
	if arch.Hidden, err = parseIntList("study", "hidden", c.String("hidden")); err != nil {
		return err
	}
	if arch.Channels, err = parseIntList("study", "channels", c.String("channels")); err != nil {
		return err
	}
	if err := refuseZero(c, "study", "batch", "lr"); err != nil {
		return err
	}
	if c.Bool("no-adv") {
		if err := needs(c, "study", "adversarial training (without --no-adv)", "adv-steps"); err != nil {
			return err
		}
	}
	adv, err := train.DefaultAdversarial(name)
	if err != nil {
		return err
	}
	if c.IsSet("adv-steps") {
		adv.Steps = c.Int("adv-steps")
	}
	out := c.String("out")
	base := train.Config{Dataset: name, DataDir: c.String("data-dir"), TrainLimit: c.Int("train-limit"),
		TestLimit: c.Int("test-limit"), Arch: arch, Epochs: c.Int("epochs"), BatchSize: c.Int("batch"),
		Seed: c.Uint64("seed"), Optim: optim.Config{Name: optim.Adam, LR: c.Float64("lr")}, Resume: true,
		Threads: c.Int("threads")}
	variants := []struct {
		label string
		adv   *train.Adversarial
	}{{"standard", nil}, {"adversarial", adv}}
	if c.Bool("no-adv") {
		variants = variants[:1]
	}
	for _, v := range variants {
		cfg := base
		cfg.Adv, cfg.Out = v.adv, filepath.Join(out, v.label, "ckpts")
		if err := cfg.Validate(); err != nil {
			return studyFlags.usage("study", err)
		}
	}
	settings := auditor.Settings{Data: name, Splits: []auditor.Split{auditor.Train, auditor.Test}, N: c.Int("n"),
		Sample: auditor.SampleRandom, Seed: int64(c.Uint64("seed")), Norms: []auditor.Norm{auditor.L2, auditor.LInf},
		DeepFoolParams: attack.DefaultDeepFoolParams(),
		PGD:            auditor.PGDSettings{Norms: []auditor.Norm{auditor.LInf}, Eps: []float64{adv.Eps}, PGDParams: attack.DefaultPGDParams()}}
	if settings.RefineParams, err = refineParams(c, "study"); err != nil {
		return err
	}
	if settings.CertifySettings, err = certifySettings(c, "study"); err != nil {
		return err
	}
	if err := (&auditor.Config{Settings: settings, Threads: c.Int("threads")}).Validate(); err != nil {
		return studyFlags.usage("study", err)
	}
	// The stages below write under out through the libraries, which take
	// no lock of their own: this one covers them all.
	lock, err := lockOutput(c, "study", out)
	if err != nil {
		return err
	}
	defer lock.Close()
	bar := newProgressBar(c.App.ErrWriter, c.Bool("quiet"))
	data, err := loadDataset(name, c.String("data-dir"), &settings, bar)
	if err != nil {
		return err
	}
	var audits []report.Audit
	var failures []error
	for _, v := range variants {
		cfg := base
		cfg.Adv, cfg.Out = v.adv, filepath.Join(out, v.label, "ckpts")
		bar.println(false, "== %s training → %s", v.label, cfg.Out)
		if err := train.Run(c.Context, cfg, &trainProgress{bar: bar}); err != nil {
			return fmt.Errorf("study: %s training: %w", v.label, err)
		}
		auditDir := filepath.Join(out, v.label, "audit")
		bar.println(false, "== %s audit → %s", v.label, auditDir)
		acfg := auditor.Config{Checkpoints: []string{cfg.Out}, Out: auditDir, Settings: settings, Data: data, Threads: c.Int("threads"),
			SaveAdversarial: c.Bool("save-adversarial")}
		if _, err := runAuditor(c, acfg, &auditProgress{bar: bar}); err != nil {
			if c.Context.Err() != nil {
				return err
			}
			failures = append(failures, fmt.Errorf("study: %s audit: %w", v.label, err))
		}
		audits = append(audits, report.Audit{Label: v.label, Dir: auditDir})
	}
	if len(failures) > 0 {
		return errors.Join(failures...)
	}
	return writeReport(c, audits, filepath.Join(out, "report"), report.Options{Standard: "standard", Refined: settings.Refine, DataDir: c.String("data-dir")})
}
