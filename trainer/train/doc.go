// Package train trains the classifiers of package model on a dataset and
// writes one checkpoint per epoch, starting with the initialisation.
//
// Run is the whole job:
//
//	err := train.Run(ctx, train.Config{
//		Dataset: "mnist", Arch: model.Arch{Kind: "mlp"},
//		Epochs: 5, BatchSize: 128, Seed: 1,
//		Optim: optim.Config{Name: "adam", LR: 1e-3},
//		Out:   "ckpts/mnist-mlp",
//	}, progress)
//
// # How a step runs
//
// The weights live in the model's Go slices. onnxruntime runs one graph per
// mini-batch that computes the logits, the mean softmax cross-entropy
// (model.LossGraph) and, through onnxgrad's Params mode, the gradient of the
// loss with respect to every weight; the weights are graph inputs bound to
// the Go slices without copying. package optim then updates the slices in
// place. Test accuracy comes from a second, forward-only session on the
// inference graph, also fed the same slices.
//
// # Adversarial training
//
// With Config.Adv (DefaultAdversarial gives the settings per dataset), the
// first half (Adversarial.Frac) of every shuffled mini-batch is replaced by
// L∞ PGD adversarial examples before the step, as in the study (Madry et
// al. 2018): projected gradient ascent on the cross-entropy from a random
// point of the ε-ball, clipped to [0, 1], run by package attack against a
// classifier whose weights are graph inputs bound to the same Go slices, so
// that each batch is attacked with the weights of that moment and no session
// is rebuilt. The step's loss and gradient are those of the mixed batch.
// Checkpoints record the settings (adversarial = pgd and the adv_* keys)
// and the loss and accuracy on the adversarial images alone; train.csv has
// two more columns for them.
//
// # Determinism and resuming
//
// The initial weights are a function of the seed (model.Model.Init), the
// order of the training images in epoch e a function of (seed, e) alone
// (Shuffle), and the random starts of PGD in batch b a function of (seed, e,
// b). Each epoch's checkpoint stores the weights exactly and the
// optimizer state beside it (package checkpoint), so Config.Resume continues
// from the last complete epoch and reaches the same weights as a run that
// was never interrupted, given the same settings, whatever the thread
// count: every onnxruntime run is single-threaded and a batch is cut into
// the same parts whatever Config.Threads is (see Config.Threads).
//
// # Progress
//
// The library never prints. Run reports to a Progress: once at the start,
// after every mini-batch and after every checkpoint; a CLI renders it.
// Cancelling the context stops Run between mini-batches; files already
// written stay complete, and the interrupted epoch is repeated on resume.
package train
