// Package bound computes certified lower bounds of a classifier's margins:
// per image, a radius ε within which no input (in the L2 or L∞ ball around
// the image, inside the input box [lo, hi]) changes the prediction. It is
// the lower end of the bracket whose upper end is an attack's margin
// (DeepFool's, in auditor/attack).
//
// # Method
//
// Linear bound propagation, CROWN with adaptive slopes (Zhang et al.,
// "Efficient Neural Network Robustness Certification with General
// Activation Functions", NeurIPS 2018), which for ReLU networks is the
// back-substitution of DeepPoly (Singh et al., POPL 2019). The
// specification rows are c_j = e_pred − e_j for every class j ≠ pred; a
// row vector Λ is carried from the logits back to the image, which is a
// vector-Jacobian product with the nonlinearities replaced by lines:
//
//   - affine ops (Gemm, MatMul, Conv, BatchNormalization, the Sub/Div of a
//     normalisation, AveragePool, Flatten/Reshape): Λ ← ΛW, constant
//     += Λb; Conv and the pools as ConvTranspose over the rows folded into
//     the batch. Add of two branches hands Λ to both.
//   - Relu with input bounds l ≤ x ≤ u: exact where l ≥ 0 or u ≤ 0;
//     otherwise, for a lower bound, entries of Λ ≥ 0 take the lower line
//     a·x with a = 1 if u ≥ −l else 0 (CROWN's adaptive choice) and
//     entries < 0 the upper line s·(x − l) with s = u/(u − l).
//   - MaxPool (DeepPoly): max ≥ x_j for the window's input j of largest
//     lower bound, max ≤ the window's largest upper bound (a constant);
//     max = x_j where l_j ≥ u_i for every other input i of the window, a
//     case tested only where windows tile the input (kernel = stride, no
//     padding), as the trainer's and most small CNNs' pools do.
//
// The bounds l, u of every Relu and MaxPool input are CROWN's too: one
// backward pass per such tensor, from 2n rows ±e_i (n its size) to the
// image. Interval arithmetic is not used: it is much looser on these
// networks, and the cost of CROWN's passes is what the batch size pays.
// Where a tensor is affine in the image (Scale and Reshape layers around
// one Gemm or Conv, as every first layer is), the same bounds come from
// forward passes with |W| and W∘W instead of 2n rows.
//
// At the image, min over the ball of Λx: for L∞ the ball meets the box
// exactly, the box [max(lo, x−ε), min(hi, x+ε)] giving Λ⁺x_l + Λ⁻x_u;
// for L2 the larger of the ball's bound Λx − ε‖Λ‖₂ (which ignores the
// box) and the bound over the box [x−ε, x+ε]∩[lo, hi] (which contains the
// L2 ball's part inside the box): each holds alone, so their maximum does.
//
// # Graphs and precision
//
// The whole computation for one norm is one ONNX graph (default-domain
// opset-16 ops only), run by onnxruntime on a batch of images with a radius
// and a prediction each: inputs x [N, image...], eps [N], spec [N, K−1, K],
// output the K−1 lower bounds [N, K−1]. [Certifier.Certify] bisects each
// image's ε over [0, upper] (Options.Steps halvings, all images of a batch
// together) and returns the largest ε proven. The graphs run in float32,
// the models' precision, so every radius is shrunk by Options.Safety (0.1 %); the tests hold the graphs against a
// float64 reference (bench/bound/crownref) to 2e-5 of the bound's scale.
//
// Supported: Gemm, MatMul by a constant (+ Add of a bias), Conv (2-D, any
// stride, padding, dilation, group), Relu, MaxPool and AveragePool (2-D,
// ceil_mode 0), GlobalAveragePool, BatchNormalization (inference),
// Flatten, Reshape (also with a target computed by Shape ops, as
// x.view(x.size(0), -1) exports), Add of two branches, Add/Sub/Mul/Div by
// constants, Identity, Dropout, a final Softmax or LogSoftmax. Anything
// else is refused with an [UnsupportedError] naming the op and its node.
package bound
