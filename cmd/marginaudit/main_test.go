package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// models is the folder of the repository's ONNX fixtures, arrays that of
// the arrays written by testdata/arrays/make_arrays.py.
const (
	models = "../../testdata/models"
	arrays = "testdata/arrays"
)

// runCLI runs the program with args (without the program name) and returns
// its stdout, stderr and exit status.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(append([]string{progName}, args...), &out, &errOut)
	return out.String(), errOut.String(), exitCode(err)
}

// checkGolden compares got with testdata/name, or rewrites the file with -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

// Golden stdout and stderr of commands that need no onnxruntime: the inspect
// report, help, and usage and input errors.
func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"inspect_mlp", []string{"inspect", models + "/mlp.onnx"}, 0},
		{"inspect_cnn", []string{"inspect", models + "/cnn.onnx"}, 0},
		{"inspect_unsupported", []string{"inspect", models + "/unsupported.onnx"}, 0},
		{"inspect_cnn_json", []string{"inspect", models + "/cnn.onnx", "--json"}, 0},
		{"inspect_unsupported_json", []string{"inspect", "--json", models + "/unsupported.onnx"}, 0},
		{"inspect_missing_file", []string{"inspect", "testdata/missing.onnx"}, 1},
		{"inspect_not_onnx", []string{"inspect", models + "/cnn.x.npy"}, 1},
		{"help", []string{"help"}, 0},
		{"help_inspect", []string{"help", "inspect"}, 0},
		{"help_grad", []string{"grad", "--help"}, 0},
		{"help_jacobian", []string{"help", "jacobian"}, 0},
		{"help_selfcheck", []string{"selfcheck", "-h"}, 0},
		{"usage_no_command", nil, 2},
		{"usage_unknown_command", []string{"audit-all"}, 2},
		{"usage_unknown_flag", []string{"inspect", models + "/cnn.onnx", "--jsn"}, 2},
		{"usage_unknown_global_flag", []string{"--verbose", "inspect", models + "/cnn.onnx"}, 2},
		{"usage_help_topic", []string{"help", "nosuch"}, 2},
		{"usage_inspect_no_model", []string{"inspect"}, 2},
		{"usage_inspect_two_models", []string{"inspect", "a.onnx", "b.onnx"}, 2},
		{"usage_grad_no_out", []string{"grad", models + "/cnn.onnx"}, 2},
		{"usage_grad_classes", []string{"grad", models + "/cnn.onnx", "--out", "x.onnx", "--classes", "3"}, 2},
		{"usage_grad_params_jacobian", []string{"grad", models + "/cnn.onnx", "--out", "x.onnx", "--wrt", "params", "--jacobian"}, 2},
		{"usage_grad_input_shape", []string{"grad", models + "/cnn.onnx", "--out", "x.onnx", "--input-shape", "1,28,x"}, 2},
		{"usage_grad_bad_int", []string{"grad", models + "/cnn.onnx", "--out", "x.onnx", "--jacobian", "--classes", "three"}, 2},
		{"usage_jacobian_no_input", []string{"jacobian", models + "/cnn.onnx", "--out", "j.npy"}, 2},
		{"usage_jacobian_batch", []string{"jacobian", models + "/cnn.onnx", "--input", "x.npy", "--out", "j.npy", "--batch", "0"}, 2},
		{"usage_selfcheck_argument", []string{"selfcheck", "cnn"}, 2},
		{"help_train", []string{"help", "train"}, 0},
		{"help_audit", []string{"audit", "--help"}, 0},
		{"usage_train_adv_eps_alone", []string{"train", "--data", "mnist", "--arch", "mlp", "--out", "x", "--adv-eps", "0.1"}, 2},
		{"usage_train_bad_adv", []string{"train", "--data", "mnist", "--arch", "mlp", "--out", "x", "--adv", "fgsm"}, 2},
		{"usage_train_no_out", []string{"train", "--data", "mnist", "--arch", "mlp"}, 2},
		{"usage_train_bad_hidden", []string{"train", "--data", "mnist", "--arch", "mlp", "--out", "x", "--hidden", "256,-1"}, 2},
		{"usage_audit_no_checkpoints", []string{"audit", "--out", "x", "--data", "mnist"}, 2},
		{"usage_audit_no_data", []string{"audit", "ckpts", "--out", "x"}, 2},
		{"usage_audit_both_data", []string{"audit", "ckpts", "--out", "x", "--data", "mnist", "--images", "x.npy", "--labels", "y.npy"}, 2},
		{"usage_audit_bad_norm", []string{"audit", "ckpts", "--out", "x", "--data", "mnist", "--norm", "l3"}, 2},
		{"usage_audit_bad_range", []string{"audit", "ckpts", "--out", "x", "--data", "mnist", "--range", "1,0"}, 2},
		{"usage_audit_bad_layout", []string{"audit", "ckpts", "--out", "x", "--data", "mnist", "--layout", "chw"}, 2},
		{"audit_negative_label", []string{"audit", models + "/cnn.onnx", "--out", "x", "--images", arrays + "/x_nhwc.npy", "--labels", arrays + "/y_negative.npy"}, 1},
		{"audit_fraction_label", []string{"audit", models + "/cnn.onnx", "--out", "x", "--images", arrays + "/x_nhwc.npy", "--labels", arrays + "/y_fraction.npy"}, 1},
		{"audit_bool_labels", []string{"audit", models + "/cnn.onnx", "--out", "x", "--images", arrays + "/x_nhwc.npy", "--labels", "../../internal/npy/testdata/b1.npy"}, 1},
		{"jacobian_too_many_classes", []string{"jacobian", models + "/cnn.onnx", "--input", models + "/cnn.x.npy", "--out", "j.npy", "--classes", "11"}, 1},
		{"jacobian_bad_shape", []string{"jacobian", models + "/cnn.onnx", "--input", models + "/misc.x.npy", "--out", "j.npy"}, 1},
		{"jacobian_bad_rank", []string{"jacobian", models + "/cnn.onnx", "--input", "../../internal/npy/testdata/f4_2d.npy", "--out", "j.npy"}, 1},
		{"jacobian_bad_dtype", []string{"jacobian", models + "/cnn.onnx", "--input", "../../internal/npy/testdata/b1.npy", "--out", "j.npy"}, 1},
		{"jacobian_truncated_npy", []string{"jacobian", models + "/cnn.onnx", "--input", "../../internal/npy/testdata/truncated.npy", "--out", "j.npy"}, 1},
		{"jacobian_unsupported", []string{"jacobian", models + "/unsupported.onnx", "--input", "../../internal/npy/testdata/f4_4d.npy", "--out", "j.npy"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, tt.args...)
			// The protobuf library randomly writes some spaces in its
			// errors as non-breaking spaces, to keep tests from relying on
			// its wording.
			stderr = strings.ReplaceAll(stderr, "\u00a0", " ")
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			checkGolden(t, tt.name+".stdout", stdout)
			checkGolden(t, tt.name+".stderr", stderr)
			for _, f := range []string{"x.onnx", "j.npy", "x"} {
				if _, err := os.Stat(f); err == nil {
					os.Remove(f)
					t.Errorf("the failed run wrote %s", f)
				}
			}
		})
	}
}

func TestReorderArgs(t *testing.T) {
	app := newApp(nil, nil)
	tests := []struct{ in, want string }{
		{"grad m.onnx --out g.onnx", "grad --out g.onnx m.onnx"},
		{"grad m.onnx --out=g.onnx -q --jacobian", "-q grad --out=g.onnx --jacobian m.onnx"},
		{"jacobian m.onnx --threads 2 --input x.npy --out j.npy", "--threads 2 jacobian --input x.npy --out j.npy m.onnx"},
		{"--threads 2 inspect m.onnx --json", "--threads 2 inspect --json m.onnx"},
		{"inspect --json m.onnx", "inspect --json m.onnx"},
		{"grad m.onnx --out g.onnx -- -odd.onnx", "grad --out g.onnx -- m.onnx -odd.onnx"},
		{"grad m.onnx --classes -1", "grad --classes -1 m.onnx"},
		{"inspect m.onnx --bogus value", "inspect --bogus m.onnx value"}, // unknown flags stay with the command
		{"inspect m.onnx -h", "inspect -h m.onnx"},
		{"help grad", "help grad"},
		{"nosuch m.onnx --json", "nosuch m.onnx --json"},
		{"-q", "-q"},
		{"", ""},
	}
	for _, tt := range tests {
		args := append([]string{progName}, strings.Fields(tt.in)...)
		got := strings.Join(reorderArgs(app, args)[1:], " ")
		if got != tt.want {
			t.Errorf("reorderArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestGradUnsupported(t *testing.T) {
	out := filepath.Join(t.TempDir(), "g.onnx")
	stdout, stderr, code := runCLI(t, "grad", models+"/unsupported.onnx", "--out", out, "--jacobian")
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	for _, want := range []string{
		`marginaudit: ../../testdata/models/unsupported.onnx: unsupported op "CumSum" in node "/CumSum": no gradient rule` + "\n",
		"\nhint: ",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q does not contain %q", stderr, want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("the failed grad wrote %s", out)
	}
}

// grad writes the model and describes it on stdout.
func TestGradDescribes(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"grad_vjp", nil},
		{"grad_jacobian", []string{"--jacobian"}},
		{"grad_jacobian_classes", []string{"--jacobian", "--classes", "3", "--input-shape", "1,28,28"}},
		{"grad_params", []string{"--wrt", "params"}},
		{"grad_wrt_names", []string{"--wrt", "input,9.bias"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, tt.name+".onnx")
			args := append([]string{"grad", models + "/cnn.onnx", "--out", out}, tt.args...)
			stdout, stderr, code := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
			}
			if stderr != "" {
				t.Errorf("stderr %q, want nothing", stderr)
			}
			checkGolden(t, tt.name+".stdout", strings.ReplaceAll(stdout, dir, "DIR"))
			if _, err := os.Stat(out); err != nil {
				t.Error(err)
			}
			entries, _ := os.ReadDir(dir)
			if slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.Contains(e.Name(), ".tmp") }) {
				t.Errorf("temporary files left in %s", dir)
			}
		})
	}
}

func TestWrapText(t *testing.T) {
	s := wrapText(strings.Repeat("word ", 40) + "\n\nnext paragraph")
	for line := range strings.SplitSeq(s, "\n") {
		if len(line) > helpWidth {
			t.Errorf("line of %d columns: %q", len(line), line)
		}
	}
	if !strings.HasSuffix(s, "word\n\nnext paragraph") {
		t.Errorf("paragraphs not kept: %q", s)
	}
}

// grad and jacobian name --input-shape when the model's symbolic sizes
// keep onnxgrad from building the graph.
func TestInputShapeHint(t *testing.T) {
	m, err := onnxgrad.Load(models + "/cnn.onnx")
	if err != nil {
		t.Fatal(err)
	}
	dims := m.GetGraph().GetInput()[0].GetType().GetTensorType().GetShape().GetDim()
	dims[2].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "H"}
	dims[3].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "W"}
	dir := t.TempDir()
	sym := filepath.Join(dir, "sym.onnx")
	if err := onnxgrad.Save(sym, m); err != nil {
		t.Fatal(err)
	}
	const hint = "\nhint: input \"input\" [N, 1, H, W] leaves sizes symbolic: fix them with --input-shape 1,H,W\n"
	for _, args := range [][]string{
		{"grad", sym, "--out", filepath.Join(dir, "g.onnx"), "--jacobian"},
		{"jacobian", sym, "--input", "../../internal/npy/testdata/f4_2d.npy", "--out", filepath.Join(dir, "j.npy")},
	} {
		_, stderr, code := runCLI(t, args...)
		if code != 1 || !strings.HasSuffix(stderr, hint) {
			t.Errorf("%s: exit status %d, stderr %q; want 1 and the hint %q", args[0], code, stderr, hint)
		}
	}
	if _, stderr, code := runCLI(t, "grad", sym, "--out", filepath.Join(dir, "g.onnx"), "--jacobian", "--input-shape", "1,28,28"); code != 0 {
		t.Errorf("grad with --input-shape: exit status %d: %s", code, stderr)
	}
}
