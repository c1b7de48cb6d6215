package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/onnxgrad"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "describe a model and say whether onnxgrad can differentiate it",
		UsageText: progName + " inspect MODEL.onnx [--json]",
		Description: wrapText("Prints the model's inputs and outputs (name, element type, shape), IR version, opset, " +
			"producer, number of weights, metadata, a histogram of its ops saying whether onnxgrad has a " +
			"gradient rule for each, and a verdict: whether onnxgrad differentiates the first output with " +
			"respect to the first input, and if not, the unsupported nodes or the reason. " +
			"The verdict is a report: the exit status is 0 either way, and 1 only when the file cannot be read " +
			"as an ONNX model."),
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: runInspect,
	}
}

// inspectReport is the JSON form of inspect's output.
type inspectReport struct {
	File           string            `json:"file"`
	IRVersion      int64             `json:"ir_version"`
	Opset          int64             `json:"opset"`
	Producer       string            `json:"producer"`
	Parameters     int64             `json:"parameters"`
	Inputs         []jsonTensor      `json:"inputs"`
	Outputs        []jsonTensor      `json:"outputs"`
	Metadata       map[string]string `json:"metadata"`
	Ops            []jsonOp          `json:"ops"`
	Differentiable bool              `json:"differentiable"`
	Unsupported    []jsonNode        `json:"unsupported"`
	GradError      string            `json:"grad_error,omitempty"`
}

type jsonTensor struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Shape holds numbers for known sizes and strings for symbols such
	// as "N"; it is null when the rank is unknown.
	Shape []any `json:"shape"`
}

type jsonOp struct {
	Op             string `json:"op"`
	Count          int    `json:"count"`
	Differentiable bool   `json:"differentiable"`
}

type jsonNode struct {
	OpType string `json:"op_type"`
	Node   string `json:"node"`
}

func runInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("inspect", "want one MODEL.onnx argument, got %d", c.NArg())
	}
	file := c.Args().First()
	m, err := onnxgrad.Load(file)
	if err != nil {
		return err
	}
	info, err := onnxgrad.Inspect(m, file)
	if err != nil {
		return err
	}
	r := newInspectReport(file, info)
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return writeInspect(c.App.Writer, r)
}

func newInspectReport(file string, info *onnxgrad.ModelInfo) *inspectReport {
	r := &inspectReport{
		File:           file,
		IRVersion:      info.IRVersion,
		Opset:          info.Opset,
		Producer:       info.Producer,
		Parameters:     info.Params,
		Metadata:       info.Metadata,
		Differentiable: info.Differentiable(),
		Inputs:         []jsonTensor{},
		Outputs:        []jsonTensor{},
		Ops:            []jsonOp{},
		Unsupported:    []jsonNode{},
	}
	if r.Metadata == nil {
		r.Metadata = map[string]string{}
	}
	for _, t := range info.Inputs {
		r.Inputs = append(r.Inputs, newJSONTensor(t))
	}
	for _, t := range info.Outputs {
		r.Outputs = append(r.Outputs, newJSONTensor(t))
	}
	for _, op := range info.Ops {
		r.Ops = append(r.Ops, jsonOp{Op: op.Op, Count: op.Count, Differentiable: op.Differentiable})
	}
	for _, u := range info.Unsupported {
		r.Unsupported = append(r.Unsupported, jsonNode{OpType: u.OpType, Node: u.Node})
	}
	if info.GradErr != nil {
		r.GradError = info.GradErr.Error()
	}
	return r
}

func newJSONTensor(t onnxgrad.TensorDesc) jsonTensor {
	j := jsonTensor{Name: t.Name, Type: t.Elem}
	if j.Type == "" {
		j.Type = "?"
	}
	if t.Shape != nil {
		j.Shape = []any{}
		for _, d := range t.Shape {
			if d.Known() {
				j.Shape = append(j.Shape, d.Value)
			} else {
				j.Shape = append(j.Shape, d.String())
			}
		}
	}
	return j
}

// dims returns the shape of t as strings, nil for an unknown rank.
func (t jsonTensor) dims() []string {
	if t.Shape == nil {
		return nil
	}
	s := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		s[i] = fmt.Sprint(d)
	}
	return s
}

func writeInspect(w io.Writer, r *inspectReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "file\t%s\n", r.File)
	fmt.Fprintf(tw, "ir version\t%d\n", r.IRVersion)
	fmt.Fprintf(tw, "opset\t%d\n", r.Opset)
	fmt.Fprintf(tw, "producer\t%s\n", orNone(r.Producer))
	fmt.Fprintf(tw, "parameters\t%s\n", thousands(r.Parameters))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	t := newTable()
	for _, part := range []struct {
		title   string
		tensors []jsonTensor
	}{{"inputs", r.Inputs}, {"outputs", r.Outputs}} {
		t.row("%s\t\t", part.title)
		if len(part.tensors) == 0 {
			t.row("  (none)\t\t")
		}
		for _, d := range part.tensors {
			t.row("  %s\t%s\t%s", d.Name, d.Type, formatDims(d.dims()))
		}
	}
	if err := t.writeTo(w); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nmetadata\n")
	if len(r.Metadata) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	keys := make([]string, 0, len(r.Metadata))
	for k := range r.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%s\n", k, strconv.Quote(r.Metadata[k]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nops\n")
	fmt.Fprintf(tw, "  op\tcount\tgradient\n")
	for _, op := range r.Ops {
		grad := "no"
		if op.Differentiable {
			grad = "yes"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", op.Op, op.Count, grad)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if r.Differentiable {
		what := "the first output"
		if len(r.Outputs) > 0 && len(r.Inputs) > 0 {
			what = fmt.Sprintf("%q with respect to %q", r.Outputs[0].Name, r.Inputs[0].Name)
		}
		_, err := fmt.Fprintf(w, "differentiable by onnxgrad: yes (%s)\n", what)
		return err
	}
	fmt.Fprintln(w, "differentiable by onnxgrad: no")
	for _, u := range r.Unsupported {
		fmt.Fprintf(w, "  unsupported op %q in node %q\n", u.OpType, u.Node)
	}
	if len(r.Unsupported) == 0 && r.GradError != "" {
		fmt.Fprintf(w, "  %s\n", r.GradError)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// thousands formats n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
