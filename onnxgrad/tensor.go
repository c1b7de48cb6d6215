package onnxgrad

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// elemSize returns the size in bytes of one element of a raw_data tensor of
// the given type, or 0 for types this package does not decode.
func elemSize(t onnxpb.TensorProto_DataType) int {
	switch t {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_INT32, onnxpb.TensorProto_UINT32:
		return 4
	case onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_INT64, onnxpb.TensorProto_UINT64:
		return 8
	case onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16, onnxpb.TensorProto_INT16, onnxpb.TensorProto_UINT16:
		return 2
	case onnxpb.TensorProto_INT8, onnxpb.TensorProto_UINT8, onnxpb.TensorProto_BOOL:
		return 1
	}
	return 0
}

func isFloatType(t int32) bool {
	switch onnxpb.TensorProto_DataType(t) {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
		return true
	}
	return false
}

func elemTypeName(t int32) string {
	return onnxpb.TensorProto_DataType(t).String()
}

// numElements returns the element count of dims, or an error for negative or
// overflowing dimensions.
func numElements(dims []int64) (int64, error) {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d", d)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, errors.New("dimensions overflow")
		}
		n *= d
	}
	return n, nil
}

// checkTensorData verifies that a tensor's stored data matches its dims.
func checkTensorData(t *onnxpb.TensorProto) error {
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || len(t.GetExternalData()) > 0 {
		return errors.New("the data is stored outside the model (external data): load the model from its file, with the data file beside it")
	}
	n, err := numElements(t.GetDims())
	if err != nil {
		return err
	}
	dt := onnxpb.TensorProto_DataType(t.GetDataType())
	if raw := t.GetRawData(); raw != nil {
		if sz := elemSize(dt); sz > 0 && int64(len(raw)) != n*int64(sz) {
			return fmt.Errorf("raw_data holds %d bytes, dims %v of %s need %d", len(raw), t.GetDims(), dt, n*int64(sz))
		}
		return nil
	}
	var have int
	switch dt {
	case onnxpb.TensorProto_FLOAT:
		have = len(t.GetFloatData())
	case onnxpb.TensorProto_DOUBLE:
		have = len(t.GetDoubleData())
	case onnxpb.TensorProto_INT64:
		have = len(t.GetInt64Data())
	case onnxpb.TensorProto_INT32, onnxpb.TensorProto_INT16, onnxpb.TensorProto_INT8, onnxpb.TensorProto_UINT16,
		onnxpb.TensorProto_UINT8, onnxpb.TensorProto_BOOL, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
		have = len(t.GetInt32Data())
	default:
		return nil
	}
	if int64(have) != n {
		return fmt.Errorf("holds %d values, dims %v need %d", have, t.GetDims(), n)
	}
	return nil
}

// TensorFloat32 returns the values of a FLOAT tensor.
func TensorFloat32(t *onnxpb.TensorProto) ([]float32, error) {
	if onnxpb.TensorProto_DataType(t.GetDataType()) != onnxpb.TensorProto_FLOAT {
		return nil, fmt.Errorf("onnxgrad: tensor %q is %s, not FLOAT", t.GetName(), elemTypeName(t.GetDataType()))
	}
	if err := checkTensorData(t); err != nil {
		return nil, fmt.Errorf("onnxgrad: tensor %q: %w", t.GetName(), err)
	}
	if raw := t.GetRawData(); raw != nil {
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	}
	return append([]float32(nil), t.GetFloatData()...), nil
}

// tensorInt64s returns the values of an integer tensor as int64 (INT64 or
// INT32), for shape arithmetic.
func tensorInt64s(t *onnxpb.TensorProto) ([]int64, error) {
	if err := checkTensorData(t); err != nil {
		return nil, err
	}
	dt := onnxpb.TensorProto_DataType(t.GetDataType())
	raw := t.GetRawData()
	switch dt {
	case onnxpb.TensorProto_INT64:
		if raw != nil {
			out := make([]int64, len(raw)/8)
			for i := range out {
				out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
			return out, nil
		}
		return append([]int64(nil), t.GetInt64Data()...), nil
	case onnxpb.TensorProto_BOOL, onnxpb.TensorProto_UINT8, onnxpb.TensorProto_INT8:
		if raw != nil {
			out := make([]int64, len(raw))
			for i, b := range raw {
				out[i] = int64(b)
				if dt == onnxpb.TensorProto_INT8 {
					out[i] = int64(int8(b))
				}
			}
			return out, nil
		}
		out := make([]int64, len(t.GetInt32Data()))
		for i, v := range t.GetInt32Data() {
			out[i] = int64(v)
		}
		return out, nil
	case onnxpb.TensorProto_INT32:
		if raw != nil {
			out := make([]int64, len(raw)/4)
			for i := range out {
				out[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
			}
			return out, nil
		}
		out := make([]int64, len(t.GetInt32Data()))
		for i, v := range t.GetInt32Data() {
			out[i] = int64(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("tensor %q is %s, not an integer type", t.GetName(), dt)
}

// NewTensorFloat32 returns a FLOAT tensor with the given name, dims and data
// (stored as raw little-endian bytes). It panics if len(data) does not match
// dims.
func NewTensorFloat32(name string, dims []int64, data []float32) *onnxpb.TensorProto {
	if n, err := numElements(dims); err != nil || n != int64(len(data)) {
		panic(fmt.Sprintf("onnxgrad: NewTensorFloat32 %q: %d values for dims %v", name, len(data), dims))
	}
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw}
}

// newTensorFloat returns a tensor of the floating-point type dt (FLOAT or
// DOUBLE) holding vals.
func newTensorFloat(name string, dt onnxpb.TensorProto_DataType, dims []int64, vals []float64) *onnxpb.TensorProto {
	t := &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(dt))}
	switch dt {
	case onnxpb.TensorProto_DOUBLE:
		t.DoubleData = vals
	case onnxpb.TensorProto_FLOAT:
		f := make([]float32, len(vals))
		for i, v := range vals {
			f[i] = float32(v)
		}
		t.FloatData = f
	default:
		panic(fmt.Sprintf("onnxgrad: constants of type %s are not supported", dt))
	}
	return t
}

func newTensorInt64(name string, dims []int64, vals []int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: vals}
}
