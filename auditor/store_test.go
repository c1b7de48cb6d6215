package auditor

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/marginaudit/marginaudit/internal/atomicfile"
)

// makePart returns checkpoint i's results: epoch i, n test images in two
// norms with margins whose float64 bits are not round, every 17th attack
// failed, two PGD results, and the images' confidences.
func makePart(i, n int) *Part {
	name := fmt.Sprintf("epoch-%03d.onnx", i)
	p := &Part{Checkpoint: name, Epoch: i}
	for idx := range n {
		label, pred := idx%10, (idx+i)%10
		if idx%3 == 0 {
			pred = label
		}
		p.Confidence = append(p.Confidence, Confidence{Checkpoint: name, Epoch: i, Split: Test, Index: idx,
			MaxSoftmax: 1 / (1 + math.Sqrt(float64(i*n+idx)))})
		for _, norm := range []Norm{L2, LInf} {
			r := rec(name, i, Test, idx, label, pred, norm, math.Sqrt(float64(i*n+idx+1))/7, true)
			if norm == LInf {
				r.Margin /= 29
			}
			if idx%17 == 5 {
				r.Success, r.Margin, r.Retries = false, math.NaN(), 10
			} else if idx%2 == 0 {
				r.MarginRefined = r.Margin * 0.9
			}
			p.Records = append(p.Records, r)
		}
	}
	for _, eps := range []float64{0.1, 0.3} {
		robust := n / (2 + int(eps*10))
		p.PGD = append(p.PGD, PGDResult{Checkpoint: name, Epoch: i, Split: Test, Norm: LInf, Eps: eps, Images: n, Robust: robust})
		for idx := range n {
			p.Robust = append(p.Robust, RobustImage{Checkpoint: name, Epoch: i, Split: Test, Norm: LInf, Eps: eps, Index: idx, Robust: idx < robust})
		}
	}
	p.Model = &ModelInfo{Checkpoint: name, Epoch: i, Scores: "logits"}
	if i%2 == 1 {
		p.Model.Scores, p.Model.Batch = "log-probabilities (Softmax replaced by LogSoftmax)", "batch fixed at 1: rewritten to symbolic"
	}
	return p
}

// marginsCSV returns what margins.csv must hold for the given parts, in
// epoch order.
func marginsCSV(t *testing.T, parts ...*Part) []byte {
	t.Helper()
	slices.SortFunc(parts, func(a, b *Part) int { return a.Epoch - b.Epoch })
	var all []Record
	for _, p := range parts {
		all = append(all, p.Records...)
	}
	var b bytes.Buffer
	if err := WriteRecords(&b, all); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// confidenceCSV returns what confidence.csv must hold for the given parts,
// in epoch order.
func confidenceCSV(t *testing.T, parts ...*Part) []byte {
	t.Helper()
	slices.SortFunc(parts, func(a, b *Part) int { return a.Epoch - b.Epoch })
	var all []Confidence
	for _, p := range parts {
		all = append(all, p.Confidence...)
	}
	var b bytes.Buffer
	if err := WriteConfidence(&b, all); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// checkStore checks that exactly the given parts are finished, with their
// records, PGD results, confidences and models intact, and that margins.csv and
// confidence.csv hold them once each, in order.
func checkStore(t *testing.T, st *Store, parts ...*Part) {
	t.Helper()
	var names []string
	for _, p := range parts {
		names = append(names, p.Checkpoint)
	}
	slices.Sort(names) // epoch order is name order here
	if got := st.Finished(); !slices.Equal(got, names) {
		t.Fatalf("finished %v, want %v", got, names)
	}
	got, err := os.ReadFile(filepath.Join(st.Dir(), MarginsFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := marginsCSV(t, parts...); !bytes.Equal(got, want) {
		t.Fatalf("margins.csv has %d bytes, want %d", len(got), len(want))
	}
	// ReadRecords rejects duplicate rows.
	if _, err := ReadRecords(bytes.NewReader(got), MarginsFile); err != nil {
		t.Fatal(err)
	}
	checkRobustFile(t, st, parts...)
	got, err = os.ReadFile(filepath.Join(st.Dir(), ConfidenceFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := confidenceCSV(t, parts...); !bytes.Equal(got, want) {
		t.Fatalf("confidence.csv has %d bytes, want %d", len(got), len(want))
	}
	// ReadConfidence rejects duplicate rows.
	read, err := ReadConfidence(bytes.NewReader(got), ConfidenceFile)
	if err != nil {
		t.Fatal(err)
	}
	// The parts on disk: parts is in epoch order now (marginsCSV).
	var pgd, wantPGD []PGDResult
	var conf []Confidence
	var models, wantModels []ModelInfo
	for i, p := range storedParts(t, st) {
		if len(p.Records) != len(parts[i].Records) {
			t.Errorf("%s: %d records stored, want %d", p.Checkpoint, len(p.Records), len(parts[i].Records))
		}
		pgd, wantPGD = append(pgd, p.PGD...), append(wantPGD, parts[i].PGD...)
		conf = append(conf, p.Confidence...)
		models, wantModels = append(models, *p.Model), append(wantModels, *parts[i].Model)
	}
	if !slices.Equal(pgd, wantPGD) {
		t.Errorf("stored PGD results %+v, want %+v", pgd, wantPGD)
	}
	if !slices.Equal(conf, read) {
		t.Errorf("the confidence parts have %d rows, confidence.csv %d, or they differ", len(conf), len(read))
	}
	if !slices.Equal(models, wantModels) {
		t.Errorf("stored models %+v, want %+v", models, wantModels)
	}
}

// storedParts reads the parts of st's finished checkpoints, by epoch.
func storedParts(t *testing.T, st *Store) []*Part {
	t.Helper()
	var out []*Part
	for _, name := range st.Finished() {
		p, err := st.readAll(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func TestStoreResume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	parts := []*Part{makePart(0, 40), makePart(1, 40), makePart(2, 40), makePart(3, 40)}

	st, err := OpenStore(dir, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts[:2] {
		if err := st.Commit(p); err != nil {
			t.Fatal(err)
		}
	}
	checkStore(t, st, parts[:2]...)

	// Crash while committing checkpoint 2: its PGD part was renamed into
	// place, its margins part was half written to a temporary file.
	var b bytes.Buffer
	WriteRecords(&b, parts[2].Records)
	half := b.Bytes()[:b.Len()/2]
	tmp := filepath.Join(dir, PartsDir, ".epoch-002.onnx.csv.tmp-123")
	os.WriteFile(tmp, half, 0o644)
	b.Reset()
	writePGD(&b, parts[2].PGD)
	os.WriteFile(filepath.Join(dir, PGDPartsDir, "epoch-002.onnx.csv"), b.Bytes(), 0o644)
	b.Reset()
	WriteConfidence(&b, parts[2].Confidence)
	os.WriteFile(filepath.Join(dir, ConfidencePartsDir, "epoch-002.onnx.csv"), b.Bytes(), 0o644)
	b.Reset()
	writeModelInfo(&b, parts[2].Model)
	os.WriteFile(filepath.Join(dir, ModelPartsDir, "epoch-002.onnx.csv"), b.Bytes(), 0o644)
	b.Reset()
	WriteRobust(&b, parts[2].Robust)
	os.WriteFile(filepath.Join(dir, RobustPartsDir, "epoch-002.onnx.csv"), b.Bytes(), 0o644)
	// Crash after committing checkpoint 3 but before margins.csv and
	// confidence.csv were rebuilt: its parts are in place, the combined
	// files are stale.
	b.Reset()
	writePGD(&b, parts[3].PGD)
	os.WriteFile(filepath.Join(dir, PGDPartsDir, "epoch-003.onnx.csv"), b.Bytes(), 0o644)
	b.Reset()
	WriteConfidence(&b, parts[3].Confidence)
	os.WriteFile(filepath.Join(dir, ConfidencePartsDir, "epoch-003.onnx.csv"), b.Bytes(), 0o644)
	b.Reset()
	writeModelInfo(&b, parts[3].Model)
	os.WriteFile(filepath.Join(dir, ModelPartsDir, "epoch-003.onnx.csv"), b.Bytes(), 0o644)
	b.Reset()
	WriteRobust(&b, parts[3].Robust)
	os.WriteFile(filepath.Join(dir, RobustPartsDir, "epoch-003.onnx.csv"), b.Bytes(), 0o644)
	b.Reset()
	WriteRecords(&b, parts[3].Records)
	os.WriteFile(filepath.Join(dir, PartsDir, "epoch-003.onnx.csv"), b.Bytes(), 0o644)
	// And temporary files of the combined files and of a confidence part.
	os.WriteFile(filepath.Join(dir, ".margins.csv.tmp-9"), half, 0o644)
	os.WriteFile(filepath.Join(dir, ".confidence.csv.tmp-9"), half, 0o644)
	os.WriteFile(filepath.Join(dir, ConfidencePartsDir, ".epoch-002.onnx.csv.tmp-5"), half, 0o644)

	st, err = OpenStore(dir, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, true, false, true} {
		if got := st.Done(parts[i].Checkpoint); got != want {
			t.Errorf("Done(%s) = %t, want %t", parts[i].Checkpoint, got, want)
		}
	}
	checkStore(t, st, parts[0], parts[1], parts[3])
	for _, p := range []string{tmp, filepath.Join(dir, ".margins.csv.tmp-9"), filepath.Join(dir, ".confidence.csv.tmp-9"),
		filepath.Join(dir, PGDPartsDir, "epoch-002.onnx.csv"), filepath.Join(dir, ConfidencePartsDir, "epoch-002.onnx.csv"),
		filepath.Join(dir, ModelPartsDir, "epoch-002.onnx.csv"), filepath.Join(dir, RobustPartsDir, "epoch-002.onnx.csv"),
		filepath.Join(dir, ConfidencePartsDir, ".epoch-002.onnx.csv.tmp-5")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", p, err)
		}
	}

	// Resume: only checkpoint 2 is left to do.
	for _, p := range parts {
		if !st.Done(p.Checkpoint) {
			if err := st.Commit(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkStore(t, st, parts...)
	assertNoTemp(t, dir)
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && atomicfile.IsTemp(d.Name()) {
			t.Errorf("temporary file %s left behind", path)
		}
		return nil
	})
}

func TestStoreRecommit(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	a, b := makePart(1, 10), makePart(2, 10)
	st.Commit(a)
	st.Commit(b)
	a2 := makePart(1, 6) // fewer images: the old rows must all go
	if err := st.Commit(a2); err != nil {
		t.Fatal(err)
	}
	checkStore(t, st, a2, b)
}

// A store written before confidence parts opens, has no confidences and
// no confidence.csv, and keeps the confidences of checkpoints committed
// later.
func TestStoreWithoutConfidence(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	old := []*Part{makePart(0, 10), makePart(1, 10)}
	for _, p := range old {
		if err := st.Commit(p); err != nil {
			t.Fatal(err)
		}
	}
	// Make it an old store.
	if err := os.RemoveAll(filepath.Join(dir, ConfidencePartsDir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, ConfidenceFile)); err != nil {
		t.Fatal(err)
	}
	noConfidence := func(st *Store) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(dir, ConfidenceFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a store without confidences has %s: %v", ConfidenceFile, err)
		}
		for _, p := range storedParts(t, st) {
			if len(p.Confidence) != 0 {
				t.Errorf("%s: %d confidences stored, want none", p.Checkpoint, len(p.Confidence))
			}
		}
	}

	st, err = OpenStore(dir, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Done(old[0].Checkpoint) || !st.Done(old[1].Checkpoint) {
		t.Fatalf("finished %v after reopening", st.Finished())
	}
	noConfidence(st)
	for _, p := range storedParts(t, st) {
		if len(p.Records) != 20 {
			t.Errorf("%s: %d records, want 20", p.Checkpoint, len(p.Records))
		}
	}

	// A part committed without confidences adds none.
	bare := makePart(2, 10)
	bare.Confidence = nil
	if err := st.Commit(bare); err != nil {
		t.Fatal(err)
	}
	noConfidence(st)

	// A new part with confidences: confidence.csv holds its rows alone,
	// and the report finds the old images missing.
	p := makePart(3, 10)
	if err := st.Commit(p); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, ConfidenceFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := confidenceCSV(t, p); !bytes.Equal(got, want) {
		t.Errorf("confidence.csv:\n%s\nwant\n%s", got, want)
	}

	// A confidence.csv of a store without confidence parts is left alone.
	dir = t.TempDir()
	st, _ = OpenStore(dir, testSettings())
	st.Commit(bare)
	mine := []byte("checkpoint,epoch,split,index,max_softmax\nepoch-002.onnx,2,test,0,0.5\n")
	os.WriteFile(filepath.Join(dir, ConfidenceFile), mine, 0o644)
	if _, err := OpenStore(dir, testSettings()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, ConfidenceFile)); !bytes.Equal(got, mine) {
		t.Errorf("reopening changed confidence.csv to %q", got)
	}
}

func TestStoreSettingsMismatch(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(makePart(0, 5)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, SettingsFile))

	other := testSettings()
	other.N, other.Overshoot, other.PGD.Steps = 500, 0.05, 20
	_, err = OpenStore(dir, other)
	var se *SettingsError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *SettingsError", err)
	}
	want := []SettingDiff{{"n", "4", "500"}, {"overshoot", "0.02", "0.05"}, {"pgd.steps", "40", "20"}}
	if !slices.Equal(se.Diffs, want) || se.Path != filepath.Join(dir, SettingsFile) {
		t.Errorf("diffs %v in %s, want %v", se.Diffs, se.Path, want)
	}
	for _, s := range []string{"n: 4 before, 500 now", "overshoot: 0.02 before, 0.05 now", "pgd.steps: 40 before, 20 now"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q lacks %q", err, s)
		}
	}
	after, _ := os.ReadFile(filepath.Join(dir, SettingsFile))
	if !bytes.Equal(before, after) {
		t.Error("a refused open changed settings.json")
	}
	// The same settings still open, with the finished checkpoint.
	st, err = OpenStore(dir, testSettings())
	if err != nil || !st.Done("epoch-000.onnx") {
		t.Fatalf("reopen: %v", err)
	}
}

func TestStoreOpenErrors(t *testing.T) {
	// Parts without settings.json.
	dir := t.TempDir()
	st, _ := OpenStore(dir, testSettings())
	st.Commit(makePart(0, 3))
	os.Remove(filepath.Join(dir, SettingsFile))
	if _, err := OpenStore(dir, testSettings()); err == nil || !strings.Contains(err.Error(), "no settings.json") {
		t.Errorf("err = %v, want a missing settings error", err)
	}

	// A corrupt part is named, not repaired.
	dir = t.TempDir()
	st, _ = OpenStore(dir, testSettings())
	st.Commit(makePart(0, 3))
	part := filepath.Join(dir, PartsDir, "epoch-000.onnx.csv")
	data, _ := os.ReadFile(part)
	os.WriteFile(part, bytes.Replace(data, []byte(",test,"), []byte(",tset,"), 1), 0o644)
	_, err := OpenStore(dir, testSettings())
	var pe *ParseError
	if !errors.As(err, &pe) || pe.File != part || pe.Line != 2 || pe.Field != "split" {
		t.Errorf("err = %v, want a *ParseError at %s:2 split", err, part)
	}

	// A part holding another checkpoint's rows.
	os.WriteFile(part, data, 0o644)
	os.Rename(part, filepath.Join(dir, PartsDir, "other.onnx.csv"))
	if _, err := OpenStore(dir, testSettings()); err == nil || !strings.Contains(err.Error(), "a record of checkpoint epoch-000.onnx") {
		t.Errorf("err = %v, want a foreign record error", err)
	}

	// Two parts of one epoch.
	dir = t.TempDir()
	st, _ = OpenStore(dir, testSettings())
	st.Commit(makePart(0, 3))
	other := makePart(0, 3)
	other.Checkpoint = "other.onnx"
	for i := range other.Records {
		other.Records[i].Checkpoint = other.Checkpoint
	}
	var b bytes.Buffer
	WriteRecords(&b, other.Records)
	os.WriteFile(filepath.Join(dir, PartsDir, "other.onnx.csv"), b.Bytes(), 0o644)
	if _, err := OpenStore(dir, testSettings()); err == nil || !strings.Contains(err.Error(), "both have epoch 0") {
		t.Errorf("err = %v, want a shared epoch error", err)
	}

	// Confidence parts: corrupt, of another checkpoint, of another epoch.
	dir = t.TempDir()
	st, _ = OpenStore(dir, testSettings())
	st.Commit(makePart(0, 3))
	conf := filepath.Join(dir, ConfidencePartsDir, "epoch-000.onnx.csv")
	data, _ = os.ReadFile(conf)
	for _, tc := range []struct{ old, new, msg string }{
		{",test,", ",tset,", conf + ":2: column 3 (split)"},
		{"epoch-000.onnx,", "other.onnx,", conf + ": a confidence of checkpoint other.onnx"},
		{"epoch-000.onnx,0,", "epoch-000.onnx,5,", conf + ": epoch 5, but 0 in " + filepath.Join(dir, PartsDir, "epoch-000.onnx.csv")},
	} {
		os.WriteFile(conf, bytes.ReplaceAll(data, []byte(tc.old), []byte(tc.new)), 0o644)
		if _, err := OpenStore(dir, testSettings()); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("err = %v, want %q", err, tc.msg)
		}
	}

	// settings.json that is not JSON.
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, SettingsFile), []byte("{"), 0o644)
	if _, err := OpenStore(dir, testSettings()); err == nil || !strings.Contains(err.Error(), "settings.json") {
		t.Errorf("err = %v, want a settings.json error", err)
	}
}

func TestStoreCommitErrors(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(makePart(1, 4)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(p *Part)
		msg    string
	}{
		{"foreign record", func(p *Part) { p.Records[1].Checkpoint = "x.onnx" }, "record 1 is of x.onnx (epoch 2)"},
		{"foreign epoch", func(p *Part) { p.PGD[0].Epoch = 7 }, "PGD result 0 is of epoch-002.onnx (epoch 7)"},
		{"bad name", func(p *Part) {
			p.Checkpoint = "../x.onnx"
			for i := range p.Records {
				p.Records[i].Checkpoint = p.Checkpoint
			}
			p.PGD, p.Confidence, p.Model, p.Robust = nil, nil, nil, nil
		}, "not a plain file name"},
		{"epoch taken", func(p *Part) {
			p.Epoch = 1
			for i := range p.Records {
				p.Records[i].Epoch = 1
			}
			p.PGD, p.Confidence, p.Model, p.Robust = nil, nil, nil, nil
		}, "epoch 1 belongs to the finished checkpoint epoch-001.onnx"},
		{"duplicate", func(p *Part) { p.Records = append(p.Records, p.Records[0]) }, "two records for epoch-002.onnx"},
		{"invalid", func(p *Part) { p.Records[2].Iterations = -1 }, "negative iterations"},
		{"foreign confidence", func(p *Part) { p.Confidence[3].Epoch = 1 }, "confidence 3 is of epoch-002.onnx (epoch 1)"},
		{"confidence twice", func(p *Part) { p.Confidence[1].Index = 0 }, "two confidences for epoch-002.onnx test image 0"},
		{"confidence invalid", func(p *Part) { p.Confidence[0].MaxSoftmax = 1.5 }, "max_softmax 1.5 is not a probability"},
		{"confidence missing", func(p *Part) { p.Confidence = p.Confidence[1:] }, "no confidence for test image 0"},
		{"confidence extra", func(p *Part) { p.Confidence[2].Split = Train }, "a confidence for train image 2, which has no record"},
		{"foreign model", func(p *Part) { p.Model.Epoch = 3 }, "model description 0 is of epoch-002.onnx (epoch 3)"},
		{"model without scores", func(p *Part) { p.Model.Scores = "" }, "no scores"},
		{"robust miscounted", func(p *Part) { p.Robust[0].Robust = false }, "test linf eps 0.1: 1 of 4 images robust, but the robust rows say 0 of 4"},
		{"robust twice", func(p *Part) { p.Robust[1].Index = 0 }, "two robust rows for epoch-002.onnx test linf eps 0.1 image 0"},
		{"robust without PGD", func(p *Part) { p.PGD = p.PGD[:1] }, "robust rows for test linf eps 0.3 without a PGD result"},
		{"robust invalid", func(p *Part) { p.Robust[0].Eps = -1 }, "eps -1 is not a finite number"},
		{"foreign robust", func(p *Part) { p.Robust[5].Epoch = 4 }, "robust outcome 5 is of epoch-002.onnx (epoch 4)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := makePart(2, 4)
			tc.change(p)
			// checkAll refuses what Commit does, with the same error.
			if err := checkAll(partsOf(makePart(1, 4), p)); err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("checkAll: err = %v, want %q", err, tc.msg)
			}
			err := st.Commit(p)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %q", err, tc.msg)
			}
			if st.Done(p.Checkpoint) {
				t.Error("a refused part is finished")
			}
			ents, _ := os.ReadDir(filepath.Join(dir, PartsDir))
			for _, e := range ents {
				if e.Name() != "epoch-001.onnx.csv" && e.Name() != "pgd" && e.Name() != "confidence" && e.Name() != "model" && e.Name() != "robust" {
					t.Errorf("a refused commit left %s", e.Name())
				}
			}
		})
	}
	checkStore(t, st, makePart(1, 4))
}

// partsOf yields the parts, then nothing.
func partsOf(parts ...*Part) iter.Seq2[*Part, error] {
	return func(yield func(*Part, error) bool) {
		for _, p := range parts {
			if !yield(p, nil) {
				return
			}
		}
	}
}

// CommitAll commits what checkAll accepts — a checkpoint given twice
// replaced, as Commit would — and stops at the first error it is given,
// its parts before finished and margins.csv rebuilt when the store opens.
func TestStoreCommitAll(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	all := partsOf(makePart(0, 6), makePart(1, 8), makePart(0, 5), makePart(2, 7))
	if err := checkAll(all); err != nil {
		t.Fatal(err)
	}
	if err := st.CommitAll(all); err != nil {
		t.Fatal(err)
	}
	checkStore(t, st, makePart(0, 5), makePart(1, 8), makePart(2, 7))

	dir = t.TempDir()
	if st, err = OpenStore(dir, testSettings()); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("a shard's part is unreadable")
	stopped := func(yield func(*Part, error) bool) {
		if yield(makePart(0, 6), nil) {
			yield(nil, broken)
		}
	}
	if err := checkAll(stopped); !errors.Is(err, broken) {
		t.Errorf("checkAll: err = %v, want %v", err, broken)
	}
	if err := st.CommitAll(stopped); !errors.Is(err, broken) {
		t.Fatalf("CommitAll: err = %v, want %v", err, broken)
	}
	if st, err = OpenStore(dir, testSettings()); err != nil {
		t.Fatal(err)
	}
	checkStore(t, st, makePart(0, 6))
}

func TestStoreWriteReport(t *testing.T) {
	dir := t.TempDir()
	st, _ := OpenStore(dir, testSettings())
	for i := range 3 {
		if err := st.Commit(makePart(i, 12)); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := st.WriteReport()
	if err != nil {
		t.Fatal(err)
	}
	read := readSummaryFile(t, dir)
	if len(read.Groups) != 3*2*3 || len(read.PGD) != 6 || len(read.Transitions) != 2 || read.Settings.N != 4 {
		t.Errorf("summary: %d groups, %d PGD, %d transitions", len(read.Groups), len(read.PGD), len(read.Transitions))
	}
	for i, c := range read.Checkpoints {
		if m := makePart(i, 12).Model; c.Scores != m.Scores || c.Batch != m.Batch {
			t.Errorf("checkpoint %s: scores %q, batch %q; want %q, %q", c.Checkpoint, c.Scores, c.Batch, m.Scores, m.Batch)
		}
	}
	var b bytes.Buffer
	WriteTransitions(&b, sum.Transitions)
	if got, _ := os.ReadFile(filepath.Join(dir, TransitionsFile)); !bytes.Equal(got, b.Bytes()) {
		t.Errorf("transitions.csv:\n%s", got)
	}
}

// The kill test: a child process commits checkpoints and is killed
// (SIGKILL on Unix) at an arbitrary moment; the audit is then resumed.
const killChildEnv = "AUDITOR_STORE_KILL_CHILD"

const (
	killParts  = 12
	killImages = 1500
)

func TestStoreKillChild(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		t.Skip("run by TestStoreKillResume")
	}
	st, err := OpenStore(dir, testSettings())
	if err != nil {
		t.Fatal(err)
	}
	for i := range killParts {
		if err := st.Commit(makePart(i, killImages)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStoreKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	for round := range 3 {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestStoreKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after 2, 3 or 4 finished checkpoints plus a little.
		waitFor := 2 + round
		deadline := time.Now().Add(60 * time.Second)
		for {
			ents, _ := os.ReadDir(filepath.Join(dir, PartsDir))
			n := 0
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".csv") && !atomicfile.IsTemp(e.Name()) {
					n++
				}
			}
			if n >= waitFor {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the child finished %d checkpoints in 60 s:\n%s", n, out.String())
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(round*3) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()

		// What the kill interrupted, for the log: temporary files of a
		// write in progress, a PGD part whose margins part never came.
		leftovers := 0
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err == nil && atomicfile.IsTemp(d.Name()) {
				leftovers++
			}
			return nil
		})
		pgdParts, _ := os.ReadDir(filepath.Join(dir, PGDPartsDir))
		confParts, _ := os.ReadDir(filepath.Join(dir, ConfidencePartsDir))
		margins := 0
		ents, _ := os.ReadDir(filepath.Join(dir, PartsDir))
		for _, e := range ents {
			if e.Type().IsRegular() && !atomicfile.IsTemp(e.Name()) {
				margins++
			}
		}

		st, err := OpenStore(dir, testSettings())
		if err != nil {
			t.Fatal(err)
		}
		var done []*Part
		for i := range killParts {
			if name := fmt.Sprintf("epoch-%03d.onnx", i); st.Done(name) {
				done = append(done, makePart(i, killImages))
			}
		}
		if len(done) < waitFor {
			t.Fatalf("round %d: %d checkpoints finished after the kill, saw %d before", round, len(done), waitFor)
		}
		t.Logf("round %d: killed with %d of %d checkpoints finished, %d temporary files, %d PGD and %d confidence parts for %d margins parts",
			round, len(done), killParts, leftovers, len(pgdParts), len(confParts), margins)
		checkStore(t, st, done...) // finished parts intact, margins.csv exact
		all := make([]*Part, killParts)
		for i := range killParts {
			all[i] = makePart(i, killImages)
			if !st.Done(all[i].Checkpoint) {
				if err := st.Commit(all[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
		checkStore(t, st, all...)
		assertNoTemp(t, dir)
	}
}

func TestStoreConcurrentCommit(t *testing.T) {
	st, err := OpenStore(t.TempDir(), testSettings())
	if err != nil {
		t.Fatal(err)
	}
	parts := make([]*Part, 8)
	errs := make(chan error, len(parts))
	for i := range parts {
		parts[i] = makePart(i, 20)
		go func() { errs <- st.Commit(parts[i]) }()
	}
	for range parts {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	checkStore(t, st, parts...)
}

// readSummaryFile reads the summary.json of the audit folder dir.
func readSummaryFile(t *testing.T, dir string) *Summary {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, SummaryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ReadSummary(f, SummaryFile)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkRobustFile checks that robust.csv holds the parts' robust rows, in
// epoch order.
func checkRobustFile(t *testing.T, st *Store, parts ...*Part) {
	t.Helper()
	f, err := os.Open(filepath.Join(st.Dir(), RobustFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ReadRobust(f, RobustFile)
	if err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(parts)
	slices.SortFunc(sorted, func(a, b *Part) int { return a.Epoch - b.Epoch })
	var want []RobustImage
	for _, p := range sorted {
		want = append(want, p.Robust...)
	}
	if !slices.Equal(got, want) {
		t.Errorf("robust.csv has %d rows, want %d (or they differ)", len(got), len(want))
	}
}
