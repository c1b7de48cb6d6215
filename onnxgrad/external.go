package onnxgrad

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// External data (https://onnx.ai/onnx/repo-docs/ExternalData.html): large
// models keep tensor bytes in files beside the .onnx file, as PyTorch 2's
// dynamo exporter and onnx.save(save_as_external_data=True) write them.
// Load reads them into the tensors' raw_data, so the model in memory is
// self-contained: onnxruntime sessions made from its bytes, and gradient
// models saved from it, need no side files.

// loadExternalData reads every tensor of m stored outside the model file
// from the folder dir, and stores its bytes inline. Locations are resolved
// inside dir with os.Root: a location that leaves the folder (an absolute
// path, "..", or a symbolic link pointing outside) is refused. name is the
// model's file name, for errors.
func loadExternalData(m *onnxpb.ModelProto, dir, name string) error {
	var tensors []*onnxpb.TensorProto
	var fields []string
	walkTensors(m.GetGraph(), "graph", func(t *onnxpb.TensorProto, field string) {
		if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
			tensors, fields = append(tensors, t), append(fields, field)
		}
	})
	if len(tensors) == 0 {
		return nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return &FormatError{File: name, Msg: "opening the folder of its external data", Err: err}
	}
	defer root.Close()
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for i, t := range tensors {
		if err := readExternal(t, root, files); err != nil {
			return &FormatError{File: name, Field: fmt.Sprintf("%s %q external data", fields[i], t.GetName()), Msg: err.Error()}
		}
	}
	return nil
}

// readExternal reads one tensor's external bytes into its raw_data.
func readExternal(t *onnxpb.TensorProto, root *os.Root, files map[string]*os.File) error {
	kv := map[string]string{}
	for _, e := range t.GetExternalData() {
		kv[e.GetKey()] = e.GetValue()
	}
	loc := kv["location"]
	if loc == "" {
		return errors.New(`no "location" key`)
	}
	f, ok := files[loc]
	if !ok {
		var err error
		if f, err = root.Open(loc); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("location %q: no such file beside the model", loc)
			}
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("location %q: %w (external data must stay inside the model's folder)", loc, err)
		}
		files[loc] = f
	}
	offset, err := externalInt(kv, "offset", 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	length, err := externalInt(kv, "length", fi.Size()-offset)
	if err != nil {
		return err
	}
	if offset > fi.Size() || length > fi.Size()-offset {
		return fmt.Errorf("location %q holds %d bytes; offset %d and length %d reach past its end", loc, fi.Size(), offset, length)
	}
	if sz := elemSize(onnxpb.TensorProto_DataType(t.GetDataType())); sz > 0 {
		n, err := numElements(t.GetDims())
		if err != nil {
			return err
		}
		if n*int64(sz) != length {
			return fmt.Errorf("location %q: %d bytes, but dims %v of %s need %d", loc, length, t.GetDims(), onnxpb.TensorProto_DataType(t.GetDataType()), n*int64(sz))
		}
	}
	raw := make([]byte, length)
	if _, err := f.ReadAt(raw, offset); err != nil && !(errors.Is(err, io.EOF) && length == 0) {
		return fmt.Errorf("location %q: %w", loc, err)
	}
	if want := kv["checksum"]; want != "" {
		sum := sha1.Sum(raw)
		if got := hex.EncodeToString(sum[:]); got != want {
			return fmt.Errorf("location %q: SHA-1 %s, the model says %s", loc, got, want)
		}
	}
	t.RawData = raw
	t.DataLocation = nil
	t.ExternalData = nil
	return nil
}

// externalInt reads a non-negative integer key of external_data, def when
// absent.
func externalInt(kv map[string]string, key string, def int64) (int64, error) {
	s, ok := kv[key]
	if !ok {
		return def, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s %q is not a byte count", key, s)
	}
	return v, nil
}

// walkTensors calls fn for every tensor of g and of its subgraphs:
// initializers and tensor-valued node attributes (Constant's value), with
// the field path that names it in errors.
func walkTensors(g *onnxpb.GraphProto, field string, fn func(t *onnxpb.TensorProto, field string)) {
	for i, t := range g.GetInitializer() {
		fn(t, fmt.Sprintf("%s.initializer[%d]", field, i))
	}
	for i, n := range g.GetNode() {
		nf := fmt.Sprintf("%s.node[%d] %q", field, i, n.GetName())
		for _, a := range n.GetAttribute() {
			af := nf + ".attribute " + strconv.Quote(a.GetName())
			if t := a.GetT(); t != nil {
				fn(t, af)
			}
			for j, t := range a.GetTensors() {
				fn(t, fmt.Sprintf("%s[%d]", af, j))
			}
			if sg := a.GetG(); sg != nil {
				walkTensors(sg, af, fn)
			}
			for j, sg := range a.GetGraphs() {
				walkTensors(sg, fmt.Sprintf("%s[%d]", af, j), fn)
			}
		}
	}
}
