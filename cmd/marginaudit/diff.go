package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/auditor/compare"
	"github.com/marginaudit/marginaudit/internal/atomicfile"
)

func diffCommand() *cli.Command {
	return &cli.Command{
		Name:      "diff",
		Usage:     "compare two audits image by image; gate regressions for CI",
		UsageText: progName + " diff BASELINE_DIR[@MODEL] [CANDIDATE_DIR[@MODEL]] [--fail-on GATES] [--json] [--junit FILE]",
		Description: wrapText("Compares two audits (written by 'marginaudit audit') of different models on the same " +
			"images and settings; audits that differ in a setting or in their images are refused, naming the " +
			"difference. An audit folder holding several checkpoints compares its last one (by epoch) unless " +
			"DIR@MODEL or --baseline-model/--candidate-model names another (MODEL is the checkpoint's file name, " +
			"with or without .onnx). With one folder, its second-to-last checkpoint is the baseline and its last " +
			"the candidate.\n\n" +
			"Per split and norm: the mean margins of the images attacked successfully on both models (images " +
			"whose attack failed on either have no margin and are counted apart), their mean paired difference " +
			"with a Student t-interval, the Wilcoxon signed-rank test (exact up to 50 pairs without ties or " +
			"zeros, else the normal approximation with tie correction), the share of images whose margin " +
			"dropped; the change of clean accuracy and of PGD robust accuracy at each radius with McNemar's " +
			"test (exact binomial below 25 discordant images, else χ² with continuity correction). With " +
			"--refined (audits made with --refine) an image's margin is its refined one wherever FMN confirmed " +
			"a point, also where DeepFool failed; the images counted apart are then the censored ones (no attack " +
			"flipped them within the input range: margin_refined holds the largest radius tried, not a margin), " +
			"whatever DeepFool found.\n\n" +
			"--fail-on takes comma-separated gates METRIC OP NUMBER[%], OP one of > >= < <=, e.g. " +
			"'mean_margin_drop>5%,robust_accuracy_drop>0.02,p<0.01'. Metrics: mean_margin_drop (relative drop " +
			"of the mean margin), dropped_share (share of images whose margin dropped), accuracy_drop and " +
			"robust_accuracy_drop (absolute drops, fractions), and the p-values of changes for the worse: " +
			"margin_p (Wilcoxon), accuracy_p and robust_accuracy_p (McNemar), p (any of them). A gate trips " +
			"when any split, norm or radius trips it; a gate that cannot be measured (robust_accuracy_drop " +
			"without PGD) fails too. Exit status: 0 when no gate trips, 1 when one does (named on stderr) or " +
			"on a runtime error, 2 on a usage error.\n\n" +
			"--json prints the comparison as JSON (format \"marginaudit-diff\", version 1; the schema is " +
			"documented in package auditor/compare) instead of the table. --junit writes one JUnit test case " +
			"per gate to FILE, with the measured value in each failure."),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "baseline-model", Usage: "the baseline's checkpoint `NAME` (default: the last)"},
			&cli.StringFlag{Name: "candidate-model", Usage: "the candidate's checkpoint `NAME` (default: the last)"},
			&cli.StringFlag{Name: "fail-on", Usage: "fail when one of the comma-separated `GATES` trips, e.g. 'mean_margin_drop>5%,p<0.01'"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of the table"},
			&cli.StringFlag{Name: "junit", Usage: "write the gates as JUnit XML to `FILE`"},
			&cli.BoolFlag{Name: "refined", Usage: "compare the refined margins (audits made with --refine); censored images count as failed"},
			&cli.Float64Flag{Name: "level", Usage: "confidence level of the intervals", Value: compare.DefaultLevel},
		},
		Action: runDiff,
	}
}

func runDiff(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 || len(args) > 2 {
		return usagef("diff", "want one or two audit folders, got %d arguments", len(args))
	}
	var gates []compare.Gate
	if list := c.String("fail-on"); c.IsSet("fail-on") {
		var err error
		if gates, err = compare.ParseGates(list); err != nil {
			return usagef("diff", "--fail-on: %v", err)
		}
	}
	if l := c.Float64("level"); !(l > 0 && l < 1) {
		return usagef("diff", "--level %v: want a value between 0 and 1, such as 0.95", l)
	}
	base, cand, err := diffModels(args, c.String("baseline-model"), c.String("candidate-model"))
	if err != nil {
		return err
	}
	res, err := compare.Compare(base, cand, compare.Options{Level: c.Float64("level"), Refined: c.Bool("refined")})
	if err != nil {
		return fmt.Errorf("diff: %w", err)
	}
	res.Check(gates)
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("diff: %w", err)
		}
	} else if err := compare.WriteText(c.App.Writer, res); err != nil {
		return fmt.Errorf("diff: %w", err)
	}
	if file := c.String("junit"); file != "" {
		if err := atomicfile.Write(file, 0o644, func(w io.Writer) error { return compare.WriteJUnit(w, res) }); err != nil {
			return fmt.Errorf("diff: %w", err)
		}
	}
	var tripped []string
	for _, g := range res.Gates {
		switch g.Status {
		case compare.Fail:
			tripped = append(tripped, fmt.Sprintf("gate %s tripped (%s)", g.Gate, g.Message))
		case compare.Error:
			tripped = append(tripped, fmt.Sprintf("gate %s could not be measured (%s)", g.Gate, g.Message))
		}
	}
	if len(tripped) > 0 {
		return fmt.Errorf("diff: %s", strings.Join(tripped, "; "))
	}
	return nil
}

// diffModels reads the audits named on the command line: one or two
// folders, each DIR or DIR@MODEL, and the models the flags name.
func diffModels(args []string, baseModel, candModel string) (base, cand *compare.Audit, err error) {
	dirs, models := make([]string, len(args)), make([]string, len(args))
	for i, a := range args {
		dirs[i], models[i] = splitModel(a)
	}
	flags := []string{baseModel, candModel}
	names := []string{"--baseline-model", "--candidate-model"}
	if len(args) == 1 {
		if models[0] != "" {
			return nil, nil, usagef("diff", "%s: with one audit folder name the models with --baseline-model and --candidate-model", args[0])
		}
		dirs, models = []string{dirs[0], dirs[0]}, []string{"", ""}
	}
	for i := range 2 {
		if flags[i] != "" && models[i] != "" {
			return nil, nil, usagef("diff", "%s names the model of %s, which %s names too", args[i], []string{"the baseline", "the candidate"}[i], names[i])
		}
		if flags[i] != "" {
			models[i] = flags[i]
		}
	}
	folders := make([]*compare.Folder, 2)
	for i := range 2 {
		if i == 1 && dirs[1] == dirs[0] {
			folders[1] = folders[0]
			continue
		}
		if folders[i], err = compare.ReadFolder(dirs[i]); err != nil {
			return nil, nil, fmt.Errorf("diff: %w", err)
		}
	}
	if len(args) == 1 && models[0] == "" {
		ms := folders[0].Models()
		if len(ms) < 2 {
			return nil, nil, usagef("diff", "%s holds one model (%s): give a second audit folder to compare it with", dirs[0], ms[0])
		}
		models[0] = ms[len(ms)-2]
	}
	audits := make([]*compare.Audit, 2)
	for i := range 2 {
		if audits[i], err = folders[i].Model(models[i]); err != nil {
			return nil, nil, fmt.Errorf("diff: %w", err)
		}
	}
	return audits[0], audits[1], nil
}

// splitModel splits DIR@MODEL; an argument that is a folder as a whole
// (even with an @ in its name) has no model.
func splitModel(arg string) (dir, model string) {
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		return arg, ""
	}
	if i := strings.LastIndex(arg, "@"); i > 0 {
		return arg[:i], arg[i+1:]
	}
	return arg, ""
}
