// Package checkpoint writes and reads the trainer's per-epoch output: one
// ONNX model per epoch with its training record in metadata_props, the
// optimizer state beside it, and a CSV summary of the run.
//
// A run's folder holds
//
//	epoch-000.onnx    the initial weights, before any update
//	epoch-000.state   the initial optimizer state
//	epoch-001.onnx    the weights after epoch 1, …
//	epoch-001.state
//	train.csv         one row per epoch, rewritten after each (columns
//	                  CSVHeader, then CSVAdvHeader for adversarial training)
//
// Each .onnx file is a plain inference graph (see package model) with the
// weights as initializers, readable by any ONNX runtime; its metadata_props
// carry what the auditor needs to read it without flags (dataset, input
// shape and range, normalisation) and the training record, under the keys
// listed in the Key constants. All files are written atomically (a
// temporary file renamed into place), and an epoch counts as complete only
// when both its .state and .onnx exist; the .state is written first, so a
// crash between the two leaves the epoch incomplete and a resumed run
// repeats it.
package checkpoint
