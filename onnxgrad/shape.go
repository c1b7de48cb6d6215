package onnxgrad

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// Dim is one dimension of a tensor shape, or one element of an integer
// tensor whose value is tracked for shape arithmetic. It is either a known
// value (Param == "") or a symbol (Param != ""), such as the batch size "N".
// The symbol "?" stands for an unknown, anonymous value.
type Dim struct {
	Value int64
	Param string
}

// unknownDim is a value nothing is known about.
var unknownDim = Dim{Param: "?"}

// Known reports whether the dimension has a known value.
func (d Dim) Known() bool { return d.Param == "" }

func (d Dim) String() string {
	if d.Known() {
		return strconv.FormatInt(d.Value, 10)
	}
	return d.Param
}

func known(v int64) Dim { return Dim{Value: v} }

// isAnonymous reports whether d is an unknown dimension without a name of
// its own: "?" or the "?name:i" symbols given to undeclared sizes.
func isAnonymous(d Dim) bool { return !d.Known() && strings.HasPrefix(d.Param, "?") }

// Shape is a tensor shape. A nil Shape with ok=false in tensorInfo means the
// rank is unknown.
type Shape []Dim

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Static returns the dimensions as int64 if all are known.
func (s Shape) Static() ([]int64, bool) {
	out := make([]int64, len(s))
	for i, d := range s {
		if !d.Known() {
			return nil, false
		}
		out[i] = d.Value
	}
	return out, true
}

func shapeOf(dims []int64) Shape {
	s := make(Shape, len(dims))
	for i, d := range dims {
		s[i] = known(d)
	}
	return s
}

// sameDim reports whether two dims are certainly equal.
func sameDim(a, b Dim) bool {
	if a.Known() != b.Known() {
		return false
	}
	if a.Known() {
		return a.Value == b.Value
	}
	return a.Param != "?" && a.Param == b.Param
}

// tensorInfo is what inference knows of a tensor: element type, shape (when
// the rank is known) and, for small integer tensors on shape sub-graphs, the
// values themselves.
type tensorInfo struct {
	elem     onnxpb.TensorProto_DataType
	shape    Shape
	hasShape bool
	value    []Dim // integer values, when tracked
	isConst  bool  // an initializer or the output of constant-only computation
}

func (t *tensorInfo) rank() int { return len(t.shape) }

func (t *tensorInfo) String() string {
	if t == nil {
		return "unknown tensor"
	}
	if !t.hasShape {
		return t.elem.String() + " of unknown shape"
	}
	return t.elem.String() + t.shape.String()
}

// infoFromValueInfo converts a graph input/output/value_info declaration.
func infoFromValueInfo(vi *onnxpb.ValueInfoProto) *tensorInfo {
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return nil
	}
	info := &tensorInfo{elem: onnxpb.TensorProto_DataType(tt.GetElemType())}
	if sh := tt.GetShape(); sh != nil {
		info.hasShape = true
		info.shape = make(Shape, len(sh.GetDim()))
		for i, d := range sh.GetDim() {
			switch {
			case d.GetDimParam() != "":
				info.shape[i] = Dim{Param: d.GetDimParam()}
			case d.GetValue() != nil && d.GetDimValue() > 0:
				info.shape[i] = known(d.GetDimValue())
			default:
				// dim_value 0 or absent: unknown. Give it a unique symbol so that
				// two unknown dimensions are never taken as equal.
				info.shape[i] = Dim{Param: fmt.Sprintf("?%s:%d", vi.GetName(), i)}
			}
		}
	}
	return info
}

// infoFromTensor describes an initializer or a Constant's value.
func infoFromTensor(t *onnxpb.TensorProto) *tensorInfo {
	info := &tensorInfo{elem: onnxpb.TensorProto_DataType(t.GetDataType()), shape: shapeOf(t.GetDims()), hasShape: true, isConst: true}
	if n, err := numElements(t.GetDims()); err == nil && n <= maxTrackedValues {
		if vals, err := tensorInt64s(t); err == nil {
			info.value = make([]Dim, len(vals))
			for i, v := range vals {
				info.value[i] = known(v)
			}
		}
	}
	return info
}

// maxTrackedValues bounds the integer tensors whose values inference tracks;
// shape tensors are tiny.
const maxTrackedValues = 64

// broadcastShapes applies ONNX multidirectional broadcasting.
func broadcastShapes(shapes ...Shape) (Shape, error) {
	r := 0
	for _, s := range shapes {
		r = max(r, len(s))
	}
	out := make(Shape, r)
	for i := range out {
		out[i] = known(1)
	}
	for _, s := range shapes {
		off := r - len(s)
		for i, d := range s {
			o := &out[off+i]
			switch {
			case d.Known() && d.Value == 1:
			case o.Known() && o.Value == 1:
				*o = d
			case sameDim(*o, d):
			case !o.Known() && d.Known():
				*o = d // a symbol broadcast against a value must equal it
			case o.Known() && !d.Known():
			case !o.Known() && !d.Known():
				// two different symbols: keep the first
			default:
				return nil, fmt.Errorf("shapes %v cannot be broadcast together", shapes)
			}
		}
	}
	return out, nil
}

// productDims multiplies dims, keeping symbols as a multiset. It returns the
// known factor and the symbolic factors.
func productDims(ds []Dim) (int64, []string) {
	p := int64(1)
	var syms []string
	for _, d := range ds {
		if d.Known() {
			p *= d.Value
		} else {
			syms = append(syms, d.Param)
		}
	}
	return p, syms
}

// divideDims returns num/den when the symbols of den cancel against those of
// num, leaving at most one symbol, and the known part divides evenly.
func divideDims(num, den []Dim) Dim {
	pn, sn := productDims(num)
	pd, sd := productDims(den)
	rest := append([]string(nil), sn...)
	for _, s := range sd {
		found := false
		for i, r := range rest {
			if r == s && s != "?" {
				rest = append(rest[:i], rest[i+1:]...)
				found = true
				break
			}
		}
		if !found {
			return unknownDim
		}
	}
	if pd == 0 || pn%pd != 0 {
		return unknownDim
	}
	switch {
	case len(rest) == 0:
		return known(pn / pd)
	case len(rest) == 1 && pn == pd:
		return Dim{Param: rest[0]}
	}
	return unknownDim
}

// normAxis maps a possibly negative axis into [0, rank).
func normAxis(a int64, rank int) (int, error) {
	if a < -int64(rank) || a >= int64(rank) {
		return 0, fmt.Errorf("axis %d out of range for rank %d", a, rank)
	}
	if a < 0 {
		a += int64(rank)
	}
	return int(a), nil
}
