package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/internal/english"
	"github.com/marginaudit/marginaudit/onnxgrad"
)

func gradCommand() *cli.Command {
	return &cli.Command{
		Name:  "grad",
		Usage: "write a model that also computes gradients",
		UsageText: progName + " grad MODEL.onnx --out OUT.onnx [--wrt input|params|NAME,...] [--jacobian] [--classes K]\n" +
			"   [--output NAME] [--input-shape C,H,W]",
		Description: wrapText("Builds, with onnxgrad, a copy of MODEL.onnx that also computes gradients of one output " +
			"(--output, default the first), made of standard ONNX ops only, and saves it atomically to OUT.onnx. " +
			"Then it prints the new model's inputs and outputs, marking the new ones, so that you know how to feed it.\n\n" +
			"--wrt input (the default) differentiates with respect to the first graph input: a vector-Jacobian " +
			"product, with the output's cotangent as a new input, or with --jacobian the per-sample Jacobian " +
			"[N, K, ...input dims] of all K class scores (or of the top --classes K by score, whose indices " +
			"become an extra int64 output [N, K]), with no new input. " +
			"--wrt params differentiates with respect to every floating-point initializer (weights) that the output " +
			"depends on, for training. Any other value is a comma-separated list of graph inputs or initializers. " +
			"--input-shape fixes the input's sizes after the batch dimension, for models exported with symbolic sizes.\n\n" +
			"An op without a gradient rule on the differentiated path is an error (exit status 1) naming " +
			"the op type and the node."),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "write the gradient model to `OUT.onnx`"},
			&cli.StringFlag{Name: "wrt", Value: "input", Usage: "differentiate with respect to `WHAT`: input, params, or tensor names separated by commas"},
			&cli.BoolFlag{Name: "jacobian", Usage: "compute the per-sample Jacobian of the class scores (needs an [N, K] output)"},
			&cli.IntFlag{Name: "classes", Usage: "with --jacobian, differentiate only the top `K` classes by score (0: all)"},
			&cli.StringFlag{Name: "output", Usage: "differentiate the graph output `NAME` (default: the first)"},
			&cli.StringFlag{Name: "input-shape", Usage: "fix the first input's sizes after the batch dimension to `C,H,W`"},
		},
		Action: runGrad,
	}
}

func runGrad(c *cli.Context) error {
	const cmd = "grad"
	if c.NArg() != 1 {
		return usagef(cmd, "want one MODEL.onnx argument, got %d", c.NArg())
	}
	file, out := c.Args().First(), c.String("out")
	if out == "" {
		return usagef(cmd, "missing --out OUT.onnx")
	}
	opt := onnxgrad.Options{Mode: onnxgrad.VJP, Output: c.String("output"), Classes: c.Int("classes"), File: file}
	if c.Bool("jacobian") {
		opt.Mode = onnxgrad.Jacobian
	}
	switch wrt := c.String("wrt"); wrt {
	case "", "input":
	case "params":
		if opt.Mode == onnxgrad.Jacobian {
			return usagef(cmd, "--jacobian needs --wrt input or input names, not params")
		}
		opt.Mode = onnxgrad.Params
	default:
		for w := range strings.SplitSeq(wrt, ",") {
			if w = strings.TrimSpace(w); w == "" {
				return usagef(cmd, "--wrt %q: empty name", wrt)
			}
			opt.WRT = append(opt.WRT, w)
		}
	}
	if opt.Classes != 0 && opt.Mode != onnxgrad.Jacobian {
		return usagef(cmd, "--classes needs --jacobian")
	}
	if opt.Classes < 0 {
		return usagef(cmd, "--classes %d: want a positive number of classes", opt.Classes)
	}
	var err error
	if opt.InputShape, err = parseInputShape(cmd, c.String("input-shape")); err != nil {
		return err
	}

	m, err := onnxgrad.Load(file)
	if err != nil {
		return err
	}
	res, err := onnxgrad.Build(m, opt)
	if err != nil {
		return withHint(err, buildHint(err, m, opt.InputShape != nil))
	}
	if err := onnxgrad.Save(out, res.Model); err != nil {
		return err
	}
	return describeGrad(c.App.Writer, out, opt.Mode, res)
}

// describeGrad tells the user how to feed the gradient model res, saved as
// file.
func describeGrad(w io.Writer, file string, mode onnxgrad.Mode, res *onnxgrad.Result) error {
	wrt := quoteList(res.WRT)
	if mode == onnxgrad.Params {
		wrt = english.Plural(len(res.WRT), "initializer")
	}
	switch mode {
	case onnxgrad.Jacobian:
		fmt.Fprintf(w, "wrote %s: the per-sample Jacobian of %q with respect to %s\n", file, res.Output, wrt)
	default:
		fmt.Fprintf(w, "wrote %s: the vector-Jacobian product of %q with respect to %s\n", file, res.Output, wrt)
	}
	inputs, outputs := graphIO(res.Model)
	notes := map[string]string{}
	switch {
	case res.Seed != "" && mode == onnxgrad.Params:
		notes[res.Seed] = fmt.Sprintf("new: the cotangent of %q, such as ∂loss/∂%s", res.Output, res.Output)
	case res.Seed != "":
		notes[res.Seed] = fmt.Sprintf("new: the cotangent of %q (one-hot rows give one class score's gradient)", res.Output)
	}
	if res.Classes != "" {
		notes[res.Classes] = fmt.Sprintf("new: the indices of the top classes by %q, best first", res.Output)
	}
	for i, g := range res.Grads {
		switch {
		case mode != onnxgrad.Jacobian:
			notes[g] = fmt.Sprintf("new: Σ cotangent·∂%s/∂%s", res.Output, res.WRT[i])
		case res.Classes != "":
			notes[g] = fmt.Sprintf("new: [n, l, ...] = ∂%s[n, %s[n, l]]/∂%s[n, ...]", res.Output, res.Classes, res.WRT[i])
		default:
			notes[g] = fmt.Sprintf("new: [n, k, ...] = ∂%s[n, k]/∂%s[n, ...]", res.Output, res.WRT[i])
		}
	}
	t := newTable()
	for _, part := range []struct {
		title   string
		tensors []tensorDesc
	}{{"inputs", inputs}, {"outputs", outputs}} {
		t.row("%s\t\t\t", part.title)
		for _, d := range part.tensors {
			t.row("  %s\t%s\t%s\t%s", d.Name, d.Type, formatDims(d.Dims), notes[d.Name])
		}
	}
	return t.writeTo(w)
}

// quoteList formats names as "a", "b" and "c".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) <= 1 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}
