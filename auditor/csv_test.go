package auditor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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
	fa.Margin, fb.Margin, fa.MarginRefined, fb.MarginRefined, fa.MarginLower, fb.MarginLower = 0, 0, 0, 0, 0, 0
	return fa == fb && math.Float64bits(a.Margin) == math.Float64bits(b.Margin) &&
		math.Float64bits(a.MarginRefined) == math.Float64bits(b.MarginRefined) && math.Float64bits(a.MarginLower) == math.Float64bits(b.MarginLower)
}

func TestRecordsRoundTrip(t *testing.T) {
	refined := rec("epoch-001.onnx", 1, Test, 7, 3, 3, LInf, 0.1, true)
	refined.MarginRefined = 0.09999999999999999 // the float64 before 0.1
	odd := rec(`a "quoted", name.onnx`, 2, Train, 0, 0, 1, L2, math.NaN(), false)
	odd.Retries, odd.Iterations = 10, 50
	tiny := rec("epoch-001.onnx", 1, Test, 8, 1, 2, L2, math.SmallestNonzeroFloat64, true)
	huge := rec("epoch-001.onnx", 1, Test, 9, 1, 2, L2, math.MaxFloat64, true)
	zero := rec("epoch-001.onnx", 1, Train, 9, 1, 1, L2, math.Copysign(0, -1), true)
	censored := rec("epoch-001.onnx", 1, Test, 10, 1, 1, L2, math.NaN(), false)
	censored.MarginRefined, censored.Censored = 27.5, true
	censored.Certified, censored.MarginLower = true, 3.25
	refined.Certified = true // misclassified or nothing proven: 0
	in := []Record{refined, odd, tiny, huge, zero, censored}
	var b bytes.Buffer
	if err := WriteRecords(&b, in); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), strings.Join(Header, ",")+"\n") {
		t.Fatalf("header: %q", b.String())
	}
	for _, want := range []string{
		"epoch-001.onnx,1,test,7,3,3,true,linf,0.1,0.09999999999999999,3,0,true,false,0\n",
		"epoch-001.onnx,1,test,8,1,2,false,l2,5e-324,,3,0,true,,\n",
		"epoch-001.onnx,1,test,10,1,1,true,l2,NaN,27.5,3,0,false,true,3.25\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing row %q in\n%s", want, b.String())
		}
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
	good := "a.onnx,1,test,0,3,3,true,l2,0.5,,4,0,true,,\n"
	testParseErrors(t, Header, ReadRecords, []parseErrorCase{
		{"bare quote", head + `a"b.onnx,1,test,0,3,3,true,l2,0.5,,4,0,true,,` + "\n", 2, 0, "bare \""},
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
		{"success", head + strings.Replace(good, "0,true,,\n", "0,1,,\n", 1), 2, 13, `invalid boolean "1"`},
		{"censored", head + strings.Replace(good, "0.5,,4,0,true,,\n", "0.5,0.4,4,0,true,no,\n", 1), 2, 14, `invalid boolean "no"`},
		{"censored unrefined", head + strings.Replace(good, "true,,\n", "true,true,\n", 1), 2, 14, "censored without a refined margin"},
		{"lower", head + strings.Replace(good, "true,,\n", "true,,x\n", 1), 2, 15, `invalid number "x"`},
		{"lower NaN", head + strings.Replace(good, "true,,\n", "true,,NaN\n", 1), 2, 15, "not a finite number"},
		{"lower above margin", head + strings.Replace(good, "true,,\n", "true,,0.6\n", 1), 2, 15, "exceeds the margin 0.5"},
		{"lower above refined", head + strings.Replace(good, "0.5,,4,0,true,,\n", "0.5,0.4,4,0,true,false,0.45\n", 1), 2, 15, "exceeds the refined margin 0.4"},
		{"checkpoint", head + strings.Replace(good, "a.onnx", "", 1), 2, 1, "empty checkpoint name"},
		{"checkpoint path", head + strings.Replace(good, "a.onnx", "runs/a.onnx", 1), 2, 1, "not a plain file name"},
		{"duplicate", head + good + strings.Replace(good, "0.5", "0.6", 1), 3, 0, "duplicate row for a.onnx test image 0 norm l2 (first on line 2)"},
		{"two epochs", head + good + strings.Replace(good, ",1,test,0,", ",2,test,1,", 1), 3, 2, "epoch 2 here and 1 above"},
		{"third line", head + good + strings.Replace(good, "test,0", "test,1", 1) + strings.Replace(good, "test,0", "tset,2", 1), 4, 3, "unknown split"},
	})
}

func TestParseErrorMessage(t *testing.T) {
	in := strings.Join(Header, ",") + "\na.onnx,1,test,0,3,3,true,l2,oops,,4,0,true,,\n"
	_, err := ReadRecords(strings.NewReader(in), "out/margins.csv")
	want := `auditor: out/margins.csv:2: column 9 (margin): invalid number "oops"`
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
	if !errors.Is(errHeaderOf(t), ErrHeader) {
		t.Error("a bad header does not wrap ErrHeader")
	}
}

// TestReadRecordsBeforeCensoring reads a margins.csv written before the
// censored column existed: its records are not censored, and refined
// margins (the bisection's, then) read as they were.
func TestReadRecordsBeforeCensoring(t *testing.T) {
	// The columns as they were: up to success.
	in := strings.Join(Header[:headerRequired], ",") + "\na.onnx,1,test,0,3,3,true,l2,0.5,0.45,4,0,true\n"
	recs, err := ReadRecords(strings.NewReader(in), "old.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Censored || recs[0].MarginRefined != 0.45 || !recs[0].HasRefinedMargin() {
		t.Errorf("read %+v", recs)
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
		fuzzRoundTrip(t, data, ReadRecords, WriteRecords, sameRecord)
	})
}

// parseErrorCase is a malformed file and where and how a reader must fail.
type parseErrorCase struct {
	name, in  string
	line, col int    // of the *ParseError
	msg       string // in its message
}

// testParseErrors reads each case as the file "t.csv" with read, whose
// header is header, and checks the *ParseError it returns: its file, line,
// column, field name and message. Cases of a missing or wrong header and
// of a short row, which readTable checks for every format, come first.
func testParseErrors[T any](t *testing.T, header []string, read func(io.Reader, string) ([]T, error), cases []parseErrorCase) {
	t.Helper()
	n := len(header)
	table := []parseErrorCase{
		{"empty", "", 0, 0, "empty file: not the expected header"},
		{"short header", "checkpoint,epoch\n", 1, 0, "not the expected header: 2 columns, want"},
		{"bad header", strings.Join(header[:n-1], ",") + ",x\n", 1, n, fmt.Sprintf("column is \"x\", want %q", header[n-1])},
		{"short row", strings.Join(header, ",") + "\na.onnx,1,test\n", 2, 0, "wrong number of fields"},
	}
	for _, tc := range append(table, cases...) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := read(strings.NewReader(tc.in), "t.csv")
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if pe.File != "t.csv" || pe.Line != tc.line || pe.Column != tc.col {
				t.Errorf("at %s:%d column %d, want t.csv:%d column %d (%v)", pe.File, pe.Line, pe.Column, tc.line, tc.col, err)
			}
			if tc.col > 0 && pe.Field != header[tc.col-1] {
				t.Errorf("field %q, want %q", pe.Field, header[tc.col-1])
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

// fuzzRoundTrip is the body of the fuzz tests of the CSV readers: read
// never panics and fails only with a *ParseError, and whatever it accepts
// write writes back to rows that read reads again unchanged (by same).
func fuzzRoundTrip[T any](t *testing.T, data []byte, read func(io.Reader, string) ([]T, error), write func(io.Writer, []T) error, same func(a, b T) bool) {
	t.Helper()
	if len(data) > 1<<16 {
		t.Skip("large inputs test nothing new")
	}
	rows, err := read(bytes.NewReader(data), "fuzz.csv")
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("error %v is not a *ParseError", err)
		}
		return
	}
	var b bytes.Buffer
	if err := write(&b, rows); err != nil {
		t.Fatalf("accepted rows do not write: %v", err)
	}
	again, err := read(&b, "again.csv")
	if err != nil {
		t.Fatalf("written rows do not read: %v\n%s", err, b.String())
	}
	if len(again) != len(rows) {
		t.Fatalf("%d rows, then %d", len(rows), len(again))
	}
	for i := range rows {
		if !same(rows[i], again[i]) {
			t.Fatalf("row %d: %+v, then %+v", i, rows[i], again[i])
		}
	}
}
