package onnxgrad

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// An input of a one-node test model.
type caseInput struct {
	shape []int64
	ints  []int64 // an INT64 constant (axes, pads, shapes) when non-nil
	// fixed makes a float input a constant initializer (not differentiated).
	fixed bool
	// values, when set, replaces the random values of a float input.
	values []float64
	// symbolicBatch declares the first dimension as the symbol "N".
	symbolicBatch bool
	// bools, when non-nil, makes the input a BOOL constant (Where's
	// condition).
	bools []bool
	// elem is the type of a fixed float input when it differs from the
	// case's (CastLike's target).
	elem onnxpb.TensorProto_DataType
}

// ruleCase is a one-node model whose gradient rule is checked against
// central finite differences, and whose Jacobian mode is checked against
// the VJP with one-hot cotangents.
type ruleCase struct {
	name   string
	op     string
	attrs  []*onnxpb.AttributeProto
	inputs []caseInput
	// float32 runs the case in float32 (onnxruntime's CPU kernels for Conv,
	// ConvTranspose and AveragePool are float-only); tolerances are looser.
	float32 bool
	// kinked ops (Relu, MaxPool, Clip, Abs) get inputs kept away from their
	// kinks: |x| ≥ 0.05 and distinct.
	kinked bool
	// positive inputs, for Log and Sqrt.
	positive bool
	// mixesBatch marks ops whose output sample n depends on other samples
	// (or whose first axis is not the batch): no per-sample Jacobian check.
	mixesBatch bool
	// opset of the test model (default 13).
	opset int64
	// pre, when set, is a unary op applied to input 0 before the op, for
	// rewrites that involve two nodes (Relu → MaxPool).
	pre string
	// outs > 0 gives the op that many outputs (Split); y concatenates those
	// listed in join along joinAxis, so that outputs left out get no
	// gradient.
	outs     int
	join     []int
	joinAxis int64
}

// isGraphInput reports whether the input is a (differentiated) graph input
// rather than a constant.
func (in caseInput) isGraphInput() bool { return in.ints == nil && in.bools == nil && !in.fixed }

func f(shape ...int64) caseInput     { return caseInput{shape: shape} }
func fixed(shape ...int64) caseInput { return caseInput{shape: shape, fixed: true} }
func ints(v ...int64) caseInput      { return caseInput{shape: []int64{int64(len(v))}, ints: v} }

// ruleCases covers every registered differentiable op at least once
// (TestEveryRuleHasACase enforces it), with the attribute variants that
// change the backward graph.
var ruleCases = []ruleCase{
	{name: "Add broadcast", op: "Add", inputs: []caseInput{f(2, 3, 4), f(3, 1)}},
	{name: "Add bias", op: "Add", inputs: []caseInput{f(2, 3, 4, 4), f(1, 3, 1, 1)}},
	{name: "Sub broadcast", op: "Sub", inputs: []caseInput{f(2, 3), f(3)}},
	{name: "Sub scalar first", op: "Sub", inputs: []caseInput{f(1), f(2, 3)}, mixesBatch: true},
	{name: "Mul broadcast", op: "Mul", inputs: []caseInput{f(2, 3, 4), f(4)}},
	{name: "Mul same", op: "Mul", inputs: []caseInput{f(2, 5), f(2, 5)}},
	{name: "Div broadcast", op: "Div", inputs: []caseInput{f(2, 3), f(1, 3)}, positive: true},
	{name: "Relu", op: "Relu", inputs: []caseInput{f(3, 7)}, kinked: true},
	{name: "LeakyRelu", op: "LeakyRelu", attrs: []*onnxpb.AttributeProto{attrFloat("alpha", 0.1)}, inputs: []caseInput{f(3, 7)}, kinked: true, float32: true},
	{name: "Elu", op: "Elu", attrs: []*onnxpb.AttributeProto{attrFloat("alpha", 0.7)}, inputs: []caseInput{f(3, 7)}, kinked: true, float32: true},
	{name: "Sigmoid", op: "Sigmoid", inputs: []caseInput{f(3, 7)}},
	{name: "Tanh", op: "Tanh", inputs: []caseInput{f(3, 7)}},
	{name: "Exp", op: "Exp", inputs: []caseInput{f(3, 7)}},
	{name: "Log", op: "Log", inputs: []caseInput{f(3, 7)}, positive: true},
	{name: "Sqrt", op: "Sqrt", inputs: []caseInput{f(3, 7)}, positive: true},
	{name: "Softplus", op: "Softplus", inputs: []caseInput{f(3, 7)}, float32: true},
	{name: "Abs", op: "Abs", inputs: []caseInput{f(3, 7)}, kinked: true},
	{name: "Neg", op: "Neg", inputs: []caseInput{f(3, 7)}},
	{name: "Erf", op: "Erf", inputs: []caseInput{f(3, 7)}, float32: true},
	{name: "Reciprocal", op: "Reciprocal", inputs: []caseInput{f(3, 7)}, positive: true},
	{name: "HardSigmoid", op: "HardSigmoid", attrs: []*onnxpb.AttributeProto{attrFloat("alpha", 0.4)}, inputs: []caseInput{f(3, 7)}, kinked: true, float32: true},
	{name: "PRelu channel slope", op: "PRelu", inputs: []caseInput{f(2, 3, 4, 4), f(3, 1, 1)}, kinked: true, float32: true},
	{name: "Pow", op: "Pow", inputs: []caseInput{f(2, 3), f(3)}, positive: true},
	{name: "Sum broadcast", op: "Sum", inputs: []caseInput{f(2, 3), f(3), f(2, 1)}},
	{name: "Clip inputs", op: "Clip", inputs: []caseInput{f(3, 7), {values: []float64{-0.5}, fixed: true}, {values: []float64{0.5}, fixed: true}}, kinked: true},
	{name: "Clip min only", op: "Clip", inputs: []caseInput{f(3, 7), {values: []float64{-0.3}, fixed: true}}, kinked: true},
	{name: "Identity", op: "Identity", inputs: []caseInput{f(3, 4)}},
	{name: "Dropout eval", op: "Dropout", inputs: []caseInput{f(3, 4)}},
	{name: "Cast float to double", op: "Cast", attrs: []*onnxpb.AttributeProto{attrInt("to", int64(onnxpb.TensorProto_DOUBLE))}, inputs: []caseInput{f(3, 4)}, float32: true},
	{name: "Gemm transB bias", op: "Gemm", attrs: []*onnxpb.AttributeProto{attrInt("transB", 1)}, inputs: []caseInput{f(3, 5), f(4, 5), f(4)}},
	{name: "Gemm plain", op: "Gemm", inputs: []caseInput{f(3, 5), f(5, 4)}},
	{name: "Gemm transA alpha beta", op: "Gemm", attrs: []*onnxpb.AttributeProto{attrInt("transA", 1), attrFloat("alpha", 0.5), attrFloat("beta", 2)}, inputs: []caseInput{f(5, 3), f(5, 4), f(3, 1)}, mixesBatch: true},
	{name: "Gemm transA transB", op: "Gemm", attrs: []*onnxpb.AttributeProto{attrInt("transA", 1), attrInt("transB", 1)}, inputs: []caseInput{f(5, 3), f(4, 5), f(1, 4)}, mixesBatch: true},
	{name: "MatMul 2-D", op: "MatMul", inputs: []caseInput{f(3, 5), f(5, 4)}},
	{name: "MatMul batched broadcast", op: "MatMul", inputs: []caseInput{f(2, 3, 3, 5), f(3, 5, 4)}},
	{name: "MatMul vector right", op: "MatMul", inputs: []caseInput{f(2, 3, 5), f(5)}},
	{name: "MatMul vector left", op: "MatMul", inputs: []caseInput{f(5), f(2, 5, 4)}, mixesBatch: true},
	{name: "Conv", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("pads", []int64{1, 1, 1, 1})}, inputs: []caseInput{f(2, 3, 6, 6), f(4, 3, 3, 3), f(4)}, float32: true},
	{name: "Conv stride 2 asymmetric pads", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2, 2}), attrInts("pads", []int64{0, 1, 2, 0})}, inputs: []caseInput{f(2, 2, 7, 6), f(3, 2, 3, 2)}, float32: true},
	{name: "Conv dilation group", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("dilations", []int64{2, 2}), attrInt("group", 2), attrInts("pads", []int64{2, 2, 2, 2})}, inputs: []caseInput{f(2, 4, 6, 6), f(6, 2, 3, 3), f(6)}, float32: true},
	{name: "Conv depthwise same_upper", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInt("group", 3), attrString("auto_pad", "SAME_UPPER"), attrInts("strides", []int64{2, 2})}, inputs: []caseInput{f(2, 3, 7, 7), f(3, 1, 3, 3)}, float32: true},
	{name: "Conv stem k7 s2 p3", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2, 2}), attrInts("pads", []int64{3, 3, 3, 3})}, inputs: []caseInput{f(1, 3, 11, 11), f(2, 3, 7, 7)}, float32: true},
	// Constant kernels with 8 or more input channels take the flipped-kernel
	// Conv for the input gradient.
	{name: "Conv flipped kernel", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("pads", []int64{1, 1, 1, 1})}, inputs: []caseInput{f(2, 8, 5, 5), fixed(3, 8, 3, 3), f(3)}, float32: true},
	{name: "Conv flipped kernel dilated asymmetric pads", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("dilations", []int64{2, 1}), attrInts("pads", []int64{2, 0, 1, 2})}, inputs: []caseInput{f(2, 9, 7, 5), fixed(2, 9, 3, 3)}, float32: true},
	// Strided, constant kernel, 8 or more input channels, gY of 2×2: the
	// stride-phase Conv (ops_conv_test.go checks more geometries).
	{name: "Conv stride phases", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2, 2}), attrInts("pads", []int64{1, 1, 1, 1})}, inputs: []caseInput{f(2, 8, 3, 4), fixed(5, 8, 3, 3), f(5)}, float32: true},
	// With 4 or more channels per group the weight gradient is one product
	// of all the patches.
	{name: "Conv 4 channels stride 2 asymmetric pads", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2, 2}), attrInts("pads", []int64{0, 1, 2, 0})}, inputs: []caseInput{f(2, 4, 7, 6), f(3, 4, 3, 2)}, float32: true},
	{name: "Conv 2 groups of 4 dilated", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("dilations", []int64{2, 2}), attrInt("group", 2), attrInts("pads", []int64{2, 2, 2, 2})}, inputs: []caseInput{f(2, 8, 6, 6), f(4, 4, 3, 3), f(4)}, float32: true},
	{name: "Conv 1-D 4 channels", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("pads", []int64{1, 0}), attrInts("strides", []int64{2})}, inputs: []caseInput{f(2, 4, 9), f(3, 4, 3)}, float32: true},
	{name: "Conv 1x1", op: "Conv", inputs: []caseInput{f(2, 3, 4, 5), f(4, 3, 1, 1), f(4)}, float32: true},
	{name: "Conv 1x1 stride 2 grouped", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2, 2}), attrInt("group", 2)}, inputs: []caseInput{f(2, 4, 5, 5), f(6, 2, 1, 1)}, float32: true},
	{name: "Conv 1-D", op: "Conv", attrs: []*onnxpb.AttributeProto{attrInts("pads", []int64{1, 0}), attrInts("strides", []int64{2})}, inputs: []caseInput{f(2, 2, 9), f(3, 2, 3)}, float32: true},
	// ConvTranspose: the weight gradient goes through each of Conv's methods
	// (4 output channels per group: one product; fewer: per sample; depthwise: by Conv).
	{name: "ConvTranspose", op: "ConvTranspose", inputs: []caseInput{f(2, 3, 4, 4), f(3, 4, 3, 3), f(4)}, float32: true},
	{name: "ConvTranspose stride 2 pads output_padding group", op: "ConvTranspose", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2, 2}), attrInts("pads", []int64{1, 0, 0, 1}), attrInts("output_padding", []int64{1, 0}), attrInt("group", 2)}, inputs: []caseInput{f(2, 4, 3, 3), f(4, 1, 3, 3)}, float32: true},
	{name: "ConvTranspose dilation", op: "ConvTranspose", attrs: []*onnxpb.AttributeProto{attrInts("dilations", []int64{2, 1}), attrInts("pads", []int64{1, 1, 1, 1})}, inputs: []caseInput{f(2, 3, 3, 4), f(3, 2, 2, 3)}, float32: true},
	{name: "ConvTranspose same_upper stride 2", op: "ConvTranspose", attrs: []*onnxpb.AttributeProto{attrString("auto_pad", "SAME_UPPER"), attrInts("strides", []int64{2, 2})}, inputs: []caseInput{f(2, 3, 3, 3), f(3, 2, 3, 3)}, float32: true},
	{name: "ConvTranspose same_lower stride 2", op: "ConvTranspose", attrs: []*onnxpb.AttributeProto{attrString("auto_pad", "SAME_LOWER"), attrInts("strides", []int64{2, 2})}, inputs: []caseInput{f(2, 3, 3, 4), f(3, 2, 4, 3)}, float32: true},
	{name: "ConvTranspose output_shape crops", op: "ConvTranspose", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2, 2}), attrInts("output_shape", []int64{6, 6})}, inputs: []caseInput{f(2, 3, 3, 3), f(3, 2, 3, 3)}, float32: true},
	{name: "ConvTranspose output_shape extends", op: "ConvTranspose", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2, 2}), attrInts("output_shape", []int64{8, 7})}, inputs: []caseInput{f(2, 3, 3, 3), f(3, 2, 3, 3)}, float32: true},
	{name: "ConvTranspose 1-D k4 s2 p1", op: "ConvTranspose", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2}), attrInts("pads", []int64{1, 1})}, inputs: []caseInput{f(2, 3, 5), f(3, 3, 4), f(3)}, float32: true},
	{name: "ConvTranspose 3-D grouped", op: "ConvTranspose", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2, 1, 2}), attrInt("group", 3)}, inputs: []caseInput{f(2, 3, 2, 3, 2), f(3, 1, 2, 2, 2), f(3)}, float32: true},
	// PyTorch's usual upsamplers: ConvTranspose2d(k=4, s=2, p=1) and (k=3, s=2, p=1, output_padding=1).
	{name: "ConvTranspose k4 s2 p1", op: "ConvTranspose", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2, 2}), attrInts("pads", []int64{1, 1, 1, 1})}, inputs: []caseInput{f(2, 4, 3, 3), f(4, 3, 4, 4), f(3)}, float32: true},
	{name: "ConvTranspose k3 s2 p1 output_padding 1", op: "ConvTranspose", attrs: []*onnxpb.AttributeProto{attrInts("strides", []int64{2, 2}), attrInts("pads", []int64{1, 1, 1, 1}), attrInts("output_padding", []int64{1, 1})}, inputs: []caseInput{f(2, 3, 3, 3), f(3, 5, 3, 3), f(5)}, float32: true},
	{name: "MaxPool 2x2", op: "MaxPool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{2, 2}), attrInts("strides", []int64{2, 2})}, inputs: []caseInput{f(2, 3, 6, 6)}, kinked: true},
	{name: "MaxPool 2x2 float32 mask", op: "MaxPool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{2, 2}), attrInts("strides", []int64{2, 2})}, inputs: []caseInput{f(2, 3, 6, 6)}, kinked: true, float32: true},
	{name: "MaxPool 2x3 float32 mask", op: "MaxPool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{2, 3}), attrInts("strides", []int64{2, 3})}, inputs: []caseInput{f(2, 2, 4, 6)}, kinked: true, float32: true},
	{name: "MaxPool 1-D", op: "MaxPool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{3}), attrInts("strides", []int64{3})}, inputs: []caseInput{f(2, 2, 9)}, kinked: true},
	{name: "MaxPool 2x2 float32 floor drops a row", op: "MaxPool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{2, 2}), attrInts("strides", []int64{2, 2})}, inputs: []caseInput{f(2, 2, 5, 6)}, kinked: true, float32: true},
	{name: "MaxPool 3x3 float32 unpool pads", op: "MaxPool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{3, 3}), attrInts("strides", []int64{3, 3}), attrInts("pads", []int64{1, 1, 0, 0})}, inputs: []caseInput{f(2, 2, 8, 7)}, kinked: true, float32: true},
	{name: "MaxPool 3x3 float32 ceil past the end", op: "MaxPool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{3, 3}), attrInts("strides", []int64{3, 3}), attrInts("pads", []int64{1, 1, 0, 0}), attrInt("ceil_mode", 1)}, inputs: []caseInput{f(2, 2, 8, 7)}, kinked: true, float32: true},
	{name: "MaxPool overlapping k3 s2 p1", op: "MaxPool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{3, 3}), attrInts("strides", []int64{2, 2}), attrInts("pads", []int64{1, 1, 1, 1})}, inputs: []caseInput{f(2, 2, 7, 7)}, kinked: true},
	{name: "MaxPool ceil mode", op: "MaxPool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{3, 3}), attrInts("strides", []int64{2, 2}), attrInt("ceil_mode", 1)}, inputs: []caseInput{f(2, 2, 8, 8)}, kinked: true},
	// Build commutes Relu → MaxPool into MaxPool → Relu.
	{name: "MaxPool after Relu", op: "MaxPool", pre: "Relu", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{2, 2}), attrInts("strides", []int64{2, 2})}, inputs: []caseInput{f(2, 3, 6, 6)}, kinked: true, float32: true},
	{name: "MaxPool overlapping after Relu", op: "MaxPool", pre: "Relu", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{3, 3}), attrInts("strides", []int64{2, 2}), attrInts("pads", []int64{1, 1, 1, 1})}, inputs: []caseInput{f(2, 2, 7, 7)}, kinked: true},
	{name: "AveragePool", op: "AveragePool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{2, 2}), attrInts("strides", []int64{2, 2})}, inputs: []caseInput{f(2, 3, 6, 6)}, float32: true},
	{name: "AveragePool pads exclude", op: "AveragePool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{3, 3}), attrInts("strides", []int64{2, 2}), attrInts("pads", []int64{1, 1, 1, 1})}, inputs: []caseInput{f(2, 2, 7, 6)}, float32: true},
	{name: "AveragePool pads include", op: "AveragePool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{3, 3}), attrInts("strides", []int64{2, 2}), attrInts("pads", []int64{1, 1, 1, 1}), attrInt("count_include_pad", 1)}, inputs: []caseInput{f(2, 2, 7, 6)}, float32: true},
	{name: "AveragePool ceil exclude", op: "AveragePool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{3, 3}), attrInts("strides", []int64{2, 2}), attrInts("pads", []int64{1, 1, 1, 1}), attrInt("ceil_mode", 1)}, inputs: []caseInput{f(2, 2, 10, 10)}, float32: true},
	{name: "AveragePool ceil include", op: "AveragePool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{3, 3}), attrInts("strides", []int64{2, 2}), attrInt("ceil_mode", 1), attrInt("count_include_pad", 1)}, inputs: []caseInput{f(2, 2, 8, 8)}, float32: true},
	{name: "AveragePool floor leaves a border", op: "AveragePool", attrs: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{2, 2}), attrInts("strides", []int64{3, 3})}, inputs: []caseInput{f(2, 2, 8, 8)}, float32: true},
	{name: "GlobalAveragePool", op: "GlobalAveragePool", inputs: []caseInput{f(2, 3, 4, 5)}, float32: true},
	{name: "BatchNormalization", op: "BatchNormalization", attrs: []*onnxpb.AttributeProto{attrFloat("epsilon", 1e-3)}, inputs: []caseInput{f(2, 3, 4, 4), f(3), f(3), f(3), {shape: []int64{3}, values: []float64{0.5, 1.5, 2}}}},
	{name: "BatchNormalization 2-D", op: "BatchNormalization", inputs: []caseInput{f(4, 3), fixed(3), f(3), fixed(3), {shape: []int64{3}, values: []float64{0.5, 1.5, 2}, fixed: true}}},
	{name: "LayerNormalization last axis", op: "LayerNormalization", opset: 17, attrs: []*onnxpb.AttributeProto{attrFloat("epsilon", 1e-3)}, inputs: []caseInput{f(2, 5, 8), f(8), f(8)}},
	{name: "LayerNormalization two axes no bias", op: "LayerNormalization", opset: 17, attrs: []*onnxpb.AttributeProto{attrInt("axis", 1)}, inputs: []caseInput{f(2, 3, 4), f(3, 4)}},
	{name: "LayerNormalization axis -2 fixed scale", op: "LayerNormalization", opset: 17, attrs: []*onnxpb.AttributeProto{attrInt("axis", -2)}, inputs: []caseInput{f(2, 3, 4), fixed(3, 4), f(3, 4)}},
	{name: "LayerNormalization float32", op: "LayerNormalization", opset: 17, inputs: []caseInput{f(2, 6), f(6), f(6)}, float32: true},
	// onnxruntime runs InstanceNormalization in float32 only.
	{name: "InstanceNormalization", op: "InstanceNormalization", attrs: []*onnxpb.AttributeProto{attrFloat("epsilon", 1e-3)}, inputs: []caseInput{f(2, 3, 4, 5), f(3), f(3)}, float32: true},
	// PyTorch's GroupNorm export: [N, G, -1] with unit scale and zero bias.
	{name: "InstanceNormalization PyTorch GroupNorm", op: "InstanceNormalization", inputs: []caseInput{f(2, 4, 6), {values: []float64{1, 1, 1, 1}, fixed: true}, {values: []float64{0, 0, 0, 0}, fixed: true}}, float32: true},
	{name: "GroupNormalization opset 18 per group", op: "GroupNormalization", opset: 18, attrs: []*onnxpb.AttributeProto{attrInt("num_groups", 3), attrFloat("epsilon", 1e-3)}, inputs: []caseInput{f(2, 6, 3, 3), f(3), f(3)}},
	// Opset 21's GroupNormalization computes in float32 (stash_type 1) whatever the input type.
	{name: "GroupNormalization opset 21 per channel", op: "GroupNormalization", opset: 21, attrs: []*onnxpb.AttributeProto{attrInt("num_groups", 2)}, inputs: []caseInput{f(2, 6, 3, 3), f(6), f(6)}, float32: true},
	{name: "Softmax", op: "Softmax", inputs: []caseInput{f(3, 5)}},
	{name: "Softmax axis 1 of 3", op: "Softmax", attrs: []*onnxpb.AttributeProto{attrInt("axis", 1)}, inputs: []caseInput{f(2, 4, 3)}},
	{name: "LogSoftmax", op: "LogSoftmax", inputs: []caseInput{f(3, 5)}},
	{name: "Flatten", op: "Flatten", inputs: []caseInput{f(2, 3, 4)}},
	{name: "Flatten axis 2", op: "Flatten", attrs: []*onnxpb.AttributeProto{attrInt("axis", 2)}, inputs: []caseInput{f(2, 3, 4)}, mixesBatch: true},
	{name: "Reshape", op: "Reshape", inputs: []caseInput{f(2, 3, 4), ints(2, -1, 2)}},
	{name: "Squeeze", op: "Squeeze", inputs: []caseInput{f(2, 1, 4), ints(1)}},
	{name: "Unsqueeze", op: "Unsqueeze", inputs: []caseInput{f(2, 4), ints(1, -1)}},
	{name: "Transpose", op: "Transpose", attrs: []*onnxpb.AttributeProto{attrInts("perm", []int64{0, 2, 3, 1})}, inputs: []caseInput{f(2, 3, 4, 5)}},
	{name: "Transpose default", op: "Transpose", inputs: []caseInput{f(2, 3, 4)}, mixesBatch: true},
	{name: "Concat", op: "Concat", attrs: []*onnxpb.AttributeProto{attrInt("axis", 1)}, inputs: []caseInput{f(2, 3, 2), f(2, 1, 2), f(2, 4, 2)}},
	{name: "Concat negative axis", op: "Concat", attrs: []*onnxpb.AttributeProto{attrInt("axis", -1)}, inputs: []caseInput{f(2, 3), f(2, 2)}},
	{name: "Slice", op: "Slice", inputs: []caseInput{f(2, 10, 5), ints(2, 1), ints(8, 100), ints(1, 2)}},
	{name: "Slice negative", op: "Slice", inputs: []caseInput{f(2, 10), ints(-4), ints(-1), ints(-1), ints(1)}},
	{name: "Pad", op: "Pad", inputs: []caseInput{f(2, 3, 4), ints(0, 1, 2, 0, 2, 1)}},
	// Resize: onnxruntime runs it in float32 only. The PyTorch exports of
	// F.interpolate (see ops_resize.go) at opsets 11 (empty roi), 13 and 17,
	// then the other modes and versions.
	{name: "Resize PyTorch nearest opset 11", op: "Resize", opset: 11, attrs: torchResize("nearest", "asymmetric"), inputs: []caseInput{f(2, 3, 4, 5), fixed(0), {values: []float64{1, 1, 2, 2}, fixed: true}}, float32: true},
	{name: "Resize PyTorch nearest sizes opset 13", op: "Resize", attrs: torchResize("nearest", "asymmetric"), inputs: []caseInput{f(2, 3, 4, 5), fixed(0), fixed(0), ints(2, 3, 7, 9)}, float32: true},
	{name: "Resize PyTorch bilinear half_pixel opset 13", op: "Resize", attrs: torchResize("linear", "half_pixel"), inputs: []caseInput{f(2, 3, 4, 5), fixed(0), {values: []float64{1, 1, 2, 2}, fixed: true}}, float32: true},
	{name: "Resize PyTorch bilinear pytorch_half_pixel sizes opset 17", op: "Resize", opset: 17, attrs: torchResize("linear", "pytorch_half_pixel"), inputs: []caseInput{f(2, 3, 4, 5), fixed(0), fixed(0), ints(2, 3, 5, 7)}, float32: true},
	{name: "Resize PyTorch bilinear align_corners opset 11", op: "Resize", opset: 11, attrs: torchResize("linear", "align_corners"), inputs: []caseInput{f(2, 3, 4, 5), fixed(0), {values: []float64{1, 1, 1.5, 1.5}, fixed: true}}, float32: true},
	{name: "Resize PyTorch bicubic", op: "Resize", attrs: torchResize("cubic", "half_pixel"), inputs: []caseInput{f(2, 3, 4, 5), fixed(0), {values: []float64{1, 1, 2, 2}, fixed: true}}, float32: true},
	{name: "Resize nearest shrink round_prefer_ceil", op: "Resize", attrs: []*onnxpb.AttributeProto{attrString("nearest_mode", "round_prefer_ceil")}, inputs: []caseInput{f(2, 3, 6, 5), fixed(0), {values: []float64{1, 1, 0.5, 0.7}, fixed: true}}, float32: true},
	{name: "Resize cubic exclude_outside", op: "Resize", attrs: []*onnxpb.AttributeProto{attrString("mode", "cubic"), attrInt("exclude_outside", 1), attrFloat("cubic_coeff_a", -0.5)}, inputs: []caseInput{f(2, 3, 4, 5), fixed(0), {values: []float64{1, 1, 1.5, 0.8}, fixed: true}}, float32: true},
	{name: "Resize bilinear NHWC", op: "Resize", attrs: []*onnxpb.AttributeProto{attrString("mode", "linear")}, inputs: []caseInput{f(2, 4, 5, 3), fixed(0), {values: []float64{1, 2, 1.5, 1}, fixed: true}}, float32: true},
	{name: "Resize trilinear 3-D", op: "Resize", attrs: []*onnxpb.AttributeProto{attrString("mode", "linear")}, inputs: []caseInput{f(3, 4, 5), fixed(0), {values: []float64{1, 2, 0.6}, fixed: true}}, float32: true},
	{name: "Resize opset 18 axes", op: "Resize", opset: 18, attrs: []*onnxpb.AttributeProto{attrString("mode", "linear"), attrInts("axes", []int64{3, 2})}, inputs: []caseInput{f(2, 3, 4, 5), fixed(0), {values: []float64{1.5, 2}, fixed: true}}, float32: true},
	{name: "Resize opset 18 keep aspect ratio", op: "Resize", opset: 18, attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{2, 3}), attrString("keep_aspect_ratio_policy", "not_larger")}, inputs: []caseInput{f(2, 3, 4, 5), fixed(0), fixed(0), ints(7, 3)}, float32: true},
	// Resize-10 and Upsample are rewritten as Resize-13 first.
	{name: "Resize opset 10 nearest", op: "Resize", opset: 10, inputs: []caseInput{f(2, 3, 4, 5), {values: []float64{1, 1, 2, 3}, fixed: true}}, float32: true},
	{name: "Resize opset 10 linear", op: "Resize", opset: 10, attrs: []*onnxpb.AttributeProto{attrString("mode", "linear")}, inputs: []caseInput{f(2, 3, 4, 5), {values: []float64{1, 1, 2, 2}, fixed: true}}, float32: true},
	{name: "Upsample opset 9 nearest", op: "Upsample", opset: 9, inputs: []caseInput{f(2, 3, 4, 5), {values: []float64{1, 1, 2, 2}, fixed: true}}, float32: true},
	{name: "Upsample opset 9 linear", op: "Upsample", opset: 9, attrs: []*onnxpb.AttributeProto{attrString("mode", "linear")}, inputs: []caseInput{f(2, 3, 4, 5), {values: []float64{1, 1, 2, 1.5}, fixed: true}}, float32: true},
	{name: "Upsample opset 7 scales attribute", op: "Upsample", opset: 7, attrs: []*onnxpb.AttributeProto{attrFloats("scales", 1, 1, 2, 2)}, inputs: []caseInput{f(2, 3, 4, 5)}, float32: true},
	{name: "Gather scalar", op: "Gather", attrs: []*onnxpb.AttributeProto{attrInt("axis", 1)}, inputs: []caseInput{f(2, 5, 3), {shape: []int64{}, ints: []int64{3}}}},
	{name: "Gather repeated", op: "Gather", attrs: []*onnxpb.AttributeProto{attrInt("axis", 2)}, inputs: []caseInput{f(2, 3, 4), {shape: []int64{2, 2}, ints: []int64{1, 3, 1, -1}}}},
	{name: "Expand", op: "Expand", inputs: []caseInput{f(2, 1, 3), ints(2, 4, 3)}},
	{name: "ReduceSum keepdims", op: "ReduceSum", inputs: []caseInput{f(2, 3, 4), ints(1)}},
	{name: "ReduceSum no keepdims", op: "ReduceSum", attrs: []*onnxpb.AttributeProto{attrInt("keepdims", 0)}, inputs: []caseInput{f(2, 3, 4), ints(2, 1)}},
	{name: "ReduceMean", op: "ReduceMean", attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{2, 3})}, inputs: []caseInput{f(2, 3, 4, 5)}},
	{name: "ReduceMean no keepdims", op: "ReduceMean", attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{-1}), attrInt("keepdims", 0)}, inputs: []caseInput{f(2, 3, 4)}},
	{name: "ReduceMean opset 18", op: "ReduceMean", opset: 18, inputs: []caseInput{f(2, 3, 4), ints(1)}},
	{name: "ReduceMean over the batch", op: "ReduceMean", attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{0, 2})}, inputs: []caseInput{{shape: []int64{3, 2, 4}, symbolicBatch: true}}, mixesBatch: true},
	// Models older than opset 13 are upgraded before differentiation.
	{name: "Unsqueeze opset 11", op: "Unsqueeze", opset: 11, attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{0, 3})}, inputs: []caseInput{f(2, 4)}, mixesBatch: true},
	{name: "Squeeze opset 11", op: "Squeeze", opset: 11, attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{1})}, inputs: []caseInput{f(2, 1, 4)}},
	{name: "ReduceSum opset 11", op: "ReduceSum", opset: 11, attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{1}), attrInt("keepdims", 0)}, inputs: []caseInput{f(2, 3, 4)}},
	{name: "Softmax opset 11 coerced", op: "Softmax", opset: 11, inputs: []caseInput{f(2, 3, 4)}},
	{name: "LogSoftmax opset 11 last axis", op: "LogSoftmax", opset: 11, attrs: []*onnxpb.AttributeProto{attrInt("axis", 1)}, inputs: []caseInput{f(3, 5)}},
	{name: "Clip opset 9 attributes", op: "Clip", opset: 9, attrs: []*onnxpb.AttributeProto{attrFloat("min", -0.5), attrFloat("max", 0.5)}, inputs: []caseInput{f(3, 7)}, kinked: true, float32: true},
	{name: "Pad opset 9 attributes", op: "Pad", opset: 9, attrs: []*onnxpb.AttributeProto{attrInts("pads", []int64{0, 1, 2, 0, 2, 1})}, inputs: []caseInput{f(2, 3, 4)}},
	{name: "Slice opset 9 attributes", op: "Slice", opset: 9, attrs: []*onnxpb.AttributeProto{attrInts("starts", []int64{1}), attrInts("ends", []int64{4}), attrInts("axes", []int64{1})}, inputs: []caseInput{f(2, 6)}},
	{name: "Dropout opset 10", op: "Dropout", opset: 10, attrs: []*onnxpb.AttributeProto{attrFloat("ratio", 0.3)}, inputs: []caseInput{f(3, 4)}},
	// HardSwish's inputs span its three pieces, kept ≥ 0.17 from the kinks at ±3.
	{name: "HardSwish", op: "HardSwish", opset: 14, inputs: []caseInput{{shape: []int64{3, 7}, values: linspace(-4.7, 4.7, 21)}}, float32: true},
	{name: "Selu", op: "Selu", inputs: []caseInput{f(3, 7)}, kinked: true, float32: true},
	{name: "Selu attributes", op: "Selu", attrs: []*onnxpb.AttributeProto{attrFloat("alpha", 1.5), attrFloat("gamma", 2)}, inputs: []caseInput{f(3, 7)}, kinked: true, float32: true},
	{name: "Softsign", op: "Softsign", inputs: []caseInput{f(3, 7)}, float32: true},
	// kinked values are ±(0.05 + 0.02k): none within 0.01 of α = 0.2.
	{name: "ThresholdedRelu", op: "ThresholdedRelu", attrs: []*onnxpb.AttributeProto{attrFloat("alpha", 0.2)}, inputs: []caseInput{f(3, 7)}, kinked: true, float32: true},
	{name: "Sin", op: "Sin", inputs: []caseInput{f(3, 7)}},
	{name: "Cos", op: "Cos", inputs: []caseInput{f(3, 7)}},
	// Tan's inputs stay away from its poles at ±π/2; Asin, Acos and Atanh
	// are defined on (−1, 1), Acosh above 1, and their inputs stay where the
	// third derivatives, which scale the float32 truncation error, are small.
	// onnxruntime's CPU kernels of all but Sin and Cos are float-only.
	{name: "Tan", op: "Tan", inputs: []caseInput{{shape: []int64{3, 7}, values: linspace(-1.2, 1.2, 21)}}, float32: true},
	{name: "Asin", op: "Asin", inputs: []caseInput{{shape: []int64{3, 7}, values: linspace(-0.6, 0.6, 21)}}, float32: true},
	{name: "Acos", op: "Acos", inputs: []caseInput{{shape: []int64{3, 7}, values: linspace(-0.6, 0.6, 21)}}, float32: true},
	{name: "Atan", op: "Atan", inputs: []caseInput{f(3, 7)}, float32: true},
	{name: "Sinh", op: "Sinh", inputs: []caseInput{f(3, 7)}, float32: true},
	{name: "Cosh", op: "Cosh", inputs: []caseInput{f(3, 7)}, float32: true},
	{name: "Asinh", op: "Asinh", inputs: []caseInput{f(3, 7)}, float32: true},
	{name: "Acosh", op: "Acosh", inputs: []caseInput{{shape: []int64{3, 7}, values: linspace(1.1, 3, 21)}}, float32: true},
	{name: "Atanh", op: "Atanh", inputs: []caseInput{{shape: []int64{3, 7}, values: linspace(-0.6, 0.6, 21)}}, float32: true},
	{name: "Celu", op: "Celu", opset: 12, attrs: []*onnxpb.AttributeProto{attrFloat("alpha", 0.7)}, inputs: []caseInput{f(3, 7)}, float32: true},
	{name: "Mish", op: "Mish", opset: 18, inputs: []caseInput{f(3, 7)}},
	{name: "Gelu", op: "Gelu", opset: 20, inputs: []caseInput{f(3, 7)}, float32: true},
	{name: "Gelu tanh", op: "Gelu", opset: 20, attrs: []*onnxpb.AttributeProto{attrString("approximate", "tanh")}, inputs: []caseInput{f(3, 7)}},
	// kinked values are ±(0.05 + 0.02k): none within 0.01 of ±λ = ±0.2.
	// float32: onnxruntime's double Shrink rounds its results to float.
	{name: "Shrink", op: "Shrink", attrs: []*onnxpb.AttributeProto{attrFloat("lambd", 0.2), attrFloat("bias", 0.1)}, inputs: []caseInput{f(3, 7)}, kinked: true, float32: true},
	// Piecewise constant: kinked values stay 0.05 away from the jumps of
	// Floor, Ceil and Sign at 0, 0.01 away from Round's at ±0.5, and
	// distinct for Hardmax, so central differences see the zero gradient.
	{name: "Floor", op: "Floor", inputs: []caseInput{f(3, 7)}, kinked: true},
	{name: "Ceil", op: "Ceil", inputs: []caseInput{f(3, 7)}, kinked: true},
	{name: "Round", op: "Round", inputs: []caseInput{f(3, 7)}, kinked: true},
	{name: "Sign", op: "Sign", inputs: []caseInput{f(3, 7)}, kinked: true},
	{name: "Hardmax", op: "Hardmax", inputs: []caseInput{f(2, 3, 4)}, kinked: true, float32: true},
	{name: "Hardmax opset 11 coerced", op: "Hardmax", opset: 11, inputs: []caseInput{f(2, 3, 4)}, kinked: true, float32: true},
	// Indices repeat (gradients accumulate) and count from the end.
	{name: "GatherElements", op: "GatherElements", attrs: []*onnxpb.AttributeProto{attrInt("axis", 1)}, inputs: []caseInput{f(2, 4, 3), {shape: []int64{2, 2, 3}, ints: []int64{0, 3, -1, 0, 1, 2, 3, 3, 0, -4, 2, 1}}}},
	{name: "GatherElements last axis", op: "GatherElements", attrs: []*onnxpb.AttributeProto{attrInt("axis", -1)}, inputs: []caseInput{f(2, 3), {shape: []int64{2, 4}, ints: []int64{2, 2, 0, 1, 1, 0, 0, -1}}}},
	// α large enough that the cross-channel term matters.
	{name: "LRN", op: "LRN", attrs: []*onnxpb.AttributeProto{attrInt("size", 3), attrFloat("alpha", 0.8), attrFloat("beta", 0.75), attrFloat("bias", 1.2)}, inputs: []caseInput{f(2, 5, 3, 2)}, float32: true},
	{name: "LRN window wider than channels", op: "LRN", attrs: []*onnxpb.AttributeProto{attrInt("size", 5), attrFloat("alpha", 0.5), attrFloat("beta", 0.6)}, inputs: []caseInput{f(2, 3, 2, 2)}, float32: true},
	{name: "CastLike float to double", op: "CastLike", opset: 15, inputs: []caseInput{f(3, 4), {shape: []int64{1}, fixed: true, elem: onnxpb.TensorProto_DOUBLE}}, float32: true},
	// Random normal inputs tie with probability 0.
	{name: "Max broadcast", op: "Max", inputs: []caseInput{f(2, 3, 4), f(3, 1), f(4)}},
	{name: "Max two", op: "Max", inputs: []caseInput{f(2, 5), f(2, 5)}},
	{name: "Max one", op: "Max", inputs: []caseInput{f(2, 5)}},
	{name: "Min broadcast", op: "Min", inputs: []caseInput{f(2, 3), f(3)}},
	{name: "Mean broadcast", op: "Mean", inputs: []caseInput{f(2, 3, 4), f(3, 1), f(2, 1, 4)}, float32: true},
	{name: "Where broadcast", op: "Where", inputs: []caseInput{{shape: []int64{2, 1, 4}, bools: []bool{true, false, false, true, true, true, false, false}}, f(2, 3, 4), f(3, 1)}},
	{name: "Where condition wider", op: "Where", inputs: []caseInput{{shape: []int64{2, 3}, bools: []bool{true, false, true, false, false, true}}, f(2, 1), f(3)}},
	{name: "ReduceMax", op: "ReduceMax", attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{1})}, inputs: []caseInput{f(2, 3, 4)}, kinked: true},
	{name: "ReduceMax opset 18 no keepdims", op: "ReduceMax", opset: 18, attrs: []*onnxpb.AttributeProto{attrInt("keepdims", 0)}, inputs: []caseInput{f(2, 3, 4), ints(2, -2)}, kinked: true},
	{name: "ReduceMin", op: "ReduceMin", attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{-1}), attrInt("keepdims", 0)}, inputs: []caseInput{f(2, 3, 4)}, kinked: true},
	{name: "ReduceMin all axes", op: "ReduceMin", inputs: []caseInput{f(2, 3, 4)}, kinked: true, mixesBatch: true},
	{name: "ReduceSumSquare", op: "ReduceSumSquare", attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{1, 2})}, inputs: []caseInput{f(2, 3, 4)}},
	{name: "ReduceL1", op: "ReduceL1", attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{2}), attrInt("keepdims", 0)}, inputs: []caseInput{f(2, 3, 4)}, kinked: true},
	{name: "ReduceL2", op: "ReduceL2", attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{1})}, inputs: []caseInput{f(2, 3, 4)}},
	{name: "ReduceL2 opset 18", op: "ReduceL2", opset: 18, attrs: []*onnxpb.AttributeProto{attrInt("keepdims", 0)}, inputs: []caseInput{f(2, 3, 4), ints(1, 2)}},
	{name: "ReduceLogSumExp", op: "ReduceLogSumExp", attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{-1}), attrInt("keepdims", 0)}, inputs: []caseInput{f(2, 3, 4)}},
	{name: "ReduceProd", op: "ReduceProd", attrs: []*onnxpb.AttributeProto{attrInts("axes", []int64{1})}, inputs: []caseInput{f(2, 3, 4)}},
	// Groups (along axis 2) with no zero, one zero and two zeros; the
	// product is multilinear, so central differences stay exact at zeros.
	{name: "ReduceProd zeros", op: "ReduceProd", opset: 18, attrs: []*onnxpb.AttributeProto{attrInt("keepdims", 0)}, inputs: []caseInput{{shape: []int64{2, 3, 3}, values: []float64{
		0.5, -1.2, 0.9, 0, 1.1, -0.7, 0, 0, 1.3,
		1.4, 0, -0.6, 0.8, 0.3, -1.5, 0, 2, 0}}, ints(2)}},
	{name: "Split uneven", op: "Split", attrs: []*onnxpb.AttributeProto{attrInt("axis", 1)}, inputs: []caseInput{f(2, 7, 3), ints(3, 3, 1)}, outs: 3, join: []int{2, 0}, joinAxis: 1},
	{name: "Split num_outputs", op: "Split", opset: 18, attrs: []*onnxpb.AttributeProto{attrInt("axis", -1), attrInt("num_outputs", 3)}, inputs: []caseInput{f(2, 3, 7)}, outs: 3, join: []int{1, 2, 0}, joinAxis: 2},
	{name: "Split equal", op: "Split", attrs: []*onnxpb.AttributeProto{attrInt("axis", 1)}, inputs: []caseInput{f(2, 4)}, outs: 2, join: []int{1}, joinAxis: 1},
	{name: "Split opset 11 attribute", op: "Split", opset: 11, attrs: []*onnxpb.AttributeProto{attrInt("axis", 1), attrInts("split", []int64{1, 3})}, inputs: []caseInput{f(2, 4)}, outs: 2, join: []int{1, 0}, joinAxis: 1},
	{name: "DepthToSpace DCR", op: "DepthToSpace", attrs: []*onnxpb.AttributeProto{attrInt("blocksize", 2)}, inputs: []caseInput{f(2, 8, 3, 2)}},
	{name: "DepthToSpace CRD", op: "DepthToSpace", attrs: []*onnxpb.AttributeProto{attrInt("blocksize", 2), attrString("mode", "CRD")}, inputs: []caseInput{f(2, 8, 3, 2)}},
	{name: "SpaceToDepth", op: "SpaceToDepth", attrs: []*onnxpb.AttributeProto{attrInt("blocksize", 2)}, inputs: []caseInput{f(2, 3, 4, 6)}},
	{name: "Tile", op: "Tile", inputs: []caseInput{f(2, 3, 2), ints(1, 2, 3)}},
	{name: "Tile batch", op: "Tile", inputs: []caseInput{{shape: []int64{2, 3}, symbolicBatch: true}, ints(3, 2)}, mixesBatch: true},
	{name: "Tile symbolic batch", op: "Tile", inputs: []caseInput{{shape: []int64{2, 3, 2}, symbolicBatch: true}, ints(1, 1, 2)}},
	{name: "Slice flip", op: "Slice", inputs: []caseInput{f(2, 3, 5), ints(-1), ints(math.MinInt64 + 1), ints(2), ints(-1)}},
	{name: "Slice step 2", op: "Slice", inputs: []caseInput{f(2, 9), ints(1), ints(9), ints(1), ints(2)}},
	{name: "Slice step 3 crop", op: "Slice", inputs: []caseInput{f(2, 10), ints(0), ints(100), ints(1), ints(3)}},
	{name: "Slice step -2", op: "Slice", inputs: []caseInput{f(2, 10, 3), ints(8, 1), ints(0, 3), ints(1, 2), ints(-2, 1)}},
	{name: "Slice steps on two axes symbolic batch", op: "Slice", inputs: []caseInput{{shape: []int64{2, 7, 6}, symbolicBatch: true}, ints(-1, 1), ints(-100, 6), ints(1, 2), ints(-3, 2)}},
	{name: "Einsum batched matmul", op: "Einsum", attrs: []*onnxpb.AttributeProto{attrString("equation", "bij,bjk->bik")}, inputs: []caseInput{f(2, 3, 4), f(2, 4, 5)}},
	{name: "Einsum attention", op: "Einsum", attrs: []*onnxpb.AttributeProto{attrString("equation", "bhqd,bhkd->bhqk")}, inputs: []caseInput{f(2, 2, 3, 4), f(2, 2, 5, 4)}},
	{name: "Einsum ellipsis", op: "Einsum", attrs: []*onnxpb.AttributeProto{attrString("equation", "...ij,...jk->...ik")}, inputs: []caseInput{f(2, 3, 4, 5), f(2, 3, 5, 2)}},
	{name: "Einsum ellipsis broadcast", op: "Einsum", attrs: []*onnxpb.AttributeProto{attrString("equation", "...ij,...jk->...ik")}, inputs: []caseInput{f(2, 1, 4, 5), f(2, 3, 5, 2)}},
	{name: "Einsum channel contraction", op: "Einsum", attrs: []*onnxpb.AttributeProto{attrString("equation", "nchw,oc->nohw")}, inputs: []caseInput{f(2, 3, 4, 2), f(5, 3)}},
	{name: "Einsum index of one operand", op: "Einsum", attrs: []*onnxpb.AttributeProto{attrString("equation", "bij,bjk->bk")}, inputs: []caseInput{f(2, 3, 4), f(2, 4, 5)}},
	{name: "Einsum implicit", op: "Einsum", attrs: []*onnxpb.AttributeProto{attrString("equation", "ij,jk")}, inputs: []caseInput{f(2, 4), f(4, 3)}},
	{name: "Einsum transpose", op: "Einsum", attrs: []*onnxpb.AttributeProto{attrString("equation", "ij->ji")}, inputs: []caseInput{f(2, 3)}, mixesBatch: true},
	{name: "Einsum sum", op: "Einsum", attrs: []*onnxpb.AttributeProto{attrString("equation", "bij->bi")}, inputs: []caseInput{f(2, 3, 4)}},
}

// TestEveryRuleHasACase is the conformance check: a registered gradient
// rule without a finite-difference case fails the build.
func TestEveryRuleHasACase(t *testing.T) {
	for _, op := range SupportedOps() {
		if !slices.ContainsFunc(ruleCases, func(c ruleCase) bool { return c.op == op }) {
			t.Errorf("op %s has a gradient rule but no case in ruleCases", op)
		}
	}
}

// caseModel builds the one-node model of c with float inputs as graph
// inputs (so they can be perturbed) and integer inputs as initializers.
func caseModel(c ruleCase, elem onnxpb.TensorProto_DataType) (*onnxpb.ModelProto, []string) {
	g := &onnxpb.GraphProto{Name: proto.String("case")}
	var names, diff []string
	for i, in := range c.inputs {
		name := fmt.Sprintf("in%d", i)
		names = append(names, name)
		switch {
		case in.ints != nil:
			g.Initializer = append(g.Initializer, newTensorInt64(name, in.shape, in.ints))
		case in.bools != nil:
			g.Initializer = append(g.Initializer, newTensorBool(name, in.shape, in.bools))
		case in.fixed && in.elem != onnxpb.TensorProto_UNDEFINED:
			g.Initializer = append(g.Initializer, newTensorFloat(name, in.elem, caseShape(in), caseValues(c, in, i)))
		case in.fixed:
			g.Initializer = append(g.Initializer, newTensorFloat(name, elem, caseShape(in), caseValues(c, in, i)))
		default:
			shape := shapeOf(caseShape(in))
			if in.symbolicBatch {
				shape[0] = Dim{Param: "N"}
			}
			g.Input = append(g.Input, tensorValueInfo(name, elem, shape))
			diff = append(diff, name)
		}
	}
	outElem := elem
	switch c.op {
	case "Cast":
		outElem = onnxpb.TensorProto_DataType(c.attrs[0].GetI())
	case "CastLike":
		outElem = c.inputs[1].elem
	}
	g.Node = []*onnxpb.NodeProto{{Name: proto.String("node"), OpType: proto.String(c.op), Input: names, Output: []string{"y"}, Attribute: c.attrs}}
	if c.outs > 0 {
		var outs, joined []string
		for i := range c.outs {
			outs = append(outs, fmt.Sprintf("o%d", i))
		}
		for _, i := range c.join {
			joined = append(joined, outs[i])
		}
		g.Node[0].Output = outs
		g.Node = append(g.Node, &onnxpb.NodeProto{Name: proto.String("join"), OpType: proto.String("Concat"), Input: joined, Output: []string{"y"}, Attribute: []*onnxpb.AttributeProto{attrInt("axis", c.joinAxis)}})
	}
	if c.pre != "" {
		g.Node = append([]*onnxpb.NodeProto{{Name: proto.String("pre"), OpType: proto.String(c.pre), Input: names[:1], Output: []string{"pre"}}}, g.Node...)
		g.Node[1].Input = append([]string{"pre"}, names[1:]...)
	}
	g.Output = []*onnxpb.ValueInfoProto{tensorValueInfo("y", outElem, nil)}
	opset := c.opset
	if opset == 0 {
		opset = 13
	}
	return &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}}}, diff
}

// newTensorBool returns a BOOL tensor.
func newTensorBool(name string, dims []int64, vals []bool) *onnxpb.TensorProto {
	t := &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_BOOL))}
	for _, v := range vals {
		t.Int32Data = append(t.Int32Data, int32(boolDim(v).Value))
	}
	return t
}

// linspace returns n values evenly spaced from lo to hi, for inputs that
// must cover several pieces of a piecewise function (HardSwish).
func linspace(lo, hi float64, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = lo + (hi-lo)*float64(i)/float64(n-1)
	}
	return v
}

func caseShape(in caseInput) []int64 {
	if in.shape == nil && in.values != nil {
		return []int64{int64(len(in.values))}
	}
	return in.shape
}

// caseValues returns the values of float input i: fixed ones, or seeded
// random ones shaped by the case's needs.
func caseValues(c ruleCase, in caseInput, i int) []float64 {
	if in.values != nil {
		return in.values
	}
	n, _ := numElements(caseShape(in))
	rng := rand.New(rand.NewPCG(uint64(i)+1, uint64(len(c.name))))
	v := make([]float64, n)
	switch {
	case c.kinked:
		// magnitudes 0.05 + 0.02·k for distinct k, random signs: neighbours
		// differ by at least 0.02, far more than the finite-difference
		// perturbations (h·|u| ≲ 0.005), so no MaxPool argmax changes and no
		// value crosses the kinks of Relu, Abs and Clip's bounds.
		perm := rng.Perm(int(n))
		for j := range v {
			v[j] = 0.05 + 0.02*float64(perm[j])
			if rng.IntN(2) == 0 {
				v[j] = -v[j]
			}
			if math.Abs(math.Abs(v[j])-0.5) < 0.01 || math.Abs(math.Abs(v[j])-0.3) < 0.01 {
				v[j] += 0.01 // keep off Clip's bounds
			}
		}
	case c.positive:
		for j := range v {
			v[j] = 0.5 + rng.Float64()
		}
	default:
		for j := range v {
			v[j] = rng.NormFloat64()
		}
	}
	return v
}

// TestIsConst checks which tensors the rules may treat as constants folded
// by onnxruntime.
func TestIsConst(t *testing.T) {
	m := &onnxpb.ModelProto{Graph: &onnxpb.GraphProto{
		Input: []*onnxpb.ValueInfoProto{
			tensorValueInfo("x", onnxpb.TensorProto_FLOAT, nil),
			tensorValueInfo("overridable", onnxpb.TensorProto_FLOAT, nil),
		},
		Initializer: []*onnxpb.TensorProto{
			NewTensorFloat32("w", []int64{1}, []float32{1}),
			NewTensorFloat32("overridable", []int64{1}, []float32{1}),
		},
		Node: []*onnxpb.NodeProto{
			{OpType: proto.String("Constant"), Output: []string{"c"}, Attribute: []*onnxpb.AttributeProto{attrTensor("value", NewTensorFloat32("", []int64{1}, []float32{1}))}},
			{OpType: proto.String("Relu"), Input: []string{"x"}, Output: []string{"y"}},
		},
	}}
	gr := newGraph(m, "")
	for name, want := range map[string]bool{"w": true, "c": true, "x": false, "overridable": false, "y": false} {
		if got := gr.isConst(name); got != want {
			t.Errorf("isConst(%q) = %v; want %v", name, got, want)
		}
	}
}
