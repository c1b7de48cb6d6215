package onnxgrad

// Reading ONNX's backend node tests (Debian's libonnx-testdata): each test
// is a folder holding model.onnx and test_data_set_0/ with input_<i>.pb and
// output_<i>.pb, serialized TensorProtos matched by position to the graph's
// inputs and outputs.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// nodeTest is one of ONNX's backend node tests with its first data set.
type nodeTest struct {
	name  string
	model *onnxpb.ModelProto
	// inputs and outputs hold input_<i>.pb and output_<i>.pb, in the order
	// of the graph's inputs and outputs.
	inputs, outputs []*onnxpb.TensorProto
}

// errNotTensor marks a test whose inputs or outputs are not all tensors
// (sequences, optionals, maps): their .pb files are not TensorProtos.
var errNotTensor = errors.New("not a tensor")

// loadNodeTest reads the test in dir. Errors name the file at fault. For a
// test with non-tensor inputs or outputs it returns the test without data
// and an error wrapping errNotTensor.
func loadNodeTest(dir string) (*nodeTest, error) {
	path := filepath.Join(dir, "model.onnx")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t := &nodeTest{name: filepath.Base(dir), model: new(onnxpb.ModelProto)}
	if err := proto.Unmarshal(data, t.model); err != nil {
		return nil, fmt.Errorf("%s: not an ONNX model: %w", path, err)
	}
	g := t.model.GetGraph()
	if g == nil {
		return nil, fmt.Errorf("%s: no graph", path)
	}
	for _, vi := range append(slices.Clone(g.GetInput()), g.GetOutput()...) {
		if vi.GetType().GetTensorType() == nil {
			return t, fmt.Errorf("%s: graph input or output %q: %w", path, vi.GetName(), errNotTensor)
		}
	}
	set := filepath.Join(dir, "test_data_set_0")
	if t.inputs, err = readTensors(set, "input", len(g.GetInput())); err != nil {
		return nil, err
	}
	if t.outputs, err = readTensors(set, "output", len(g.GetOutput())); err != nil {
		return nil, err
	}
	return t, nil
}

// readTensors reads <kind>_0.pb … <kind>_<n-1>.pb in dir.
func readTensors(dir, kind string, n int) ([]*onnxpb.TensorProto, error) {
	out := make([]*onnxpb.TensorProto, n)
	for i := range out {
		var err error
		if out[i], err = readTensorPB(filepath.Join(dir, fmt.Sprintf("%s_%d.pb", kind, i))); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readTensorPB reads a serialized TensorProto and checks that its data fits
// its dims.
func readTensorPB(path string) (*onnxpb.TensorProto, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t := new(onnxpb.TensorProto)
	if err := proto.Unmarshal(data, t); err != nil {
		return nil, fmt.Errorf("%s: not a TensorProto: %w", path, err)
	}
	if err := checkTensorData(t); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", path, t.GetName(), err)
	}
	return t, nil
}

// outputElem is the element type of output i: the declared one (ONNX
// 1.12's test data stores bfloat16 tensors as UINT16), else the .pb's.
func (t *nodeTest) outputElem(i int) onnxpb.TensorProto_DataType {
	if dt := t.model.GetGraph().GetOutput()[i].GetType().GetTensorType().GetElemType(); dt != 0 {
		return onnxpb.TensorProto_DataType(dt)
	}
	return onnxpb.TensorProto_DataType(t.outputs[i].GetDataType())
}

// isRunnableFloat reports whether tests can feed and read tensors of type
// t: float32 and float64 (onnxruntime values of other float types cannot be
// made from Go).
func isRunnableFloat(t onnxpb.TensorProto_DataType) bool {
	return t == onnxpb.TensorProto_FLOAT || t == onnxpb.TensorProto_DOUBLE
}

// floatValues returns the values of a FLOAT or DOUBLE tensor in float64.
func floatValues(t *onnxpb.TensorProto) ([]float64, error) {
	switch onnxpb.TensorProto_DataType(t.GetDataType()) {
	case onnxpb.TensorProto_FLOAT:
		f, err := TensorFloat32(t)
		if err != nil {
			return nil, err
		}
		out := make([]float64, len(f))
		for i, v := range f {
			out[i] = float64(v)
		}
		return out, nil
	case onnxpb.TensorProto_DOUBLE:
		if err := checkTensorData(t); err != nil {
			return nil, err
		}
		raw := t.GetRawData()
		if raw == nil {
			return slices.Clone(t.GetDoubleData()), nil
		}
		out := make([]float64, len(raw)/8)
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("tensor %q is %s, not FLOAT or DOUBLE", t.GetName(), elemTypeName(t.GetDataType()))
}

// preparedTest is a node test made ready for onnxgrad: its non-float inputs
// (shapes, axes, indices, conditions) are frozen into initializers holding
// the test's values, as exporters write them, and its float32/float64
// inputs stay graph inputs fed from the test data.
type preparedTest struct {
	model *onnxpb.ModelProto
	feeds map[string]*testTensor
	// floats lists the float graph inputs, in graph order.
	floats []string
}

// prepare freezes t's non-float inputs. It returns a skip reason (and a nil
// test) when the test has no float32/float64 input or an input onnxgrad's
// tests cannot feed (float16, bfloat16).
func prepare(t *nodeTest) (*preparedTest, string, error) {
	m := proto.Clone(t.model).(*onnxpb.ModelProto)
	g := m.GetGraph()
	p := &preparedTest{model: m, feeds: map[string]*testTensor{}}
	var kept []*onnxpb.ValueInfoProto
	for i, vi := range g.GetInput() {
		pb := t.inputs[i]
		elem := onnxpb.TensorProto_DataType(vi.GetType().GetTensorType().GetElemType())
		if isFloatType(int32(elem)) && !isRunnableFloat(elem) {
			// (ONNX 1.12's test data stores bfloat16 tensors as UINT16.)
			return nil, "input onnxruntime_go cannot feed: " + elem.String(), nil
		}
		if got := onnxpb.TensorProto_DataType(pb.GetDataType()); got != elem {
			return nil, "", fmt.Errorf("input_%d.pb holds %s, input %q is declared %s", i, got, vi.GetName(), elem)
		}
		switch {
		case isRunnableFloat(elem):
			vals, err := floatValues(pb)
			if err != nil {
				return nil, "", fmt.Errorf("input_%d.pb: %w", i, err)
			}
			p.feeds[vi.GetName()] = &testTensor{shape: pb.GetDims(), data: vals}
			p.floats = append(p.floats, vi.GetName())
			kept = append(kept, vi)
		default:
			frozen := proto.Clone(pb).(*onnxpb.TensorProto)
			frozen.Name = proto.String(vi.GetName())
			g.Initializer = append(g.Initializer, frozen)
		}
	}
	if len(p.floats) == 0 {
		return nil, "no float32/float64 input", nil
	}
	g.Input = kept
	return p, "", nil
}
