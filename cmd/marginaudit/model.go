package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// This file holds helpers shared by the commands.

// tensorDesc describes a graph input or output as the model declares it.
type tensorDesc struct {
	Name string
	Type string   // ONNX element type, such as "FLOAT"
	Dims []string // sizes and symbols such as "N"; "?" for unnamed; nil for unknown rank
}

// graphIO describes the inputs (initializers excluded) and outputs of m.
func graphIO(m *onnxpb.ModelProto) (inputs, outputs []tensorDesc) {
	init := map[string]bool{}
	for _, t := range m.GetGraph().GetInitializer() {
		init[t.GetName()] = true
	}
	for _, vi := range m.GetGraph().GetInput() {
		if !init[vi.GetName()] {
			inputs = append(inputs, describeValue(vi))
		}
	}
	for _, vi := range m.GetGraph().GetOutput() {
		outputs = append(outputs, describeValue(vi))
	}
	return inputs, outputs
}

func describeValue(vi *onnxpb.ValueInfoProto) tensorDesc {
	d := tensorDesc{Name: vi.GetName(), Type: "?"}
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return d
	}
	d.Type = onnxpb.TensorProto_DataType(tt.GetElemType()).String()
	if tt.GetShape() == nil {
		return d
	}
	d.Dims = []string{}
	for _, dim := range tt.GetShape().GetDim() {
		switch {
		case dim.GetDimParam() != "":
			d.Dims = append(d.Dims, dim.GetDimParam())
		case dim.GetValue() != nil:
			d.Dims = append(d.Dims, strconv.FormatInt(dim.GetDimValue(), 10))
		default:
			d.Dims = append(d.Dims, "?")
		}
	}
	return d
}

// formatDims writes a shape as [N, 1, 28, 28]; nil is an unknown rank.
func formatDims(dims []string) string {
	if dims == nil {
		return "(unknown rank)"
	}
	return "[" + strings.Join(dims, ", ") + "]"
}

// formatInts writes a shape as [4, 1, 28, 28].
func formatInts[T int | int64](dims []T) string {
	s := make([]string, len(dims))
	for i, d := range dims {
		s[i] = strconv.FormatInt(int64(d), 10)
	}
	return formatDims(s)
}

// parseInputShape parses the --input-shape value "C,H,W" (the input's
// dimensions without the batch); "" gives nil.
func parseInputShape(cmd, s string) ([]int64, error) {
	if s == "" {
		return nil, nil
	}
	var dims []int64
	for f := range strings.SplitSeq(s, ",") {
		d, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || d <= 0 {
			return nil, usagef(cmd, "--input-shape %q: want positive sizes separated by commas, such as 3,32,32", s)
		}
		dims = append(dims, d)
	}
	return dims, nil
}

// table aligns tab-separated cells in columns, like text/tabwriter, without
// trailing spaces on lines whose last cells are empty.
type table struct {
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

func newTable() *table {
	t := &table{}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 0, 2, ' ', 0)
	return t
}

// row adds one line; cells are separated by tabs in format.
func (t *table) row(format string, args ...any) {
	fmt.Fprintf(t.tw, format+"\n", args...)
}

// writeTo writes the aligned table to w.
func (t *table) writeTo(w io.Writer) error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	var out bytes.Buffer
	for line := range bytes.Lines(t.buf.Bytes()) {
		out.Write(bytes.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	_, err := w.Write(out.Bytes())
	return err
}

// helpWidth is the width that wrapText fills help text to; cli indents it by
// three spaces.
const helpWidth = 76

// wrapText fills the paragraphs of s (separated by blank lines) to
// helpWidth columns.
func wrapText(s string) string {
	paras := strings.Split(s, "\n\n")
	for i, p := range paras {
		var b strings.Builder
		col := 0
		for _, word := range strings.Fields(p) {
			n := utf8.RuneCountInString(word)
			if col > 0 && col+1+n > helpWidth {
				b.WriteByte('\n')
				col = 0
			} else if col > 0 {
				b.WriteByte(' ')
				col++
			}
			b.WriteString(word)
			col += n
		}
		paras[i] = b.String()
	}
	return strings.Join(paras, "\n\n")
}
