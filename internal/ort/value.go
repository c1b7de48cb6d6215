package ort

import (
	"fmt"
	"math"

	ortgo "github.com/yalue/onnxruntime_go"
)

// Element lists the Go types a [Value] can hold.
type Element interface {
	float32 | float64 | int64
}

// Value is a tensor: a shape and a Go slice holding its elements in row-major
// (C) order. Passing a Value to [Session.Run] does not copy the slice.
//
// Data is a []float32, []float64 or []int64 with exactly as many elements as
// the product of Shape; an empty Shape with one element is a scalar (0-d
// tensor). In the outputs of [Session.Run], a Value whose Data is nil is
// filled by the run with a newly allocated slice and its shape.
type Value struct {
	// Shape lists the dimensions, outermost first.
	Shape []int64
	// Data is the backing slice: []float32, []float64, []int64 or nil.
	Data any
}

// NewValue returns the Value with the given data and shape, without copying
// data. With no shape it is a scalar, and data must have one element.
func NewValue[T Element](data []T, shape ...int64) Value {
	return Value{Shape: shape, Data: data}
}

// Float32s returns v's data if it is a []float32, and nil otherwise.
func (v Value) Float32s() []float32 { d, _ := v.Data.([]float32); return d }

// Float64s returns v's data if it is a []float64, and nil otherwise.
func (v Value) Float64s() []float64 { d, _ := v.Data.([]float64); return d }

// Int64s returns v's data if it is an []int64, and nil otherwise.
func (v Value) Int64s() []int64 { d, _ := v.Data.([]int64); return d }

// DataType returns the element type of v's data, or [Undefined] if Data is
// nil or of an unsupported type.
func (v Value) DataType() DataType {
	switch v.Data.(type) {
	case []float32:
		return Float32
	case []float64:
		return Float64
	case []int64:
		return Int64
	}
	return Undefined
}

// DataType is a tensor element type, numbered as in ONNX's
// TensorProto.DataType (and onnxruntime's ONNXTensorElementDataType).
type DataType int32

// The element types of ONNX. A [Value] can hold only [Float32], [Float64] and
// [Int64]; the others appear in [TensorInfo] for models that use them.
const (
	Undefined  DataType = 0
	Float32    DataType = 1
	Uint8      DataType = 2
	Int8       DataType = 3
	Uint16     DataType = 4
	Int16      DataType = 5
	Int32      DataType = 6
	Int64      DataType = 7
	String     DataType = 8
	Bool       DataType = 9
	Float16    DataType = 10
	Float64    DataType = 11
	Uint32     DataType = 12
	Uint64     DataType = 13
	Complex64  DataType = 14
	Complex128 DataType = 15
	BFloat16   DataType = 16
)

var dataTypeNames = [...]string{
	"undefined", "float32", "uint8", "int8", "uint16", "int16", "int32", "int64",
	"string", "bool", "float16", "float64", "uint32", "uint64", "complex64",
	"complex128", "bfloat16",
}

// String returns the Go-style name of the type, such as "float32".
func (t DataType) String() string {
	if t >= 0 && int(t) < len(dataTypeNames) {
		return dataTypeNames[t]
	}
	return fmt.Sprintf("DataType(%d)", int32(t))
}

// numElements checks that shape is valid and returns the product of its
// dimensions.
func numElements(shape []int64) (int, error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v: dimension %d is negative", shape, i)
		}
		if d != 0 && int64(n) > math.MaxInt/d {
			return 0, fmt.Errorf("shape %v: too many elements", shape)
		}
		n *= int(d)
	}
	return n, nil
}

// toORT wraps v's slice in an onnxruntime tensor without copying it (a
// scalar's one element is copied). The caller must Destroy the result.
func (v Value) toORT() (ortgo.Value, error) {
	switch d := v.Data.(type) {
	case []float32:
		return wrap(v.Shape, d)
	case []float64:
		return wrap(v.Shape, d)
	case []int64:
		return wrap(v.Shape, d)
	case nil:
		return nil, fmt.Errorf("no data")
	}
	return nil, fmt.Errorf("data of type %T: want []float32, []float64 or []int64", v.Data)
}

func wrap[T Element](shape []int64, data []T) (ortgo.Value, error) {
	n, err := numElements(shape)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, fmt.Errorf("shape %v needs %d elements, data has %d", shape, n, len(data))
	}
	if len(shape) == 0 {
		// onnxruntime_go builds 0-d tensors only as Scalars over a copy.
		return ortgo.NewScalar(data[0])
	}
	return ortgo.NewTensor(ortgo.Shape(shape), data)
}

// fromORT returns a Value holding the data of an output that onnxruntime
// allocated; onnxruntime_go has already copied it into Go memory.
func fromORT(v ortgo.Value) (Value, error) {
	shape := []int64(v.GetShape())
	switch t := v.(type) {
	case *ortgo.Tensor[float32]:
		return Value{Shape: shape, Data: t.GetData()}, nil
	case *ortgo.Tensor[float64]:
		return Value{Shape: shape, Data: t.GetData()}, nil
	case *ortgo.Tensor[int64]:
		return Value{Shape: shape, Data: t.GetData()}, nil
	}
	return Value{}, fmt.Errorf("onnxruntime value %T of type %v is not supported: want a tensor of float32, float64 or int64",
		v, DataType(v.DataType()))
}

// copyScalar copies the element of a 0-d output from the onnxruntime Scalar
// that received it into dst, since Scalars do not share Go memory.
func copyScalar(dst Value, src ortgo.Value) {
	switch s := src.(type) {
	case *ortgo.Scalar[float32]:
		dst.Float32s()[0] = s.GetData()
	case *ortgo.Scalar[float64]:
		dst.Float64s()[0] = s.GetData()
	case *ortgo.Scalar[int64]:
		dst.Int64s()[0] = s.GetData()
	}
}
