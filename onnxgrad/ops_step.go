package onnxgrad

// Piecewise-constant operators: Floor, Ceil, Round, Sign and Hardmax. Their
// derivative is zero wherever it exists and undefined at the jumps; like
// PyTorch (torch.floor, ceil, round, sign and a one-hot argmax all have
// zero gradients), onnxgrad gives them a zero gradient everywhere. So no
// gradient reaches the ops before them through these: DeepFool and PGD see
// no signal through such a path, and a margin that depends on it alone is
// not found by the attacks.

// gradZero is the gradient rule of the piecewise-constant ops
// (https://onnx.ai/onnx/operators/onnx__Floor.html,
// https://onnx.ai/onnx/operators/onnx__Ceil.html,
// https://onnx.ai/onnx/operators/onnx__Round.html,
// https://onnx.ai/onnx/operators/onnx__Sign.html,
// https://onnx.ai/onnx/operators/onnx__Hardmax.html): an explicit zero
// tensor of the input's shape (with the class axis of gY in Jacobian mode),
// so that the gradient keeps its shape for the ops before.
func gradZero(c *gradCtx) error {
	c.setGrad(0, c.zerosGrad(c.input(0), c.gy[0]))
	return nil
}
