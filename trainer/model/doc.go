// Package model builds the classifiers that marginaudit trains as plain ONNX
// graphs, and holds their weights in Go slices.
//
// Two architectures are offered, as in the study that marginaudit
// reproduces:
//
//   - "mlp": Flatten, then dense layers (Gemm + Relu) of configurable
//     hidden sizes, then a dense layer to the class scores; by default
//     784-256-256-10 on MNIST.
//   - "cnn": stages of Conv (same padding) + Relu + MaxPool(2), by default
//     two with 32 and 64 channels and 3×3 kernels, then Flatten and dense
//     layers (by default one hidden layer of 128); for 28×28×1 and 32×32×3
//     images alike.
//
// Every graph has opset 13, one input "input" of shape [N, C, H, W] with a
// symbolic batch size N, and one output "logits" of shape [N, K]. Dense
// weights are stored as in PyTorch, [out, in], and used by Gemm with
// transB=1; convolution weights are [out, in, k, k].
//
// A Model's weights are plain []float32 slices (Param.Data). Graph emits
// the inference graph either with the weights as initializers (the exported
// checkpoint) or as graph inputs, which a training loop feeds as zero-copy
// tensors on every step. LossGraph adds a softmax cross-entropy loss
// built from operators that onnxgrad differentiates.
//
// Init draws the weights from a seed: He-normal for the layers followed by a
// ReLU, Glorot-uniform for the last layer, zero biases. The random numbers
// come from math/rand/v2's PCG with explicit sampling code in this package,
// so a seed gives the same weights run after run.
package model
