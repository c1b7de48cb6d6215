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

func TestReadModelInfoErrors(t *testing.T) {
	head := strings.Join(ModelHeader, ",") + "\n"
	for _, tc := range []struct {
		name, data, want string
	}{
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
	head := strings.Join(ModelHeader, ",") + "\n"
	f.Add([]byte(head))
	f.Add([]byte(head + "a.onnx,1,logits,\n"))
	f.Add([]byte(head + "\"a,\"\"b\"\".onnx\",0,log of the probability outputs,\"batch fixed at 1: rewritten to symbolic\"\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, readModelInfos, writeModelInfos, func(a, b ModelInfo) bool { return a == b })
	})
}
