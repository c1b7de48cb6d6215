// Package onnxgrad is reverse-mode automatic differentiation over ONNX graphs.
//
// Given a classifier as an ONNX model, [Build] returns a new model that also
// computes gradients, built only from standard ONNX operators (default domain,
// opset 13 or newer) so that a stock CPU build of onnxruntime runs it. Three
// modes are offered:
//
//   - [VJP]: the vector-Jacobian product of one output with respect to graph
//     inputs; the cotangent is an extra graph input.
//   - [Jacobian]: the per-sample Jacobian of all K class scores (or the top-k
//     candidates) with respect to the input, from one shared forward pass: the
//     backward pass carries a leading class axis.
//   - [Params]: gradients with respect to initializers (weights), for training.
//
// Every supported operator has its shape rule and its gradient rule side by
// side in one file per operator family, registered in one table (see
// [SupportedOps]). An operator without a rule on the differentiated path is an
// [UnsupportedOpError], never a silently wrong gradient.
//
// The package also reads and writes ONNX files with validation ([Load],
// [Decode], [Save]) and summarises models ([Inspect]).
package onnxgrad
