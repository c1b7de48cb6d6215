package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// degenerateInputs writes, into a new folder, the empty and degenerate
// inputs that the commands must refuse with an error naming them, and
// returns the folder:
//
//	x0.npy [0, 1, 28, 28]   no images        y0.npy [0]   no labels
//	x5z.npy [5, 0, 28, 28]  no pixels        y5.npy [5], y3.npy [3]
//	xe.npy [0]              no axes to speak of
//	empty.npy, empty.onnx   zero bytes       trunc.onnx   cnn.onnx cut short
//	nodata/                 MNIST files of 0 images
//	noaudit/                an empty folder  headeronly/  a margins.csv without rows
//	fixtures/               cnn.onnx with an empty batch of inputs
func degenerateInputs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, shape := range map[string][]int{
		"x0.npy": {0, 1, 28, 28}, "x5z.npy": {5, 0, 28, 28}, "xe.npy": {0},
		"y0.npy": {0}, "y5.npy": {5}, "y3.npy": {3}, "fixtures/cnn.x.npy": {0, 1, 28, 28},
	} {
		n := 1
		for _, d := range shape {
			n *= d
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := npy.WriteFile(filepath.Join(dir, name), &npy.Array{Shape: shape, Data: make([]float32, n)}); err != nil {
			t.Fatal(err)
		}
	}
	cnn, err := os.ReadFile(models + "/cnn.onnx")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"empty.npy": nil, "empty.onnx": nil, "trunc.onnx": cnn[:len(cnn)/3], "fixtures/cnn.onnx": cnn,
		"headeronly/settings.json": []byte("{}\n"),
		"headeronly/margins.csv":   []byte("checkpoint,epoch,split,index,label,pred,correct,norm,margin,margin_refined,iterations,retries,success\n"),
	}
	// IDX files of 0 images of 28×28 pixels, and of 0 labels.
	for _, split := range []string{"train", "t10k"} {
		files["nodata/"+split+"-images-idx3-ubyte"] = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(
			binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0x803), 0), 28), 28)
		files["nodata/"+split+"-labels-idx1-ubyte"] = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 0x801), 0)
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "noaudit"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Every command that reads inputs, fed empty and degenerate ones, exits
// with status 1 and a message naming the input, writes nothing, says
// nothing about writing, and does not panic.
func TestDegenerateInputs(t *testing.T) {
	orttest.Require(t)
	in := degenerateInputs(t)
	p := func(name string) string { return filepath.Join(in, name) }
	cnn, x4, y4 := models+"/cnn.onnx", models+"/cnn.x.npy", arrays+"/y.npy"
	tests := []struct {
		name string
		args []string // OUT stands for the output that must not appear
		want string   // in stderr
	}{
		{"inspect_empty_onnx", []string{"inspect", p("empty.onnx")}, "empty.onnx: empty file, not an ONNX model"},
		{"inspect_truncated_onnx", []string{"inspect", p("trunc.onnx")}, "trunc.onnx: not a valid ONNX protobuf"},
		{"grad_empty_onnx", []string{"grad", p("empty.onnx"), "--out", "OUT"}, "empty.onnx"},
		{"grad_truncated_onnx", []string{"grad", p("trunc.onnx"), "--out", "OUT"}, "trunc.onnx"},
		{"jacobian_empty_onnx", []string{"jacobian", p("empty.onnx"), "--input", x4, "--out", "OUT"}, "empty.onnx"},
		{"jacobian_no_samples", []string{"jacobian", cnn, "--input", p("x0.npy"), "--out", "OUT"}, "x0.npy: no samples"},
		{"jacobian_zero_axis", []string{"jacobian", cnn, "--input", p("x5z.npy"), "--out", "OUT"}, "x5z.npy: input shape [5, 0, 28, 28]"},
		{"jacobian_no_axes", []string{"jacobian", cnn, "--input", p("xe.npy"), "--out", "OUT"}, "xe.npy"},
		{"jacobian_empty_npy", []string{"jacobian", cnn, "--input", p("empty.npy"), "--out", "OUT"}, "empty.npy: not a .npy file"},
		{"train_no_images", []string{"train", "--data", "mnist", "--data-dir", p("nodata"), "--arch", "mlp", "--epochs", "1", "--out", "OUT"}, "train-images-idx3-ubyte holds no images"},
		{"audit_no_images", []string{"audit", cnn, "--images", p("x0.npy"), "--labels", p("y0.npy"), "--out", "OUT"}, "x0.npy holds no images"},
		{"audit_zero_axis", []string{"audit", cnn, "--images", p("x5z.npy"), "--labels", p("y5.npy"), "--out", "OUT"}, "x5z.npy: images of shape [5, 0, 28, 28] have no pixels: axis 1 has size 0"},
		{"audit_no_axes", []string{"audit", cnn, "--images", p("xe.npy"), "--labels", p("y0.npy"), "--out", "OUT"}, "xe.npy: images must be [N, ...]"},
		{"audit_labels_length", []string{"audit", cnn, "--images", x4, "--labels", p("y3.npy"), "--out", "OUT"}, "y3.npy: labels must be [4]"},
		{"audit_no_labels", []string{"audit", cnn, "--images", x4, "--labels", p("y0.npy"), "--out", "OUT"}, "y0.npy: labels must be [4]"},
		{"audit_empty_images_npy", []string{"audit", cnn, "--images", p("empty.npy"), "--labels", y4, "--out", "OUT"}, "empty.npy: not a .npy file"},
		{"audit_empty_labels_npy", []string{"audit", cnn, "--images", x4, "--labels", p("empty.npy"), "--out", "OUT"}, "empty.npy: not a .npy file"},
		{"audit_empty_onnx", []string{"audit", p("empty.onnx"), "--images", x4, "--labels", y4, "--out", "OUT"}, "checkpoint empty.onnx: "},
		{"audit_truncated_onnx", []string{"audit", p("trunc.onnx"), "--images", x4, "--labels", y4, "--out", "OUT"}, "checkpoint trunc.onnx: "},
		{"audit_no_data_images", []string{"audit", cnn, "--data", "mnist", "--data-dir", p("nodata"), "--out", "OUT"}, "t10k-images-idx3-ubyte holds no images"},
		{"report_empty_folder", []string{"report", p("noaudit"), "--out", "OUT"}, "noaudit/settings.json"},
		{"report_no_records", []string{"report", p("headeronly"), "--out", "OUT"}, "headeronly/margins.csv: no records"},
		{"study_no_images", []string{"study", "--data", "mnist", "--data-dir", p("nodata"), "--epochs", "1", "--out", "OUT"}, "holds no images"},
		{"selfcheck_no_samples", []string{"selfcheck", "--fixtures", p("fixtures")}, "fixtures/cnn.x.npy: no samples"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := []string{"-q", "--threads", "1"}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "OUT", out))
			}
			stdout, stderr, code := runCLI(t, args...)
			if code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if !strings.Contains(stderr, tt.want) || strings.Count(stderr, tt.want) > 1 {
				t.Errorf("stderr does not say %q once:\n%s", tt.want, stderr)
			}
			if strings.Contains(stdout, "wrote") {
				t.Errorf("stdout says it wrote:\n%s", stdout)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("the refused %s wrote %s", tt.args[0], out)
			}
		})
	}
}

// copyModels copies the MLP fixture into a new folder under each name, and
// an empty file under each of broken; it returns the folder.
func copyModels(t *testing.T, names []string, broken ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		copyFile(t, models+"/mlp.onnx", filepath.Join(dir, n))
	}
	for _, n := range broken {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// An audit prints the PGD robust accuracy beside the clean one, warns when
// -n asks for more images than there are, and says what it wrote; the
// report takes epoch 0, the initialisation.
func TestAuditTableAndReportEpochs(t *testing.T) {
	orttest.Require(t)
	ckpts := copyModels(t, []string{"epoch-000.onnx", "epoch-001.onnx", "epoch-002.onnx"})
	out := filepath.Join(t.TempDir(), "audit")
	stdout, stderr, code := runCLI(t, "audit", ckpts, "-q", "--threads", "1", "--out", out, "--images", models+"/mlp.x.npy", "--labels", arrays+"/y.npy",
		"-n", "10", "--pgd-eps", "0.05", "--pgd-steps", "2")
	if code != 0 {
		t.Fatalf("audit exited %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 1+3*2+1 || !strings.HasPrefix(lines[0], "epoch  split  norm  n  accuracy  PGD linf ε=0.05  mean margin") ||
		lines[len(lines)-1] != "wrote "+filepath.Join(out, "margins.csv") {
		t.Errorf("stdout is not a header, 6 rows and the file written:\n%s", stdout)
	}
	if want := "marginaudit: warning: -n 10: " + models + "/mlp.x.npy holds 4 images: auditing all 4\n"; stderr != want {
		t.Errorf("stderr %q, want only the warning %q", stderr, want)
	}
	report := filepath.Join(t.TempDir(), "report")
	stdout, stderr, code = runCLI(t, "report", out, "--out", report, "--epochs", "0,1,5")
	if code != 0 || !strings.Contains(stdout, "audit has no epoch 5: no histogram of it") {
		t.Errorf("report --epochs 0,1,5 exited %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if _, _, code := runCLI(t, "report", out, "--out", report, "--epochs", "0,-1"); code != 2 {
		t.Errorf("report --epochs 0,-1 exited %d, want 2", code)
	}
}

// Checkpoints without epochs are separate models: the audit's table and
// the report name them (the fixture misclassifies the four images as
// labelled, so the report has no comparison of the two groups to state,
// and says so of every model). A checkpoint that fails has its error printed once,
// the others' table is printed, and nothing says it was written.
func TestAuditSeparateModels(t *testing.T) {
	orttest.Require(t)
	ckpts := copyModels(t, []string{"resnet.onnx", "vgg.onnx"}, "broken.onnx")
	out := filepath.Join(t.TempDir(), "audit")
	args := []string{"audit", ckpts, "--threads", "1", "--out", out, "--images", models + "/mlp.x.npy", "--labels", arrays + "/y.npy", "-n", "4"}
	stdout, stderr, code := runCLI(t, args...)
	if code != 1 {
		t.Fatalf("audit exited %d, want 1: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 1+2*2 || strings.Fields(lines[0])[0] != "checkpoint" || strings.Fields(lines[1])[0] != "resnet.onnx" || strings.Fields(lines[3])[0] != "vgg.onnx" {
		t.Errorf("stdout is not a table of the two models:\n%s", stdout)
	}
	if strings.Contains(stdout, "wrote") {
		t.Errorf("the failed audit says it wrote:\n%s", stdout)
	}
	if strings.Count(stderr, "broken.onnx: empty file, not an ONNX model") != 1 || !strings.Contains(stderr, "broken.onnx: failed (the error follows at the end)") ||
		!strings.Contains(stderr, "resnet.onnx: audited in") {
		t.Errorf("stderr does not report the failure once and the models by name:\n%s", stderr)
	}
	stdout, stderr, code = runCLI(t, "report", "models="+out, "--out", filepath.Join(t.TempDir(), "report"))
	if code != 0 || !strings.Contains(stdout, "not measured: the checkpoints are separate models") || !strings.Contains(stdout, "no model has both misclassified") {
		t.Errorf("report exited %d; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// A checkpoint trained on another data set than the one audited is
// audited with a warning naming it and both data sets, even with -q.
func TestAuditWarnsOfAnotherDataset(t *testing.T) {
	orttest.Require(t)
	requireMNIST(t)
	m, err := onnxgrad.Load(models + "/mlp.onnx")
	if err != nil {
		t.Fatal(err)
	}
	m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String("dataset"), Value: proto.String("fashion-mnist")})
	model := filepath.Join(t.TempDir(), "fashion.onnx")
	if err := onnxgrad.Save(model, m); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runCLI(t, "audit", model, "-q", "--threads", "1", "--data", "mnist", "-n", "2", "--out", filepath.Join(t.TempDir(), "audit"))
	if want := "marginaudit: warning: checkpoint fashion.onnx: its metadata says dataset=fashion-mnist, but the images are mnist\n"; code != 0 || stderr != want {
		t.Errorf("exit status %d, stderr %q; want 0 and %q", code, stderr, want)
	}
}
