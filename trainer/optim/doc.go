// Package optim updates a model's weights from their gradients: SGD with
// momentum and Adam, with L2 weight decay, and learning-rate schedules.
//
// The update rules follow PyTorch's torch.optim.SGD (dampening 0, no
// Nesterov) and torch.optim.Adam (weight decay added to the gradient, not
// decoupled as in AdamW), so that a PyTorch training loop with the same
// settings is a fair comparison. Arithmetic is in float32 per element, with
// Adam's bias corrections computed in float64 once per step.
//
// An optimizer's state (step count, momentum and moment buffers) can be
// read with State and restored with SetState, which is how the trainer
// resumes a run exactly.
package optim
