package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/auditor/report"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "turn audits into figures, index.html and the study's observations",
		UsageText: progName + " report [LABEL=]AUDIT_DIR... --out DIR [--epochs 0,1,5] [--standard LABEL] [--refined] [--models] [--baseline LABEL]",
		Description: wrapText("Reads one or more audit directories (written by 'marginaudit audit'), labelled " +
			"e.g. standard=DIR and adversarial=DIR, and writes PNG and SVG figures, a self-contained " +
			"DIR/index.html and DIR/summary.json stating the study's three observations as statistics: " +
			"the trend of the mean margin after epoch 1 (Spearman's rank correlation), the adversarial/standard " +
			"margin ratio, and the incorrect/correct margin ratio with a Mann–Whitney U test; plus the margin as " +
			"a misclassification detector (AUROC). The observations are also printed.\n\n" +
			"Model sets: two audits or more of one model each, whose checkpoints have no epoch (or any audits of one " +
			"checkpoint each, with --models), are compared as models named by their labels, e.g. a=DIR b=DIR c=DIR: " +
			"overlaid margin distributions, the fraction of images whose margin exceeds ε as ε grows, mean ± SE per " +
			"model, and each model paired with the first (or --baseline) on the same images as 'marginaudit diff' " +
			"does (mean change with its interval, Wilcoxon, share dropped, accuracy and robust accuracy with " +
			"McNemar). A pair audited on other images or settings is reported as not compared, with the reason."),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "write the report to `DIR`"},
			&cli.StringFlag{Name: "epochs", Usage: "epochs of the margin histograms, e.g. `0,1,5` (0: the initialisation; for separate models, their places from 0; default: first, second, middle, last; a model set draws its one model each)"},
			&cli.StringFlag{Name: "standard", Usage: "label of the standard-training audit, the denominator of the margin ratio", Value: "standard"},
			&cli.BoolFlag{Name: "refined", Usage: "use the refined margins (audits made with --refine)"},
			&cli.BoolFlag{Name: "models", Usage: "compare the audits as a model set even if their checkpoints have epochs (one checkpoint per audit)"},
			&cli.StringFlag{Name: "baseline", Usage: "in a model set, pair every model with the one labelled `LABEL` (default: the first)"},
			waitFlag(),
		},
		Action: runReport,
	}
}

func runReport(c *cli.Context) error {
	if !c.Args().Present() {
		return usagef("report", "no audit directories given")
	}
	if c.String("out") == "" {
		return usagef("report", "--out is required")
	}
	var audits []report.Audit
	for _, a := range c.Args().Slice() {
		label, dir, ok := strings.Cut(a, "=")
		if !ok {
			label, dir = "", a
		}
		audits = append(audits, report.Audit{Label: label, Dir: dir})
	}
	epochs, err := parseInts("report", "epochs", c.String("epochs"), 0) // 0 is the initialisation
	if err != nil {
		return err
	}
	lock, err := lockOutput(c, "report", c.String("out"))
	if err != nil {
		return err
	}
	defer lock.Close()
	return writeReport(c, audits, c.String("out"), report.Options{Epochs: epochs, Standard: c.String("standard"), Refined: c.Bool("refined"),
		Models: c.Bool("models"), Baseline: c.String("baseline")})
}

// writeReport writes the report to dir and prints its observations.
func writeReport(c *cli.Context, audits []report.Audit, dir string, opt report.Options) error {
	obs, err := report.Write(c.Context, audits, dir, opt)
	if err != nil {
		return err // the report package's errors say "report: …"
	}
	fmt.Fprint(c.App.Writer, obs.Text())
	fmt.Fprintf(c.App.Writer, "wrote %s\n", filepath.Join(dir, "index.html"))
	return nil
}
