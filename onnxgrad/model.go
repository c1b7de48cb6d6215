package onnxgrad

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/internal/atomicfile"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// ErrNoGraph is returned for a model without a graph.
var ErrNoGraph = errors.New("onnxgrad: model has no graph")

// FormatError reports a model that is not valid ONNX, or that uses a feature
// this package cannot read. File is the model's file name ("" when decoded
// from memory) and Field the offending protobuf field or graph element.
type FormatError struct {
	File  string
	Field string
	Msg   string
	Err   error
}

func (e *FormatError) Error() string {
	s := "onnxgrad: "
	if e.File != "" {
		s += e.File + ": "
	}
	if e.Field != "" {
		s += e.Field + ": "
	}
	s += e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FormatError) Unwrap() error { return e.Err }

// knownDomains are the operator-set domains a model may import: the ONNX
// default domain under both spellings, ONNX-ML, and onnxruntime's contrib
// domain (which a stock onnxruntime build runs, though onnxgrad has no
// gradient rules for it).
var knownDomains = map[string]bool{
	"":                           true,
	"ai.onnx":                    true,
	"ai.onnx.ml":                 true,
	"ai.onnx.preview.training":   true,
	"com.microsoft":              true,
	"com.microsoft.nchwc":        true,
	"com.microsoft.experimental": true,
}

// Load reads and validates the ONNX model in the file at path. Tensors
// stored as external data are read from the files the model names in its
// folder (never outside it) and kept inline; nodes not in topological order
// are sorted (see Decode).
func Load(path string) (*onnxpb.ModelProto, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onnxgrad: %w", err)
	}
	name := filepath.Base(path)
	m, err := unmarshal(data, name)
	if err != nil {
		return nil, err
	}
	if err := loadExternalData(m, filepath.Dir(path), name); err != nil {
		return nil, err
	}
	if err := Validate(m, name); err != nil {
		return nil, err
	}
	return m, nil
}

// Decode parses and validates a serialized ONNX model. name is used in error
// messages (usually the file name). A graph whose nodes are not in
// topological order (as keras2onnx writes some) is sorted, keeping the
// file's order among independent nodes, as onnxruntime does when it loads
// such a file. Calls of the model's local functions (as PyTorch 2's dynamo
// exporter writes every operator) are replaced by the functions' bodies. A
// model with external data needs Load, which knows its folder.
func Decode(data []byte, name string) (*onnxpb.ModelProto, error) {
	m, err := unmarshal(data, name)
	if err != nil {
		return nil, err
	}
	if err := Validate(m, name); err != nil {
		return nil, err
	}
	return m, nil
}

// unmarshal parses a serialized model, inlines its local functions (see
// inlineFunctions) and sorts its nodes.
func unmarshal(data []byte, name string) (*onnxpb.ModelProto, error) {
	if len(data) == 0 {
		return nil, &FormatError{File: name, Msg: "empty file, not an ONNX model"}
	}
	m := new(onnxpb.ModelProto)
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, &FormatError{File: name, Msg: "not a valid ONNX protobuf (truncated or corrupt file?)", Err: err}
	}
	if err := inlineFunctions(m, name); err != nil {
		return nil, err
	}
	if err := sortNodes(m.GetGraph(), name); err != nil {
		return nil, err
	}
	return m, nil
}

// Encode serializes a model deterministically.
func Encode(m *onnxpb.ModelProto) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// Save writes the model to path atomically, with mode 0644 less the umask
// (see package atomicfile): a crash never leaves a half-written model under
// the final name.
func Save(path string, m *onnxpb.ModelProto) error {
	data, err := Encode(m)
	if err != nil {
		return fmt.Errorf("onnxgrad: encoding %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("onnxgrad: %w", err)
	}
	return nil
}

// Validate checks the parts of a model that onnxgrad and onnxruntime rely on:
// a graph, imported operator sets from known domains, tensor-typed graph
// inputs of a floating-point type, initializers whose data matches their
// dimensions, and nodes whose inputs are defined before use. name is used in
// error messages.
func Validate(m *onnxpb.ModelProto, name string) error {
	ferr := func(field, format string, args ...any) error {
		return &FormatError{File: name, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	g := m.GetGraph()
	if g == nil {
		return &FormatError{File: name, Field: "graph", Msg: "missing", Err: ErrNoGraph}
	}
	if len(m.GetOpsetImport()) == 0 {
		return ferr("opset_import", "no operator set imported")
	}
	imported := map[string]bool{}
	for i, op := range m.GetOpsetImport() {
		d := op.GetDomain()
		if !knownDomains[d] {
			return ferr(fmt.Sprintf("opset_import[%d].domain", i), "unknown operator-set domain %q", d)
		}
		if op.GetVersion() <= 0 {
			return ferr(fmt.Sprintf("opset_import[%d].version", i), "invalid version %d for domain %q", op.GetVersion(), d)
		}
		imported[canonicalDomain(d)] = true
	}
	if !imported[""] {
		return ferr("opset_import", "the default ONNX domain is not imported")
	}
	defined := map[string]bool{}
	for i, t := range g.GetInitializer() {
		if t.GetName() == "" {
			return ferr(fmt.Sprintf("graph.initializer[%d].name", i), "empty name")
		}
		if err := checkTensorData(t); err != nil {
			return ferr(fmt.Sprintf("graph.initializer[%d] %q", i, t.GetName()), "%v", err)
		}
		defined[t.GetName()] = true
	}
	for i, in := range g.GetInput() {
		field := fmt.Sprintf("graph.input[%d] %q", i, in.GetName())
		if in.GetName() == "" {
			return ferr(field, "empty name")
		}
		tt := in.GetType().GetTensorType()
		if tt == nil {
			return ferr(field, "not a tensor (sequence, map and optional inputs are not supported)")
		}
		if !defined[in.GetName()] && !isFloatType(tt.GetElemType()) {
			return ferr(field, "element type %s is not floating point", elemTypeName(tt.GetElemType()))
		}
		defined[in.GetName()] = true
	}
	for i, n := range g.GetNode() {
		d := canonicalDomain(n.GetDomain())
		field := fmt.Sprintf("graph.node[%d] %q (%s)", i, n.GetName(), n.GetOpType())
		if !imported[d] {
			return ferr(field+".domain", "domain %q is not in opset_import", n.GetDomain())
		}
		for _, in := range n.GetInput() {
			if in != "" && !defined[in] {
				return ferr(field, "input %q is not defined by an earlier node, an input or an initializer", in)
			}
		}
		for _, out := range n.GetOutput() {
			if out == "" {
				continue
			}
			if defined[out] {
				return ferr(field, "output %q is defined twice", out)
			}
			defined[out] = true
		}
	}
	if len(g.GetOutput()) == 0 {
		return ferr("graph.output", "the graph has no outputs")
	}
	for i, out := range g.GetOutput() {
		if !defined[out.GetName()] {
			return ferr(fmt.Sprintf("graph.output[%d] %q", i, out.GetName()), "not produced by any node, input or initializer")
		}
	}
	return nil
}

func canonicalDomain(d string) string {
	if d == "ai.onnx" {
		return ""
	}
	return d
}

// Opset returns the version of the default ONNX operator set the model imports.
func Opset(m *onnxpb.ModelProto) int64 {
	for _, op := range m.GetOpsetImport() {
		if canonicalDomain(op.GetDomain()) == "" {
			return op.GetVersion()
		}
	}
	return 0
}

// setOpset sets the model's default-domain operator-set version.
func setOpset(m *onnxpb.ModelProto, v int64) {
	for _, op := range m.GetOpsetImport() {
		if canonicalDomain(op.GetDomain()) == "" {
			op.Version = proto.Int64(v)
			return
		}
	}
	m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String(""), Version: proto.Int64(v)})
}
