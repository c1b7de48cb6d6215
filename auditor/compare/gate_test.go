package compare

import (
	"bytes"
	"encoding/xml"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParseGates(t *testing.T) {
	got, err := ParseGates(" mean_margin_drop > 5% ,robust_accuracy_drop>=0.02,p<1e-2, dropped_share<=50 %")
	if err != nil {
		t.Fatal(err)
	}
	want := []Gate{
		{MeanMarginDrop, ">", 5, true},
		{RobustAccuracyDrop, ">=", 0.02, false},
		{P, "<", 0.01, false},
		{DroppedShare, "<=", 50, true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseGates = %+v, want %+v", got, want)
	}
	if got[0].limit() != 0.05 || got[0].String() != "mean_margin_drop>5%" {
		t.Errorf("gate 0: limit %v, String %q", got[0].limit(), got[0])
	}
}

func TestParseGatesErrors(t *testing.T) {
	for _, tc := range []struct{ list, term, msg string }{
		{"", "", "empty term"},
		{"p<0.01,", "", "empty term"},
		{"mean_margin_drop>5%, margin_drop>1", "margin_drop>1", `unknown metric "margin_drop"`},
		{"p=0.01", "p=0.01", "no comparison"},
		{"p<", "p<", `threshold "" is not`},
		{"p<NaN", "p<NaN", `threshold "NaN" is not`},
		{"p<inf", "p<inf", "is not a finite"},
		{"p<0x1p-3", "p<0x1p-3", "is not a finite decimal"},
		{"p<>1", "p<>1", `threshold ">1"`},
		{"accuracy_drop>5%%", "accuracy_drop>5%%", `threshold "5%"`},
	} {
		_, err := ParseGates(tc.list)
		var se *GateSyntaxError
		if !errors.As(err, &se) || se.Term != tc.term || !strings.Contains(se.Msg, tc.msg) {
			t.Errorf("ParseGates(%q) = %v, want an error on term %q saying %q", tc.list, err, tc.term, tc.msg)
		}
	}
}

// FuzzParseGates checks that the parser never panics, and that every list
// it accepts prints back (Gate.String) to a list that parses to the same
// gates.
func FuzzParseGates(f *testing.F) {
	for _, s := range []string{"mean_margin_drop>5%,robust_accuracy_drop>0.02,p<0.01", "accuracy_drop>=0", " p <= 1e-3 ", ",", "x>1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		gates, err := ParseGates(list)
		if err != nil {
			var se *GateSyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(list) {
				t.Fatalf("ParseGates(%q): error %v is not a GateSyntaxError within the list", list, err)
			}
			return
		}
		var parts []string
		for _, g := range gates {
			if math.IsNaN(g.Threshold) || math.IsInf(g.Threshold, 0) {
				t.Fatalf("ParseGates(%q) accepted threshold %v", list, g.Threshold)
			}
			parts = append(parts, g.String())
		}
		again, err := ParseGates(strings.Join(parts, ","))
		if err != nil || !reflect.DeepEqual(again, gates) {
			t.Fatalf("ParseGates(%q) = %+v, printed back %q parses to %+v, %v", list, gates, parts, again, err)
		}
	})
}

func TestCheckUnmeasured(t *testing.T) {
	r := &Result{}
	got := r.Check([]Gate{{RobustAccuracyDrop, ">", 0.02, false}, {P, "<", 0.01, false}})
	if got[0].Status != Error || !strings.Contains(got[0].Message, "no PGD") {
		t.Errorf("robust_accuracy_drop without PGD: %+v, want an error", got[0])
	}
	if got[1].Status != Pass {
		t.Errorf("p without any change for the worse: %+v, want pass", got[1])
	}
}

// The schema CI services read, declared independently of the writer's
// types: testsuites > testsuite > testcase > failure | error.
type (
	xmlSuites struct {
		XMLName  xml.Name   `xml:"testsuites"`
		Name     string     `xml:"name,attr"`
		Tests    *int       `xml:"tests,attr"`
		Failures *int       `xml:"failures,attr"`
		Errors   *int       `xml:"errors,attr"`
		Time     *float64   `xml:"time,attr"`
		Suites   []xmlSuite `xml:"testsuite"`
	}
	xmlSuite struct {
		Name     string    `xml:"name,attr"`
		Tests    *int      `xml:"tests,attr"`
		Failures *int      `xml:"failures,attr"`
		Errors   *int      `xml:"errors,attr"`
		Time     *float64  `xml:"time,attr"`
		Cases    []xmlCase `xml:"testcase"`
	}
	xmlCase struct {
		Name      string      `xml:"name,attr"`
		Classname string      `xml:"classname,attr"`
		Time      *float64    `xml:"time,attr"`
		Failure   *xmlProblem `xml:"failure"`
		Error     *xmlProblem `xml:"error"`
	}
	xmlProblem struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
)

func TestWriteJUnit(t *testing.T) {
	r := &Result{Baseline: Model{Dir: "base", Checkpoint: "a.onnx"}, Candidate: Model{Dir: "cand", Checkpoint: "b.onnx"}}
	r.Gates = []GateResult{
		{Gate: "mean_margin_drop>5%", Status: Fail, Value: 0.2, Where: "test l2", Message: "mean_margin_drop = 20% at test l2"},
		{Gate: "p<0.01", Status: Pass, Value: 0.5, Message: "passes"},
		{Gate: "robust_accuracy_drop>0.02", Status: Error, Value: Float(math.NaN()), Message: "not measured <&>"},
	}
	var b bytes.Buffer
	if err := WriteJUnit(&b, r); err != nil {
		t.Fatal(err)
	}
	var doc xmlSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("the JUnit XML does not parse: %v\n%s", err, b.String())
	}
	if doc.Tests == nil || *doc.Tests != 3 || *doc.Failures != 1 || *doc.Errors != 1 || doc.Time == nil || len(doc.Suites) != 1 {
		t.Fatalf("testsuites %+v, want 3 tests, 1 failure, 1 error, a time, one suite", doc)
	}
	s := doc.Suites[0]
	if s.Tests == nil || *s.Tests != 3 || *s.Failures != 1 || *s.Errors != 1 || s.Time == nil || !strings.Contains(s.Name, "a.onnx") || len(s.Cases) != 3 {
		t.Fatalf("testsuite %+v, want 3 cases, 1 failure, 1 error", s)
	}
	for i, c := range s.Cases {
		if c.Name != r.Gates[i].Gate || c.Classname != JUnitClassname || c.Time == nil {
			t.Errorf("case %d: %+v, want name %q classname %q and a time", i, c, r.Gates[i].Gate, JUnitClassname)
		}
	}
	if f := s.Cases[0].Failure; f == nil || !strings.Contains(f.Message, "20%") || s.Cases[0].Error != nil {
		t.Errorf("case 0: failure %+v, want the measured 20%%", f)
	}
	if s.Cases[1].Failure != nil || s.Cases[1].Error != nil {
		t.Errorf("case 1 passed but has %+v %+v", s.Cases[1].Failure, s.Cases[1].Error)
	}
	if e := s.Cases[2].Error; e == nil || e.Message != "not measured <&>" {
		t.Errorf("case 2: error %+v, want the message escaped and read back", e)
	}
}
