package auditor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

func TestEpochFromName(t *testing.T) {
	for _, tc := range []struct {
		name  string
		epoch int // -1: none
	}{
		{"epoch-007.onnx", 7},
		{"epoch7.onnx", 7},
		{"epoch_7.onnx", 7},
		{"EPOCH-12.ONNX", 12},
		{"Epoch7.onnx", 7},
		{"model_ep7.onnx", 7},
		{"model-ep_07.onnx", 7},
		{"ckpt_e12.onnx", 12},
		{"run-epoch=3.onnx", 3},
		{"epoch=3-step=1500.onnx", 3}, // Lightning: the step is not an epoch
		{"mnist.epoch0.onnx", 0},
		{"runs/a/epoch-000.onnx", 0},
		{"epoch-007", 7},              // no extension
		{"epoch-001-e1.onnx", 1},      // two forms that agree
		{"epoch1-e2.onnx", -1},        // two that do not
		{"model.onnx", -1},            // none
		{"step100.onnx", -1},          // another counter
		{"e2e.onnx", -1},              // digits followed by a letter
		{"resnet18.onnx", -1},         // digits after letters other than e/ep/epoch
		{"cifar_res18e3.onnx", -1},    // "e3" glued to the previous word
		{"epoch.onnx", -1},            // no digits
		{"epoch-1234567890.onnx", -1}, // more than 9 digits
		{"epoch-123456789.onnx", 123456789},
	} {
		got, ok := EpochFromName(tc.name)
		if !ok {
			got = -1
		}
		if got != tc.epoch {
			t.Errorf("EpochFromName(%q) = %d, %t; want %d", tc.name, got, ok, tc.epoch)
		}
	}
}

// writeModel saves a one-node ONNX model with the given metadata_props
// (key, value pairs) to dir/name.
func writeModel(t *testing.T, dir, name string, props ...string) string {
	t.Helper()
	vi := func(n string) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(n), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT))}}}}
	}
	m := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{
			Name:   proto.String("id"),
			Input:  []*onnxpb.ValueInfoProto{vi("x")},
			Output: []*onnxpb.ValueInfoProto{vi("y")},
			Node:   []*onnxpb.NodeProto{{OpType: proto.String("Identity"), Input: []string{"x"}, Output: []string{"y"}}},
		},
	}
	for i := 0; i+1 < len(props); i += 2 {
		m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(props[i]), Value: proto.String(props[i+1])})
	}
	path := filepath.Join(dir, name)
	if err := onnxgrad.Save(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDiscover(t *testing.T) {
	type file struct {
		name  string
		epoch string // metadata epoch; "" for none; "junk" writes a non-ONNX file
	}
	type want struct {
		name  string
		epoch int
		from  EpochSource
		err   bool // Checkpoint.Err set
	}
	for _, tc := range []struct {
		name  string
		files []file
		args  []string // relative to the folder; nil: the folder
		want  []want
		err   string // error of Discover
	}{
		{
			name:  "metadata wins over the name",
			files: []file{{"b.onnx", "1"}, {"a.onnx", "0"}, {"epoch-009.onnx", "2"}},
			want:  []want{{"a.onnx", 0, FromMetadata, false}, {"b.onnx", 1, FromMetadata, false}, {"epoch-009.onnx", 2, FromMetadata, false}},
		},
		{
			name:  "names, sorted by epoch not by name",
			files: []file{{"epoch10.onnx", ""}, {"epoch9.onnx", ""}, {"epoch-000.onnx", ""}},
			want:  []want{{"epoch-000.onnx", 0, FromName, false}, {"epoch9.onnx", 9, FromName, false}, {"epoch10.onnx", 10, FromName, false}},
		},
		{
			name:  "metadata and names mixed",
			files: []file{{"final.onnx", "5"}, {"ckpt_e1.onnx", ""}},
			want:  []want{{"ckpt_e1.onnx", 1, FromName, false}, {"final.onnx", 5, FromMetadata, false}},
		},
		{
			name:  "python float epoch",
			files: []file{{"m.onnx", "3.0"}},
			want:  []want{{"m.onnx", 3, FromMetadata, false}},
		},
		{
			name:  "position",
			files: []file{{"b.onnx", ""}, {"a.onnx", ""}, {"c.ONNX", ""}},
			want:  []want{{"a.onnx", 0, FromPosition, false}, {"b.onnx", 1, FromPosition, false}, {"c.ONNX", 2, FromPosition, false}},
		},
		{
			name:  "position follows the arguments",
			files: []file{{"b.onnx", ""}, {"a.onnx", ""}},
			args:  []string{"b.onnx", "a.onnx", "b.onnx"},
			want:  []want{{"b.onnx", 0, FromPosition, false}, {"a.onnx", 1, FromPosition, false}},
		},
		{
			name:  "other files are skipped",
			files: []file{{"epoch-001.onnx", ""}, {"notes.txt", ""}, {".epoch-002.onnx.tmp-1", ""}, {".hidden.onnx", ""}},
			want:  []want{{"epoch-001.onnx", 1, FromName, false}},
		},
		{
			name:  "an explicit file needs no .onnx",
			files: []file{{"model.bin", "4"}},
			args:  []string{"model.bin"},
			want:  []want{{"model.bin", 4, FromMetadata, false}},
		},
		{
			name:  "unloadable checkpoints stay, with their error",
			files: []file{{"epoch-001.onnx", ""}, {"epoch-002.onnx", "junk"}, {"broken.onnx", "junk"}, {"epoch-000.onnx", ""}},
			want:  []want{{"broken.onnx", -1, "", true}, {"epoch-000.onnx", 0, FromName, false}, {"epoch-001.onnx", 1, FromName, false}, {"epoch-002.onnx", 2, FromName, true}},
		},
		{
			name:  "malformed metadata epoch",
			files: []file{{"epoch-001.onnx", "one"}, {"epoch-002.onnx", ""}},
			want:  []want{{"epoch-001.onnx", 1, FromName, true}, {"epoch-002.onnx", 2, FromName, false}},
		},
		{
			name:  "duplicate epoch",
			files: []file{{"epoch-001.onnx", ""}, {"final.onnx", "1"}},
			err:   "both claim epoch 1",
		},
		{
			name:  "some without an epoch",
			files: []file{{"epoch-001.onnx", ""}, {"final.onnx", ""}},
			err:   "final.onnx has no epoch in its metadata or name, but",
		},
		{
			name:  "empty folder",
			files: []file{{"readme.txt", ""}},
			err:   "no *.onnx checkpoint in folder",
		},
		{
			name: "missing path",
			args: []string{"nope.onnx"},
			err:  "no such file",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				switch {
				case f.epoch == "junk" || !strings.HasSuffix(strings.ToLower(f.name), ".onnx") && f.epoch == "":
					os.WriteFile(filepath.Join(dir, f.name), []byte("not a model"), 0o644)
				case f.epoch == "":
					writeModel(t, dir, f.name)
				default:
					writeModel(t, dir, f.name, "producer", "test", MetadataEpoch, f.epoch)
				}
			}
			args := []string{dir}
			if tc.args != nil {
				args = nil
				for _, a := range tc.args {
					args = append(args, filepath.Join(dir, a))
				}
			}
			got, err := Discover(args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Name != w.name || g.Epoch != w.epoch || g.From != w.from || (g.Err != nil) != w.err {
					t.Errorf("checkpoint %d = %s epoch %d from %q err %v; want %s epoch %d from %q err %t", i, g.Name, g.Epoch, g.From, g.Err, w.name, w.epoch, w.from, w.err)
				}
				if g.Path != filepath.Join(dir, g.Name) {
					t.Errorf("path %s", g.Path)
				}
			}
		})
	}
}

func TestDiscoverErrors(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, dir, "epoch-001.onnx")
	writeModel(t, dir, "final.onnx", MetadataEpoch, "1")
	_, err := Discover([]string{dir})
	var de *DuplicateEpochError
	if !errors.As(err, &de) || de.Epoch != 1 || de.A.Name != "epoch-001.onnx" || de.B.Name != "final.onnx" {
		t.Fatalf("err = %v, want a *DuplicateEpochError for epoch 1", err)
	}
	want := "auditor: checkpoints " + filepath.Join(dir, "epoch-001.onnx") + " (epoch from name) and " +
		filepath.Join(dir, "final.onnx") + " (epoch from metadata) both claim epoch 1"
	if err.Error() != want {
		t.Errorf("message\n%s\nwant\n%s", err, want)
	}

	// One file name in two folders.
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.Mkdir(a, 0o755)
	os.Mkdir(b, 0o755)
	writeModel(t, a, "epoch-001.onnx")
	writeModel(t, b, "epoch-001.onnx", MetadataEpoch, "2")
	if _, err := Discover([]string{a, b}); err == nil || !strings.Contains(err.Error(), "same file name") {
		t.Errorf("err = %v, want a same-name error", err)
	}

	// The Err of a bad checkpoint names the file and the cause.
	os.WriteFile(filepath.Join(b, "epoch-003.onnx"), []byte("junk"), 0o644)
	cks, err := Discover([]string{filepath.Join(b, "epoch-003.onnx")})
	if err != nil || len(cks) != 1 || cks[0].Err == nil || !strings.Contains(cks[0].Err.Error(), "epoch-003.onnx") {
		t.Errorf("got %+v, %v", cks, err)
	}
	writeModel(t, b, "epoch-004.onnx", MetadataEpoch, "-4")
	cks, _ = Discover([]string{filepath.Join(b, "epoch-004.onnx")})
	if len(cks) != 1 || !errors.Is(cks[0].Err, ErrMetadataEpoch) {
		t.Errorf("negative metadata epoch: %+v", cks)
	}
}
