// Package onnxpb holds the Go types generated from the official ONNX schema,
// onnx.proto of ONNX 1.12 (IR version 8), as shipped by Debian's libonnx-dev.
//
// Regenerate with `go generate ./onnxgrad/onnxpb` after installing protoc
// (Debian protobuf-compiler) and protoc-gen-go v1.36.10. onnx.proto is proto2:
// scalar fields are pointers, so read them with the generated Get… accessors
// and write them with proto.Int64, proto.String and friends.
package onnxpb

//go:generate protoc -I/usr/include/onnx --plugin=protoc-gen-go=$HOME/go/bin/protoc-gen-go --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/marginaudit/marginaudit/onnxgrad/onnxpb onnx.proto
