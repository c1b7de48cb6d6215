package auditor

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// readModelInfos and writeModelInfos view a model part as a list of 0 or
// 1 rows, for fuzzRoundTrip.
func readModelInfos(r io.Reader, name string) ([]ModelInfo, error) {
	m, err := readModelInfo(r, name)
	if m == nil {
		return nil, err
	}
	return []ModelInfo{*m}, err
}

func writeModelInfos(w io.Writer, ms []ModelInfo) error {
	if len(ms) == 0 {
		return writeModelInfo(w, nil)
	}
	return writeModelInfo(w, &ms[0])
}

func TestModelInfoRoundTrip(t *testing.T) {
	for _, m := range []*ModelInfo{
		nil,
		{Checkpoint: "epoch-001.onnx", Epoch: 1, Scores: "logits"},
		{Checkpoint: "a,b.onnx", Epoch: 0, Scores: "log-probabilities (Softmax replaced by LogSoftmax)", Batch: "batch fixed at 2: fed 2 images per run"},
		{Checkpoint: "resnet.onnx", Epoch: 2, Scores: "logits", EpochFrom: FromPosition, InputRange: [2]float64{-1, 255},
			Normalization: "mean=0.4914,0.4822,0.4465;std=0.247,0.243,0.261"},
	} {
		var b bytes.Buffer
		if err := writeModelInfo(&b, m); err != nil {
			t.Fatal(err)
		}
		got, err := readModelInfo(&b, "model.csv")
		if err != nil {
			t.Fatal(err)
		}
		if (got == nil) != (m == nil) || (m != nil && *got != *m) {
			t.Errorf("wrote %+v, read %+v", m, got)
		}
	}
}

// A model part written before the epoch source and the input convention
// were recorded reads with them empty.
func TestReadModelInfoFirstFormat(t *testing.T) {
	data := "checkpoint,epoch,scores,batch\nepoch-003.onnx,3,logits,\n"
	got, err := readModelInfo(strings.NewReader(data), "model.csv")
	if err != nil {
		t.Fatal(err)
	}
	if want := (ModelInfo{Checkpoint: "epoch-003.onnx", Epoch: 3, Scores: "logits"}); *got != want {
		t.Errorf("read %+v, want %+v", got, want)
	}
}

func TestReadModelInfoErrors(t *testing.T) {
	head := strings.Join(ModelHeader[:modelRequired], ",") + "\n"
	full := strings.Join(ModelHeader, ",") + "\n"
	for _, tc := range []struct {
		name, data, want string
	}{
		{"short row", full + "a.onnx,1,logits,\n", "model.csv:2: wrong number of fields"},
		{"epoch from", full + "a.onnx,1,logits,,file,\"0,1\",none\n", `epoch from "file"`},
		{"range", full + "a.onnx,1,logits,,name,1,none\n", `column 6 (input_range): invalid range "1"`},
		{"empty range", full + "a.onnx,1,logits,,name,\"1,1\",none\n", `invalid range "1,1": want "lo,hi", two finite numbers with lo < hi`},
		{"normalization", full + "a.onnx,1,logits,,name,\"0,1\",mean=1\n", `normalization "mean=1": bad normalisation: std (none): want a std for the mean given`},
		{"extra column", full[:len(full)-1] + ",x\n", "8 columns, want 4 to 7"},
		{"two rows", head + "a.onnx,1,logits,\na.onnx,1,logits,\n", "model.csv:3: a second row"},
		{"no scores", head + "a.onnx,1,,\n", "model.csv:2: no scores"},
		{"bad epoch", head + "a.onnx,x,logits,\n", `model.csv:2: column 2 (epoch): invalid integer "x"`},
		{"negative epoch", head + "a.onnx,-1,logits,\n", "negative epoch -1"},
		{"header", "checkpoint,epoch,scores\n", "header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readModelInfo(strings.NewReader(tc.data), "model.csv")
			var pe *ParseError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want a ParseError saying %q", err, tc.want)
			}
		})
	}
}

func FuzzReadModelInfo(f *testing.F) {
	head := strings.Join(ModelHeader[:modelRequired], ",") + "\n"
	f.Add([]byte(head))
	f.Add([]byte(head + "a.onnx,1,logits,\n"))
	f.Add([]byte(strings.Join(ModelHeader, ",") + "\nm.onnx,0,logits,,position,\"0,255\",\"mean=0.5;std=0.25\"\n"))
	f.Add([]byte(head + "\"a,\"\"b\"\".onnx\",0,log of the probability outputs,\"batch fixed at 1: rewritten to symbolic\"\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, readModelInfos, writeModelInfos, func(a, b ModelInfo) bool { return a == b })
	})
}
