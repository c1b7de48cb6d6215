package auditor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/bound"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/internal/testmodels"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// runFixture copies the MLP fixture into dir under the given checkpoint
// names and returns the audit config for its four images.
func runFixture(t *testing.T, names ...string) Config {
	t.Helper()
	orttest.Require(t)
	dir := t.TempDir()
	model, err := os.ReadFile("../testdata/models/mlp.onnx")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), model, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	x, err := npy.ReadFile("../testdata/models/mlp.x.npy")
	if err != nil {
		t.Fatal(err)
	}
	im := &Images{X: x.Data, Labels: []int{3, 1, 4, 1}, Index: []int{10, 11, 12, 13}, Shape: []int64{1, 28, 28}}
	return Config{
		Checkpoints: []string{dir},
		Out:         filepath.Join(t.TempDir(), "audit"),
		Settings: Settings{Data: "fixture", Splits: []Split{Test}, N: 4, Sample: "first", Seed: 1,
			Norms: []Norm{L2, LInf}, DeepFoolParams: attack.DeepFoolParams{Overshoot: 0.02, MaxIter: 50, Retries: 2}, RefineParams: attack.DefaultRefineParams(),
			PGD: PGDSettings{Norms: []Norm{LInf}, Eps: []float64{0.01}, PGDParams: attack.PGDParams{Steps: 5}}},
		Data:    map[Split]*Images{Test: im},
		Threads: 1,
	}
}

type recordingProgress struct {
	skipped, audited []string
	failed           map[string]error
	done             int
	models           []ModelInfo
	warnings         []string
	stages           []string
}

func (p *recordingProgress) Checkpoint(Checkpoint, int, int, int) {}
func (p *recordingProgress) Done(n int)                           { p.done += n }
func (p *recordingProgress) Stage(_ Checkpoint, split Split, step string, images int) {
	p.stages = append(p.stages, fmt.Sprintf("%s %s %d", split, step, images))
}
func (p *recordingProgress) Model(_ Checkpoint, m ModelInfo) { p.models = append(p.models, m) }
func (p *recordingProgress) Warn(_ Checkpoint, msg string)   { p.warnings = append(p.warnings, msg) }
func (p *recordingProgress) Finished(c Checkpoint, skipped bool, err error, _ time.Duration) {
	switch {
	case skipped:
		p.skipped = append(p.skipped, c.Name)
	case err != nil:
		if p.failed == nil {
			p.failed = map[string]error{}
		}
		p.failed[c.Name] = err
	default:
		p.audited = append(p.audited, c.Name)
	}
}

// TestRunRecordsModel audits the MLP exported with a fixed batch of one
// image and a final Softmax: the progress, the store and summary.json say
// that the attacks used log-probabilities and a rewritten batch.
func TestRunRecordsModel(t *testing.T) {
	cfg := runFixture(t)
	m, err := onnxgrad.Load("../testdata/models/mlp.onnx")
	if err != nil {
		t.Fatal(err)
	}
	m = testmodels.FixBatch(m, 1)
	g := m.GetGraph()
	g.Node[len(g.Node)-1].Output[0] = "z"
	g.Node = append(g.Node, &onnxpb.NodeProto{Name: proto.String("softmax"), OpType: proto.String("Softmax"), Input: []string{"z"}, Output: []string{g.GetOutput()[0].GetName()}})
	if err := onnxgrad.Save(filepath.Join(cfg.Checkpoints[0], "epoch-004.onnx"), m); err != nil {
		t.Fatal(err)
	}
	p := &recordingProgress{}
	sum, err := Run(context.Background(), cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	want := ModelInfo{Checkpoint: "epoch-004.onnx", Epoch: 4,
		Scores: "log-probabilities (Softmax replaced by LogSoftmax)", Batch: "batch fixed at 1: rewritten to symbolic",
		EpochFrom: FromName, InputRange: [2]float64{0, 1}, Normalization: "none"}
	if len(p.models) != 1 || p.models[0] != want {
		t.Errorf("progress heard %+v, want %+v", p.models, want)
	}
	read := readSummaryFile(t, cfg.Out)
	for _, s := range []*Summary{sum, read} {
		if c := s.Checkpoints[0]; c.Scores != want.Scores || c.Batch != want.Batch {
			t.Errorf("summary: scores %q, batch %q", c.Scores, c.Batch)
		}
	}
}

func TestRunAuditsResumesAndSkips(t *testing.T) {
	cfg := runFixture(t, "epoch-000.onnx", "epoch-001.onnx")
	p := &recordingProgress{}
	sum, err := Run(context.Background(), cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.audited) != 2 || p.done != 2*4*5 {
		t.Errorf("audited %v with %d attack runs, want 2 checkpoints and 40 runs (4 images: DeepFool and FMN in 2 norms, PGD at 1 radius)", p.audited, p.done)
	}
	stages := []string{"test l2 4", "test l2 refine 4", "test linf 4", "test linf refine 4", "test pgd linf ε=0.01 4"}
	if want := append(slices.Clone(stages), stages...); !slices.Equal(p.stages, want) {
		t.Errorf("stages\n%q, want\n%q", p.stages, want)
	}
	recs, err := readRecordsFile(t, filepath.Join(cfg.Out, MarginsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2*4*2 {
		t.Fatalf("margins.csv has %d rows, want 16", len(recs))
	}
	for _, r := range recs {
		if !r.Success || !(r.Margin > 0) || r.Censored || !(r.MarginRefined <= r.Margin) || r.Index < 10 {
			t.Errorf("implausible record %+v", r)
		}
	}
	if len(sum.PGD) != 2 {
		t.Errorf("summary has %d PGD results, want 2", len(sum.PGD))
	}
	for i, m := range p.models {
		if want := (ModelInfo{Checkpoint: p.audited[i], Epoch: i, Scores: "logits", EpochFrom: FromName, InputRange: [2]float64{0, 1}, Normalization: "none"}); m != want || sum.Checkpoints[i].Scores != "logits" || sum.Checkpoints[i].Batch != "" {
			t.Errorf("model %+v, summary %+v; want %+v", m, sum.Checkpoints[i], want)
		}
	}
	checkConfidenceFile(t, cfg, "epoch-000.onnx", "epoch-001.onnx")

	// A rerun skips both; a third checkpoint is audited alone.
	if err := os.WriteFile(filepath.Join(cfg.Checkpoints[0], "epoch-002.onnx"), mustRead(t, "../testdata/models/mlp.onnx"), 0o644); err != nil {
		t.Fatal(err)
	}
	p = &recordingProgress{}
	if _, err := Run(context.Background(), cfg, p); err != nil {
		t.Fatal(err)
	}
	if len(p.skipped) != 2 || len(p.audited) != 1 {
		t.Errorf("rerun skipped %v and audited %v, want 2 skipped and epoch-002 audited", p.skipped, p.audited)
	}
	recs, _ = readRecordsFile(t, filepath.Join(cfg.Out, MarginsFile))
	if len(recs) != 3*4*2 {
		t.Errorf("margins.csv has %d rows after the rerun, want 24", len(recs))
	}
	checkConfidenceFile(t, cfg, "epoch-000.onnx", "epoch-001.onnx", "epoch-002.onnx")

	// Other settings are refused.
	cfg.Settings.MaxIter = 10
	if _, err := Run(context.Background(), cfg, nil); err == nil {
		t.Error("an audit with other settings was mixed into the store")
	}
}

func TestRunGoesOnPastABadCheckpoint(t *testing.T) {
	cfg := runFixture(t, "epoch-000.onnx", "epoch-002.onnx")
	if err := os.WriteFile(filepath.Join(cfg.Checkpoints[0], "epoch-001.onnx"), []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &recordingProgress{}
	_, err := Run(context.Background(), cfg, p)
	var ce *CheckpointError
	if !errors.As(err, &ce) || ce.Checkpoint != "epoch-001.onnx" {
		t.Fatalf("got %v, want a CheckpointError for epoch-001.onnx", err)
	}
	if len(p.audited) != 2 {
		t.Errorf("audited %v, want the two good checkpoints", p.audited)
	}
}

// checkConfidenceFile checks that confidence.csv holds one row per
// checkpoint and image of the fixture, in epoch order, each the largest
// softmax probability of the PyTorch logits saved with the fixture: the
// checkpoints are all the same MLP. The tolerance is that of
// TestMaxSoftmaxesFixtures.
func checkConfidenceFile(t *testing.T, cfg Config, checkpoints ...string) {
	t.Helper()
	f, err := os.Open(filepath.Join(cfg.Out, ConfidenceFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := ReadConfidence(f, ConfidenceFile) // rejects duplicates
	if err != nil {
		t.Fatal(err)
	}
	im := cfg.Data[Test]
	if len(rows) != len(checkpoints)*im.Len() {
		t.Fatalf("confidence.csv has %d rows, want %d", len(rows), len(checkpoints)*im.Len())
	}
	logits := mustNpy(t, "../testdata/models/mlp.logits.npy")
	k := len(logits.Data) / im.Len()
	for i, c := range rows {
		ck, img := i/im.Len(), i%im.Len()
		want := softmaxMax(logits.Data[img*k : (img+1)*k])
		if c.Checkpoint != checkpoints[ck] || c.Epoch != ck || c.Split != Test || c.Index != im.Index[img] {
			t.Errorf("row %d is %+v, want %s epoch %d test image %d", i, c, checkpoints[ck], ck, im.Index[img])
		}
		if !(c.MaxSoftmax > 0 && c.MaxSoftmax <= 1) || math.Abs(c.MaxSoftmax-want) > 1e-6 {
			t.Errorf("row %d: max_softmax %v, want %v from the PyTorch logits", i, c.MaxSoftmax, want)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readRecordsFile reads a margins.csv file.
func readRecordsFile(t *testing.T, path string) ([]Record, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadRecords(f, path)
}

// Images that cannot be audited are refused before anything is read or
// written, with an error naming them.
func TestRunRefusesDegenerateImages(t *testing.T) {
	for _, tc := range []struct {
		name string
		im   *Images
		want string
	}{
		{"none", nil, "no images for split test"},
		{"empty", &Images{Name: "x.npy"}, "no images for split test"},
		{"zero size", &Images{Name: "x.npy", X: []float32{}, Labels: []int{1}, Index: []int{0}, Shape: []int64{0, 28, 28}}, "x.npy: an image is [0 28 28]: no values"},
		{"no values", &Images{Name: "x.npy", Labels: []int{1}, Index: []int{0}}, "x.npy: 0 values are not 1 whole images"},
		{"indices", &Images{Name: "x.npy", X: make([]float32, 4), Labels: []int{1, 2}, Index: []int{0}}, "x.npy: 2 labels but 1 indices"},
		{"shape", &Images{Name: "x.npy", X: make([]float32, 4), Labels: []int{1, 2}, Index: []int{0, 1}, Shape: []int64{1, 2, 2}}, "x.npy: 4 values, want 2 images of [1 2 2]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "audit")
			cfg := Config{Checkpoints: []string{"no-such.onnx"}, Out: out,
				Settings: Settings{Data: "x.npy,y.npy", Splits: []Split{Test}, N: 1, Sample: SampleFirst, Norms: []Norm{L2},
					DeepFoolParams: attack.DefaultDeepFoolParams()}, Data: map[Split]*Images{Test: tc.im}}
			if _, err := Run(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("the refused audit wrote %s", out)
			}
		})
	}
}

// An audit whose every checkpoint fails writes nothing: no folder, no
// settings.json, no empty margins.csv.
func TestRunWritesNothingWhenEveryCheckpointFails(t *testing.T) {
	cfg := runFixture(t)
	if err := os.WriteFile(filepath.Join(cfg.Checkpoints[0], "epoch-001.onnx"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := &recordingProgress{}
	sum, err := Run(context.Background(), cfg, p)
	var ce *CheckpointError
	if !errors.As(err, &ce) || sum != nil || len(p.failed) != 1 {
		t.Fatalf("summary %v, error %v; want no summary and a CheckpointError", sum, err)
	}
	if _, err := os.Stat(cfg.Out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed audit wrote %s (%v)", cfg.Out, err)
	}
}

// A checkpoint whose metadata names another data set than the images' is
// audited with a warning naming it and both data sets; the same data set
// in another letter case, or images without a data set, give none.
func TestRunWarnsOfAnotherDataset(t *testing.T) {
	cfg := runFixture(t)
	m, err := onnxgrad.Load("../testdata/models/mlp.onnx")
	if err != nil {
		t.Fatal(err)
	}
	m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String("dataset"), Value: proto.String("mnist")})
	if err := onnxgrad.Save(filepath.Join(cfg.Checkpoints[0], "epoch-001.onnx"), m); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dataset, want string }{
		{"fashion-mnist", "checkpoint epoch-001.onnx: its metadata says dataset=mnist, but the images are fashion-mnist"},
		{"MNIST", ""},
		{"", ""},
	} {
		cfg.Out = filepath.Join(t.TempDir(), "audit")
		cfg.Data[Test].Dataset = tc.dataset
		p := &recordingProgress{}
		if _, err := Run(context.Background(), cfg, p); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(p.warnings, "\n"); got != tc.want {
			t.Errorf("images of %q: warnings %q, want %q", tc.dataset, got, tc.want)
		}
	}
}

// TestRunCertifiesSoundly audits PyTorch-exported fixtures with refinement
// and certified bounds (6 bisection steps, to be quick; the CNN fixture
// "cnn" takes 90 s and is left out), each image labelled with its
// prediction (so that every image gets a bound): on every image of every fixture,
// margin_lower ≤ margin_refined ≤ margin, and the bounds are not all 0. A
// model with an op bound propagation does not support fails its
// checkpoint with an error naming the op.
func TestRunCertifiesSoundly(t *testing.T) {
	orttest.Require(t)
	checked := 0
	for _, name := range []string{"mlp", "mlp_view", "cnn_small"} {
		t.Run(name, func(t *testing.T) {
			cfg := fixtureAudit(t, name)
			cfg.Settings.CertifySettings = CertifySettings{Certify: true, Steps: 6}
			if _, err := Run(context.Background(), cfg, nil); err != nil {
				t.Fatal(err)
			}
			recs, err := readRecordsFile(t, filepath.Join(cfg.Out, MarginsFile))
			if err != nil {
				t.Fatal(err)
			}
			positive := 0
			for _, r := range recs {
				if !r.Certified || !r.Refined() || !(r.MarginLower <= r.MarginRefined) || (r.Success && !(r.MarginRefined <= r.Margin)) {
					t.Errorf("image %d %s: lower %v, refined %v (censored %t), DeepFool %v (success %t)",
						r.Index, r.Norm, r.MarginLower, r.MarginRefined, r.Censored, r.Margin, r.Success)
				}
				if r.MarginLower > 0 {
					positive++
				}
				checked++
			}
			if positive == 0 {
				t.Errorf("no image has a positive certified bound")
			}
			t.Logf("%d images × norms, %d with a positive certified bound", len(recs), positive)
		})
	}
	t.Logf("soundness checked on %d images × norms", checked)

	cfg := fixtureAudit(t, "op_activations")
	cfg.Settings.CertifySettings = DefaultCertifySettings()
	_, err := Run(context.Background(), cfg, nil)
	var ue *bound.UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "op_activations.onnx") {
		t.Errorf("err = %v, want a checkpoint error wrapping *bound.UnsupportedError", err)
	}
}

// fixtureAudit is the refined audit of the fixture testdata/models/NAME
// on its images, labelled with its predictions.
func fixtureAudit(t *testing.T, name string) Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name+".onnx"), mustRead(t, "../testdata/models/"+name+".onnx"), 0o644); err != nil {
		t.Fatal(err)
	}
	x, err := npy.ReadFile("../testdata/models/" + name + ".x.npy")
	if err != nil {
		t.Fatal(err)
	}
	logits, err := npy.ReadFile("../testdata/models/" + name + ".logits.npy")
	if err != nil {
		t.Fatal(err)
	}
	n := int(logits.Shape[0])
	k := len(logits.Data) / n
	im := &Images{X: x.Data, Labels: make([]int, n), Index: make([]int, n)}
	for _, d := range x.Shape[1:] {
		im.Shape = append(im.Shape, int64(d))
	}
	for i := range n {
		im.Index[i] = i
		im.Labels[i] = argmaxOf(logits.Data[i*k : (i+1)*k])
	}
	return Config{
		Checkpoints: []string{dir},
		Out:         filepath.Join(t.TempDir(), "audit"),
		Settings: Settings{Data: "fixture", Splits: []Split{Test}, N: n, Sample: "first", Seed: 1, Range: [2]float64{0, 1},
			Norms: []Norm{L2, LInf}, DeepFoolParams: attack.DefaultDeepFoolParams(), RefineParams: attack.DefaultRefineParams()},
		Data:    map[Split]*Images{Test: im},
		Threads: 1,
	}
}

func argmaxOf(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
