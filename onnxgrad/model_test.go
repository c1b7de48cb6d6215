package onnxgrad

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// tinyModel is Y = Relu(X·W) with X [N, 3], W [3, 2].
func tinyModel() *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String("tiny"),
			Input:       []*onnxpb.ValueInfoProto{tensorValueInfo("x", onnxpb.TensorProto_FLOAT, Shape{{Param: "N"}, known(3)})},
			Output:      []*onnxpb.ValueInfoProto{tensorValueInfo("y", onnxpb.TensorProto_FLOAT, Shape{{Param: "N"}, known(2)})},
			Initializer: []*onnxpb.TensorProto{NewTensorFloat32("w", []int64{3, 2}, []float32{1, 2, 3, 4, 5, 6})},
			Node: []*onnxpb.NodeProto{
				{Name: proto.String("mm"), OpType: proto.String("MatMul"), Input: []string{"x", "w"}, Output: []string{"h"}},
				{Name: proto.String("relu"), OpType: proto.String("Relu"), Input: []string{"h"}, Output: []string{"y"}},
			},
		},
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m *onnxpb.ModelProto)
		want   string // substring naming the field
	}{
		{"no graph", func(m *onnxpb.ModelProto) { m.Graph = nil }, "graph: missing"},
		{"no opset", func(m *onnxpb.ModelProto) { m.OpsetImport = nil }, "opset_import"},
		{"unknown domain", func(m *onnxpb.ModelProto) {
			m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String("com.example"), Version: proto.Int64(1)})
		}, `opset_import[1].domain: unknown operator-set domain "com.example"`},
		{"node domain not imported", func(m *onnxpb.ModelProto) { m.Graph.Node[1].Domain = proto.String("ai.onnx.ml") }, `graph.node[1] "relu" (Relu).domain`},
		{"int input", func(m *onnxpb.ModelProto) {
			m.Graph.Input[0] = tensorValueInfo("x", onnxpb.TensorProto_INT64, nil)
		}, `graph.input[0] "x": element type INT64 is not floating point`},
		{"undefined input", func(m *onnxpb.ModelProto) { m.Graph.Node[1].Input[0] = "nope" }, `graph.node[1] "relu" (Relu): input "nope" is not defined`},
		{"output twice", func(m *onnxpb.ModelProto) { m.Graph.Node[1].Output[0] = "h" }, `output "h" is defined twice`},
		{"bad initializer", func(m *onnxpb.ModelProto) { m.Graph.Initializer[0].Dims = []int64{4, 2} }, `graph.initializer[0] "w": raw_data holds 24 bytes`},
		{"external data", func(m *onnxpb.ModelProto) {
			m.Graph.Initializer[0].DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
		}, "the data is stored outside the model (external data): load the model from its file"},
		{"dangling output", func(m *onnxpb.ModelProto) { m.Graph.Output[0].Name = proto.String("z") }, `graph.output[0] "z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tinyModel()
			tt.mutate(m)
			err := Validate(m, "tiny.onnx")
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a *FormatError", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "tiny.onnx") {
				t.Errorf("error %q does not name the file and %q", err, tt.want)
			}
		})
	}
	if err := Validate(tinyModel(), "tiny.onnx"); err != nil {
		t.Fatalf("valid model rejected: %v", err)
	}
}

func TestDecodeCorrupt(t *testing.T) {
	data, err := Encode(tinyModel())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data[:len(data)/2], "half.onnx"); err == nil || !strings.Contains(err.Error(), "half.onnx") {
		t.Errorf("truncated model: got %v, want an error naming the file", err)
	}
	if _, err := Decode([]byte("not a model at all"), "text.onnx"); err == nil {
		t.Error("garbage accepted")
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.onnx")
	if err := Save(path, tinyModel()); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, tinyModel()) {
		t.Error("model changed in a save/load round trip")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("Save left %d files behind, want just the model", len(entries))
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.onnx")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestBuildErrors(t *testing.T) {
	unsupported, err := Load("../testdata/models/unsupported.onnx")
	if err != nil {
		t.Fatal(err)
	}
	old := tinyModel()
	old.OpsetImport[0].Version = proto.Int64(6)
	tests := []struct {
		name string
		m    *onnxpb.ModelProto
		opt  Options
		want string
	}{
		{"unsupported op", unsupported, Options{Mode: VJP, File: "unsupported.onnx"}, `unsupported.onnx: unsupported op "`},
		{"old opset", old, Options{File: "old.onnx"}, "opset 6 is older than 7"},
		{"no such output", tinyModel(), Options{Output: "zz"}, `no output "zz"`},
		{"wrt not a tensor", tinyModel(), Options{WRT: []string{"zz"}}, `"zz" is not a floating-point input or initializer`},
		{"classes in VJP mode", tinyModel(), Options{Classes: 1}, "Jacobian mode only"},
		{"too many classes", tinyModel(), Options{Mode: Jacobian, Classes: 3, File: "tiny.onnx"}, "tiny.onnx: the Jacobian of the top 3 classes asked for, but output"},
		{"bad input shape", tinyModel(), Options{InputShape: []int64{3, 1}}, "does not match the model's rank"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(tt.m, tt.opt)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	var ce *ClassesError
	if _, err := Build(tinyModel(), Options{Mode: Jacobian, Classes: 3}); !errors.As(err, &ce) || ce.Requested != 3 || ce.K != 2 {
		t.Errorf("got %v, want a ClassesError for 3 of 2 classes", err)
	}
	var u *UnsupportedOpError
	_, err = Build(unsupported, Options{})
	if !errors.As(err, &u) || u.Node == "" || u.OpType == "" {
		t.Errorf("got %v, want an UnsupportedOpError naming node and op", err)
	}
}

// FuzzDecode feeds arbitrary bytes to the model reader, and mutations of a
// valid model: Decode must never panic, and whatever it accepts must survive
// an encode/decode round trip and shape inference.
func FuzzDecode(f *testing.F) {
	data, err := Encode(tinyModel())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	// Small fixtures only: each new interesting input is minimised, which
	// takes minutes on the 100 KB ones.
	for _, name := range []string{"cnn_overlap", "misc2", "misc3", "unsupported"} {
		if d, err := os.ReadFile("../testdata/models/" + name + ".onnx"); err == nil {
			f.Add(d)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			t.Skip("too large")
		}
		m, err := Decode(data, "fuzz.onnx")
		if err != nil {
			return
		}
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("accepted model does not encode: %v", err)
		}
		if _, err := Decode(again, "fuzz.onnx"); err != nil {
			t.Fatalf("round trip rejected: %v", err)
		}
		_, _ = Inspect(m, "fuzz.onnx")
	})
}

// An empty file is a FormatError that says so, not a model without a graph.
func TestDecodeEmpty(t *testing.T) {
	_, err := Decode(nil, "x.onnx")
	var fe *FormatError
	if !errors.As(err, &fe) || err.Error() != "onnxgrad: x.onnx: empty file, not an ONNX model" {
		t.Errorf("error %v, want a FormatError saying the file is empty", err)
	}
}
