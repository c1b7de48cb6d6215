package checkpoint

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
	"github.com/marginaudit/marginaudit/trainer/model"
	"github.com/marginaudit/marginaudit/trainer/optim"
)

func sampleMetadata() []*Metadata {
	return []*Metadata{
		{
			Dataset: "mnist", Classes: 10, InputShape: []int{1, 28, 28}, InputRange: [2]float64{0, 1}, Normalization: "none",
			Arch:  model.Arch{Kind: model.MLP}.WithDefaults(),
			Epoch: 3, Epochs: 5, Seed: math.MaxUint64, BatchSize: 128, TrainImages: 60000, TestImages: 10000,
			Optim:   optim.Config{Name: optim.Adam, LR: 1e-3, Schedule: optim.Schedule{Kind: optim.Cosine, MinLR: 1e-5}}.WithDefaults(),
			EpochLR: 0.000617, TrainLoss: 0.0412, TrainAccuracy: 0.98765, TestLoss: 0.07, TestAccuracy: 0.9801, Seconds: 12.25,
		},
		{
			Dataset: "fashion-mnist", Classes: 10, InputShape: []int{1, 28, 28}, InputRange: [2]float64{0, 1}, Normalization: "none",
			Arch:  model.Arch{Kind: model.CNN, Hidden: []int{}}.WithDefaults(),
			Epoch: 0, Epochs: 20, Seed: 1, BatchSize: 100,
			Optim:       optim.Config{Name: optim.SGD, LR: 0.1, Momentum: 0.9, WeightDecay: 5e-4, Schedule: optim.Schedule{Kind: optim.StepDecay, StepSize: 10}}.WithDefaults(),
			Adversarial: Adversarial{Method: "pgd", Norm: "linf", Eps: 0.1, Step: 0.01, Steps: 20, Frac: 0.5, RandomStart: true},
			TrainLoss:   math.NaN(), TrainAccuracy: 0.1, TestLoss: math.Inf(1),
		},
		{
			Dataset: "cifar10", Classes: 10, InputShape: []int{3, 32, 32}, InputRange: [2]float64{0, 1}, Normalization: "none",
			Arch:  model.Arch{Kind: model.CNN}.WithDefaults(),
			Epoch: 2, Epochs: 10, Seed: 7, BatchSize: 128, TrainImages: 50000, TestImages: 10000,
			Optim:       optim.Config{Name: optim.Adam, LR: 1e-3}.WithDefaults(),
			Adversarial: Adversarial{Method: "pgd", Norm: "linf", Eps: 8.0 / 255, Step: 2.0 / 255, Steps: 10, Frac: 0.5, RandomStart: true},
			EpochLR:     1e-3, TrainLoss: 1.5, TrainAccuracy: 0.45, AdvLoss: 2.0625, AdvAccuracy: 0.3125, TestLoss: 1.25, TestAccuracy: 0.5, Seconds: 600.5,
		},
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	for _, md := range sampleMetadata() {
		got, err := ParseMetadata(md.Props())
		if err != nil {
			t.Fatal(err)
		}
		// NaN ≠ NaN: compare those through their formatting.
		if !reflect.DeepEqual(fmtNaN(got), fmtNaN(md)) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, md)
		}
	}
}

func fmtNaN(m *Metadata) *Metadata {
	c := *m
	if math.IsNaN(c.TrainLoss) {
		c.TrainLoss = -12345
	}
	return &c
}

func TestParseMetadataRejects(t *testing.T) {
	base := sampleMetadata()[0].Props()
	set := func(k, v string) []*onnxpb.StringStringEntryProto {
		var out []*onnxpb.StringStringEntryProto
		for _, p := range base {
			if p.GetKey() == k {
				if v == "\x00drop" {
					continue
				}
				p = &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(v)}
			}
			out = append(out, p)
		}
		return out
	}
	for _, tc := range []struct{ key, value, want string }{
		{KeyFormat, "\x00drop", "not a marginaudit checkpoint"},
		{KeyFormat, "2", "this version reads"},
		{KeyEpoch, "three", "epoch"},
		{KeyInputShape, "28,28", "input_shape"},
		{KeyInputRange, "1,0", "input_range"},
		{KeySeed, "-1", "seed"},
		{KeyLR, "fast", "lr"},
	} {
		_, err := ParseMetadata(set(tc.key, tc.value))
		if !errors.Is(err, ErrMetadata) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: err = %v, want ErrMetadata mentioning %q", tc.key, tc.value, err, tc.want)
		}
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	md := sampleMetadata()[1]
	m, err := model.New(md.Arch, 1, 28, 28, 10)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(4)
	path := Path(dir, md.Epoch)
	if filepath.Base(path) != "epoch-000.onnx" {
		t.Errorf("Path = %s", path)
	}
	if err := Write(path, m, md); err != nil {
		t.Fatal(err)
	}
	m2, md2, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m2.Arch, m.Arch) || md2.Dataset != md.Dataset || md2.Adversarial != md.Adversarial {
		t.Errorf("Read: arch %+v md %+v", m2.Arch, md2)
	}
	for i, p := range m.Params {
		if !slices.Equal(p.Data, m2.Params[i].Data) {
			t.Errorf("%s differs", p.Name)
		}
	}
	// Any ONNX reader sees the inference graph and the metadata.
	g, err := onnxgrad.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := onnxgrad.Inspect(g, path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Metadata[KeyInputRange] != "0,1" || info.Metadata[KeyNormalization] != "none" || info.Metadata[KeyAdversarial] != "pgd" {
		t.Errorf("metadata %v", info.Metadata)
	}
}

func TestEpochs(t *testing.T) {
	dir := t.TempDir()
	if n, err := Latest(filepath.Join(dir, "missing")); n != -1 || err != nil {
		t.Errorf("Latest(missing) = %d, %v", n, err)
	}
	touch := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{
		"epoch-000.onnx", "epoch-000.state",
		"epoch-001.onnx", "epoch-001.state",
		"epoch-002.state",                     // crashed before its .onnx
		"epoch-003.onnx",                      // no state: incomplete
		"epoch-0004.onnx", "epoch-0004.state", // not a name Path makes
		"epoch-1000.onnx", "epoch-1000.state",
		"train.csv", "epoch-005.onnx.tmp123",
	} {
		touch(name)
	}
	got, err := Epochs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 1000}; !slices.Equal(got, want) {
		t.Errorf("Epochs = %v, want %v", got, want)
	}
}

func TestStateFile(t *testing.T) {
	o, _ := optim.New(optim.Config{Name: optim.Adam}, []string{"w"}, []int{3})
	o.Step(0.1, [][]float32{{1, 2, 3}}, [][]float32{{0.5, -1, 2}})
	path := StatePath(t.TempDir(), 1)
	if err := WriteState(path, o.State()); err != nil {
		t.Fatal(err)
	}
	s, err := ReadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, o.State()) {
		t.Errorf("ReadState = %+v, want %+v", s, o.State())
	}
	os.WriteFile(path, []byte("garbage"), 0o644)
	if _, err := ReadState(path); !errors.Is(err, optim.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("ReadState(garbage) = %v", err)
	}
}

func TestWriteCSV(t *testing.T) {
	path := filepath.Join(t.TempDir(), CSVName)
	rows := []*Metadata{{Epoch: 0, TrainLoss: 2.5, TrainAccuracy: 0.1, TestLoss: 2.25, TestAccuracy: 0.125},
		{Epoch: 1, EpochLR: 0.001, TrainLoss: 0.5, TrainAccuracy: 0.875, TestLoss: 0.25, TestAccuracy: 0.9375, Seconds: 1.23456}}
	if err := WriteCSV(path, rows); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,seconds\n" +
		"0,0,2.5,0.1,2.25,0.125,0.000\n" +
		"1,0.001,0.5,0.875,0.25,0.9375,1.235\n"
	if string(got) != want {
		t.Errorf("train.csv:\n%s\nwant\n%s", got, want)
	}

	// Adversarial training adds two columns, empty at epoch 0.
	pgd := Adversarial{Method: "pgd", Norm: "linf", Eps: 0.1, Step: 0.01, Steps: 20, Frac: 0.5, RandomStart: true}
	for _, r := range rows {
		r.Adversarial = pgd
	}
	rows[1].AdvLoss, rows[1].AdvAccuracy = 1.75, 0.5
	if err := WriteCSV(path, rows); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	want = "epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,seconds,train_adv_loss,train_adv_accuracy\n" +
		"0,0,2.5,0.1,2.25,0.125,0.000,,\n" +
		"1,0.001,0.5,0.875,0.25,0.9375,1.235,1.75,0.5\n"
	if string(got) != want {
		t.Errorf("train.csv of adversarial training:\n%s\nwant\n%s", got, want)
	}
}
