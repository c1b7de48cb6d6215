package auditor

import (
	"bytes"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
)

func rec(ckpt string, epoch int, split Split, index, label, pred int, norm Norm, margin float64, success bool) Record {
	return Record{
		Checkpoint: ckpt, Epoch: epoch, Split: split, Index: index, Label: label, Pred: pred,
		Correct: label == pred, Norm: norm, Margin: margin, MarginRefined: math.NaN(),
		Iterations: 3, Retries: 0, Success: success,
	}
}

// sameRecord compares records field by field, floats by their bits (so NaN
// equals NaN and -0 differs from 0).
func sameRecord(a, b Record) bool {
	fa, fb := a, b
	fa.Margin, fb.Margin, fa.MarginRefined, fb.MarginRefined = 0, 0, 0, 0
	return fa == fb && math.Float64bits(a.Margin) == math.Float64bits(b.Margin) &&
		math.Float64bits(a.MarginRefined) == math.Float64bits(b.MarginRefined)
}

func TestRecordsRoundTrip(t *testing.T) {
	refined := rec("epoch-001.onnx", 1, Test, 7, 3, 3, LInf, 0.1, true)
	refined.MarginRefined = 0.09999999999999999 // the float64 before 0.1
	odd := rec(`a "quoted", name.onnx`, 2, Train, 0, 0, 1, L2, math.NaN(), false)
	odd.Retries, odd.Iterations = 10, 50
	tiny := rec("epoch-001.onnx", 1, Test, 8, 1, 2, L2, math.SmallestNonzeroFloat64, true)
	huge := rec("epoch-001.onnx", 1, Test, 9, 1, 2, L2, math.MaxFloat64, true)
	zero := rec("epoch-001.onnx", 1, Train, 9, 1, 1, L2, math.Copysign(0, -1), true)
	in := []Record{refined, odd, tiny, huge, zero}
	var b bytes.Buffer
	if err := WriteRecords(&b, in); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), strings.Join(Header, ",")+"\n") {
		t.Fatalf("header: %q", b.String())
	}
	if want := "epoch-001.onnx,1,test,7,3,3,true,linf,0.1,0.09999999999999999,3,0,true\n"; !strings.Contains(b.String(), want) {
		t.Errorf("missing row %q in\n%s", want, b.String())
	}
	out, err := ReadRecords(&b, "mem.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("read %d records, wrote %d", len(out), len(in))
	}
	for i := range in {
		if !sameRecord(in[i], out[i]) {
			t.Errorf("record %d: wrote %+v, read %+v", i, in[i], out[i])
		}
	}
}

func TestWriteRejectsInvalid(t *testing.T) {
	r := rec("a.onnx", 0, Test, 0, 1, 1, L2, 0.5, true)
	r.Correct = false
	if err := WriteRecords(new(bytes.Buffer), []Record{r}); err == nil || !strings.Contains(err.Error(), "correct is false") {
		t.Errorf("err = %v, want a correct/label mismatch", err)
	}
}

func TestReadRecordsErrors(t *testing.T) {
	head := strings.Join(Header, ",") + "\n"
	good := "a.onnx,1,test,0,3,3,true,l2,0.5,,4,0,true\n"
	for _, tc := range []struct {
		name, in  string
		line, col int    // of the *ParseError
		msg       string // in its message
	}{
		{"empty", "", 0, 0, "empty file"},
		{"bad header", strings.Replace(head, "margin,", "dist,", 1), 1, 9, `column is "dist", want "margin"`},
		{"short header", "checkpoint,epoch\n", 1, 0, "not a margins.csv header: 2 columns, want 13"},
		{"short row", head + "a.onnx,1,test\n", 2, 0, "wrong number of fields"},
		{"bare quote", head + `a"b.onnx,1,test,0,3,3,true,l2,0.5,,4,0,true` + "\n", 2, 0, "bare \""},
		{"epoch", head + strings.Replace(good, ",1,", ",one,", 1), 2, 2, `invalid integer "one"`},
		{"negative epoch", head + strings.Replace(good, ",1,", ",-1,", 1), 2, 2, "negative epoch"},
		{"split", head + strings.Replace(good, "test", "val", 1), 2, 3, `unknown split "val"`},
		{"index", head + strings.Replace(good, "test,0,", "test,-2,", 1), 2, 4, "negative index"},
		{"label", head + strings.Replace(good, ",3,3,", ",x,3,", 1), 2, 5, `invalid integer "x"`},
		{"pred", head + strings.Replace(good, ",3,3,", ",3,-3,", 1), 2, 6, "negative prediction"},
		{"correct", head + strings.Replace(good, "true,l2", "yes,l2", 1), 2, 7, `invalid boolean "yes"`},
		{"correct mismatch", head + strings.Replace(good, "true,l2", "false,l2", 1), 2, 7, "correct is false"},
		{"norm", head + strings.Replace(good, "l2", "l1", 1), 2, 8, `unknown norm "l1"`},
		{"margin", head + strings.Replace(good, "0.5", "0.5x", 1), 2, 9, `invalid number "0.5x"`},
		{"negative margin", head + strings.Replace(good, "0.5", "-0.5", 1), 2, 9, "not a finite number"},
		{"infinite margin", head + strings.Replace(good, "0.5", "+Inf", 1), 2, 9, "not a finite number"},
		{"NaN margin of a success", head + strings.Replace(good, "0.5", "NaN", 1), 2, 9, "attack succeeded"},
		{"refined", head + strings.Replace(good, "0.5,,", "0.5,abc,", 1), 2, 10, `invalid number "abc"`},
		{"refined NaN", head + strings.Replace(good, "0.5,,", "0.5,NaN,", 1), 2, 10, "leave the field empty"},
		{"iterations", head + strings.Replace(good, ",4,0,", ",4.5,0,", 1), 2, 11, `invalid integer "4.5"`},
		{"retries", head + strings.Replace(good, ",4,0,", ",4,-1,", 1), 2, 12, "negative retries"},
		{"success", head + strings.Replace(good, "0,true\n", "0,1\n", 1), 2, 13, `invalid boolean "1"`},
		{"checkpoint", head + strings.Replace(good, "a.onnx", "", 1), 2, 1, "empty checkpoint name"},
		{"checkpoint path", head + strings.Replace(good, "a.onnx", "runs/a.onnx", 1), 2, 1, "not a plain file name"},
		{"duplicate", head + good + strings.Replace(good, "0.5", "0.6", 1), 3, 0, "duplicate row for a.onnx test image 0 norm l2 (first on line 2)"},
		{"two epochs", head + good + strings.Replace(good, ",1,test,0,", ",2,test,1,", 1), 3, 2, "epoch 2 here and 1 above"},
		{"third line", head + good + strings.Replace(good, "test,0", "test,1", 1) + strings.Replace(good, "test,0", "tset,2", 1), 4, 3, "unknown split"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadRecords(strings.NewReader(tc.in), "m.csv")
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if pe.File != "m.csv" || pe.Line != tc.line || pe.Column != tc.col {
				t.Errorf("at %s:%d column %d, want m.csv:%d column %d (%v)", pe.File, pe.Line, pe.Column, tc.line, tc.col, err)
			}
			if tc.col > 0 && pe.Field != Header[tc.col-1] {
				t.Errorf("field %q, want %q", pe.Field, Header[tc.col-1])
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	in := strings.Join(Header, ",") + "\na.onnx,1,test,0,3,3,true,l2,oops,,4,0,true\n"
	_, err := ReadRecords(strings.NewReader(in), "out/margins.csv")
	want := `auditor: out/margins.csv:2: column 9 (margin): invalid number "oops"`
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
	if !errors.Is(errHeaderOf(t), ErrHeader) {
		t.Error("a bad header does not wrap ErrHeader")
	}
}

func errHeaderOf(t *testing.T) error {
	t.Helper()
	_, err := ReadRecords(strings.NewReader("a,b\n"), "x.csv")
	return err
}

// FuzzReadRecords checks that ReadRecords never panics and that whatever it
// accepts writes back to records it reads again unchanged. Seeds: the
// golden input of the summary tests and a few edge cases.
func FuzzReadRecords(f *testing.F) {
	if b, err := os.ReadFile("testdata/margins.csv"); err == nil {
		f.Add(b)
	}
	head := strings.Join(Header, ",") + "\n"
	f.Add([]byte(head))
	f.Add([]byte(head + "a.onnx,1,test,0,3,3,true,l2,0.5,,4,0,true\n"))
	f.Add([]byte(head + "\"a,\"\"b\"\".onnx\",0,train,12,1,2,false,linf,NaN,0x1p-3,50,10,false\r\n"))
	f.Add([]byte(head + "a.onnx,1,test,0,3,3,true,l2,1e-320,4.9e-324,4,0,true"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			t.Skip("large inputs test nothing new")
		}
		recs, err := ReadRecords(bytes.NewReader(data), "fuzz.csv")
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		var b bytes.Buffer
		if err := WriteRecords(&b, recs); err != nil {
			t.Fatalf("accepted records do not write: %v", err)
		}
		again, err := ReadRecords(&b, "again.csv")
		if err != nil {
			t.Fatalf("written records do not read: %v\n%s", err, b.String())
		}
		if len(again) != len(recs) {
			t.Fatalf("%d records, then %d", len(recs), len(again))
		}
		for i := range recs {
			if !sameRecord(recs[i], again[i]) {
				t.Fatalf("record %d: %+v, then %+v", i, recs[i], again[i])
			}
		}
	})
}
