// Package attack runs adversarial attacks on a differentiable ONNX image
// classifier: DeepFool (L2 and L∞), which measures how far each image lies
// from the decision boundary, the FMN refinement of its margins, and
// projected gradient descent (PGD, L∞ and L2), which measures robust
// accuracy and generates the adversarial examples of adversarial training. It is shared by the auditor and the trainer and
// depends only on onnxgrad and the onnxruntime wrapper.
//
// # Classifier
//
// A [Classifier] wraps an ONNX model whose first (or chosen) output holds the
// class scores [N, K] of its only input [N, ...]. Attacks work in pixel space:
// inputs lie in the range [lo, hi] (default [0, 1]), and an optional
// per-channel normalisation (x − mean)/std is inserted into the graph, in
// front of the model, as Sub and Div nodes with [1, C, 1, …] constants
// ([1, …, 1, C] for NHWC models, see [Layout]), so that perturbations,
// margins and gradients are all measured on pixels. The
// classifier builds and owns up to three onnxruntime sessions, created on
// first use and reused by every call: the plain forward graph, a Jacobian
// graph (onnxgrad's Jacobian mode with a seed input, so that one run gives
// the scores and the gradients of any L combinations of them) and an input
// gradient graph (onnxgrad's VJP mode) for the cross-entropy loss.
//
// The scores are logits or log-probabilities, never probabilities: DeepFool's
// gaps f_k − f_j must be those of the logits, and log p_k − log p_j =
// z_k − z_j. A model ending in a Softmax (possibly followed by Identity,
// Reshape, Flatten, Squeeze, Unsqueeze or a Cast) that nothing else reads
// has it replaced by a LogSoftmax; other probability outputs, detected by a
// probe run or declared by [Options.Scores], get log max(p, 2^-126)
// appended. [Classifier.ScoreSource] reports which scores are used.
//
// A model exported with a fixed batch of B images (its input [B, ...], B
// also in Reshape targets and other constants) is made to run on any number
// of images by [SymbolicBatch] where the graph allows, checked against the
// original on random images; otherwise the classifier feeds it exactly B
// images per onnxruntime run, padding the last. [Classifier.Batch] reports
// which.
//
// A model may take more inputs than the image when [Options.Bound] binds
// them to the caller's slices, such as the weights of a model in training
// declared as graph inputs: every run of every graph reads them in place, so
// an optimizer that updates the slices between calls is attacked with its
// current weights, without new sessions. They are not differentiated.
//
// # DeepFool
//
// [DeepFool] follows the step semantics of Foolbox 3 (foolbox.attacks.deepfool,
// the reference users compare against), batched:
//
//   - Candidate classes are the top-k scores at the clean image x₀ (k = all
//     K classes by default), fixed for the run; the reference class k̂ is the
//     clean prediction. An image the model already misclassifies therefore
//     measures the distance to the boundary of its predicted class, not of its
//     label.
//   - At the current point x, for every candidate k ≠ k̂: f′ = f_k − f_k̂,
//     w′ = ∇f_k − ∇f_k̂ (one Jacobian run seeded with e_k − e_k̂ gives all of
//     them, so the backward work scales with k − 1), and
//     d_k = |f′| / (‖w′‖_q + 1e-8) with q = 2 for L2 and q = 1 for L∞ (the dual
//     norms; the 1e-8 is Foolbox's guard against zero gradients).
//   - The smallest d_k is taken and 1e-4 is added to it; the step is
//     p = d·w′/(‖w′‖₂ + 1e-8) for L2 and p = d·sign(w′) for L∞.
//   - The steps accumulate, P += p, and x = clip(x₀ + (1 + overshoot)·P, lo, hi):
//     the overshoot (default 0.02) scales the cumulative perturbation, not
//     each step.
//   - An image stops as soon as the prediction (the argmax over all K scores,
//     from the forward graph) at x differs from k̂; at most MaxIter (default
//     50) steps are taken per attempt.
//
// Other implementations differ, so their margins differ by a few percent:
// torchattacks compounds the overshoot per step (x ← clip(x + (1 + η)·r)),
// adds no 1e-4, uses the true label as reference and offers L2 only; the
// Adversarial Robustness Toolbox accumulates x ← x + r without overshoot and
// applies it once at the end, x₀ + (1 + η)·(x − x₀), with η = 1e-6 by
// default.
//
// Beyond Foolbox, as in the study this project reproduces: an image that has
// not flipped after MaxIter steps is retried from a noisy start
// clip(x₀ + σ·z, lo, hi), z ~ N(0, I) drawn from a generator seeded by the
// options' Seed and the image's index (so results do not depend on batching;
// FirstImage offsets the index of an attack run in pieces),
// σ = NoiseStd (default 0.01·(hi − lo)), with the same candidates and k̂, up
// to Retries times (default 10); the retries are counted, and an image that
// never flips is reported with Success = false and an infinite margin, never
// dropped. The margin is the norm of x_adv − x₀ measured from the clean
// image, an upper bound of the distance to the boundary, which [FMN]
// tightens (below).
//
// Images leave the batch as soon as they flip (the active images are packed
// into the front of the batch buffers and free places are refilled with the
// next images), so every Jacobian computed serves an image still in play.
//
// # FMN refinement
//
// [FMN] tightens DeepFool's margins with the fast minimum-norm attack
// (Pintor et al., NeurIPS 2021), warm-started at DeepFool's adversarial
// points and batched over images: per step one Jacobian run with one seed
// row gives the gradient of the logit gap f_j − f_k̂ (j the best other
// class), and the norm constraint ε shrinks by 1 − γ while the point is
// adversarial and grows by 1 + γ while it is not, γ and the step size
// annealed by a cosine over a step budget (25 by default). The refined
// margin is the norm of the closest point a forward run of the model
// confirms as classified other than k̂, at most DeepFool's margin. Images
// DeepFool failed start from PGD at growing radius; an image nothing flips
// within the input range is reported as censored at the largest radius
// tried ([RefineResult.Censored], [RefineResult.CensoredAt]), never
// dropped. [FMN.Refine] lists the steps.
//
// # PGD
//
// [PGD] is projected gradient ascent on the softmax cross-entropy (Madry et
// al. 2018): an optional seeded random start in the ε-ball, then steps of
// size α along sign(∇) (L∞) or ∇/‖∇‖₂ (L2), each followed by the projection
// onto the ε-ball around x₀ and the clip to the input range. A PGD value
// keeps its buffers between calls, for adversarial training. [RobustAccuracy]
// measures the accuracy that survives the attack.
//
// # Progress and cancellation
//
// Library code never prints: attacks report finished images through a
// [Progress] (nil for none), and check their context.Context between
// iterations.
package attack
