// Package ort runs ONNX models with onnxruntime, on tensors that are plain Go
// slices.
//
// It is the only package of marginaudit that imports
// github.com/yalue/onnxruntime_go, and it keeps that library's API small:
//
//   - [Init] loads the shared library once, found through [LibraryPath]:
//     the environment variable MARGINAUDIT_ORT_LIB, else the file that
//     `make ort` installs in the user cache folder.
//   - A [Session] holds one model; [Session.Run] evaluates it on [Value]s, each a
//     shape and a []float32, []float64 or []int64 in row-major order. Inputs
//     are never copied; outputs are written in place when the caller passes
//     pre-allocated slices (the pattern for allocation-light loops such as
//     attacks and training), and allocated by the run otherwise.
//   - Sessions are safe for concurrent use, accept any size along dynamic
//     dimensions (the batch), and implement io.Closer.
//
// Creating and closing sessions repeatedly makes onnxruntime's resident memory
// grow (onnxruntime_go issues #48, #112, #113): create one session per model
// and reuse it.
package ort
