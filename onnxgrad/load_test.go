package onnxgrad

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// TestDecodeSortsNodes checks that a graph whose node list is shuffled (as
// keras2onnx writes some) loads in a topological order that keeps the file's
// order among independent nodes, and that a sorted graph is left alone.
func TestDecodeSortsNodes(t *testing.T) {
	want, err := Load("../testdata/models/resnet_small.onnx")
	if err != nil {
		t.Fatal(err)
	}
	names := func(m *onnxpb.ModelProto) []string {
		var s []string
		for _, n := range m.GetGraph().GetNode() {
			s = append(s, n.GetName())
		}
		return s
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for trial := range 5 {
		m := proto.Clone(want).(*onnxpb.ModelProto)
		nodes := m.GetGraph().GetNode()
		rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
		data, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(data, "shuffled.onnx")
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		if len(got.GetGraph().GetNode()) != len(nodes) {
			t.Fatalf("trial %d: %d nodes after sorting, want %d", trial, len(got.GetGraph().GetNode()), len(nodes))
		}
		// Every node after its producers (Validate checks it), and each
		// node at the earliest place its inputs allow given the shuffled
		// order: re-sorting is a no-op.
		again := proto.Clone(got).(*onnxpb.ModelProto)
		if err := sortNodes(again.GetGraph(), ""); err != nil || !slices.Equal(names(again), names(got)) {
			t.Errorf("trial %d: sorting a sorted graph changed it (%v)", trial, err)
		}
	}
	data, _ := Encode(want)
	got, err := Decode(data, "resnet_small.onnx")
	if err != nil || !slices.Equal(names(got), names(want)) {
		t.Errorf("a sorted graph came back reordered (%v)", err)
	}

	cyclic := tinyModel()
	cyclic.Graph.Node[0].Input[0] = "y" // MatMul reads the Relu's output
	data, _ = Encode(cyclic)
	_, err = Decode(data, "cyclic.onnx")
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "is on a cycle") {
		t.Errorf("cyclic graph: %v; want a FormatError naming a node on the cycle", err)
	}
}

// externalize moves every initializer of m into one data file beside the
// model file at path, with offsets, lengths and checksums as
// onnx.save(save_as_external_data=True) writes them, and returns the model.
func externalize(t *testing.T, m *onnxpb.ModelProto, path, location string) *onnxpb.ModelProto {
	t.Helper()
	m = proto.Clone(m).(*onnxpb.ModelProto)
	var blob bytes.Buffer
	for _, init := range m.GetGraph().GetInitializer() {
		raw := init.GetRawData()
		if raw == nil {
			t.Fatalf("initializer %q has no raw_data", init.GetName())
		}
		sum := sha1.Sum(raw)
		kv := [][2]string{{"location", location}, {"offset", strconv.Itoa(blob.Len())}, {"length", strconv.Itoa(len(raw))}, {"checksum", hex.EncodeToString(sum[:])}}
		init.ExternalData = nil
		for _, e := range kv {
			init.ExternalData = append(init.ExternalData, &onnxpb.StringStringEntryProto{Key: proto.String(e[0]), Value: proto.String(e[1])})
		}
		init.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
		init.RawData = nil
		blob.Write(raw)
		for blob.Len()%4096 != 0 { // onnx aligns large tensors; any layout must do
			blob.WriteByte(0)
		}
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), location), blob.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLoadExternalData checks that Load reads tensors stored beside the
// model, bit for bit, and refuses data outside the model's folder, missing
// or short files, and wrong checksums, naming the tensor.
func TestLoadExternalData(t *testing.T) {
	want, err := Load("../testdata/models/cnn.onnx")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "cnn_external.onnx")
	ext := externalize(t, want, path, "cnn_external.onnx.data")
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Error("the model loaded with its external data differs from the original")
	}
	if data, _ := os.ReadFile(path); bytes.Contains(data, want.GetGraph().GetInitializer()[0].GetRawData()) {
		t.Error("the test model still holds its weights inline")
	}
	if _, err := Decode(mustEncode(t, ext), "cnn_external.onnx"); err == nil || !strings.Contains(err.Error(), "load the model from its file") {
		t.Errorf("Decode of a model with external data: %v; want an error pointing to Load", err)
	}

	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.data"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.data"), filepath.Join(dir, "link.data")); err != nil {
		t.Fatal(err)
	}
	setKey := func(m *onnxpb.ModelProto, key, value string) {
		for _, e := range m.GetGraph().GetInitializer()[0].GetExternalData() {
			if e.GetKey() == key {
				e.Value = proto.String(value)
			}
		}
	}
	tests := []struct {
		name   string
		mutate func(m *onnxpb.ModelProto)
		want   string
	}{
		{"parent folder", func(m *onnxpb.ModelProto) { setKey(m, "location", "../secret.data") }, `location "../secret.data"`},
		{"absolute path", func(m *onnxpb.ModelProto) { setKey(m, "location", filepath.Join(outside, "secret.data")) }, "inside the model's folder"},
		{"symbolic link out", func(m *onnxpb.ModelProto) { setKey(m, "location", "link.data") }, "inside the model's folder"},
		{"missing file", func(m *onnxpb.ModelProto) { setKey(m, "location", "gone.data") }, `location "gone.data": no such file beside the model`},
		{"past the end", func(m *onnxpb.ModelProto) { setKey(m, "offset", "100000000") }, "reach past its end"},
		{"wrong length", func(m *onnxpb.ModelProto) { setKey(m, "length", "12") }, "12 bytes, but dims"},
		{"bad offset", func(m *onnxpb.ModelProto) { setKey(m, "offset", "-4") }, `offset "-4" is not a byte count`},
		{"checksum", func(m *onnxpb.ModelProto) { setKey(m, "checksum", strings.Repeat("0", 40)) }, "SHA-1"},
		{"no location", func(m *onnxpb.ModelProto) { m.GetGraph().GetInitializer()[0].ExternalData = nil }, `no "location" key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := proto.Clone(ext).(*onnxpb.ModelProto)
			tt.mutate(m)
			p := filepath.Join(dir, "bad.onnx")
			if err := Save(p, m); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			var fe *FormatError
			first := want.GetGraph().GetInitializer()[0].GetName()
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), strconv.Quote(first)) {
				t.Errorf("Load: %v; want a FormatError naming tensor %q and saying %q", err, first, tt.want)
			}
		})
	}
}

func mustEncode(t *testing.T, m *onnxpb.ModelProto) []byte {
	t.Helper()
	data, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
