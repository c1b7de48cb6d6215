package auditor

import (
	"errors"
	"strings"
	"testing"
)

func TestReadRobustErrors(t *testing.T) {
	head := strings.Join(RobustHeader, ",") + "\n"
	for _, tc := range []struct{ data, msg string }{
		{head + "a.onnx,1,test,linf,0.1,0,yes\n", `fuzz.csv:2: column 7 (robust): invalid boolean "yes"`},
		{head + "a.onnx,1,test,linf,0.1,0,True\n", `invalid boolean "True"`},
		{head + "a.onnx,1,test,l1,0.1,0,true\n", `column 4 (norm): unknown norm "l1"`},
		{head + "a.onnx,1,test,linf,-0.1,0,true\n", "column 5 (eps): eps -0.1 is not a finite number ≥ 0"},
		{head + "a.onnx,1,test,linf,0.1,x,true\n", `column 6 (index): invalid integer "x"`},
		{head + "a.onnx,1,test,linf,0.1,3,true\na.onnx,1,test,linf,0.1,3,false\n", "fuzz.csv:3: duplicate row for a.onnx test linf eps 0.1 image 3 (first on line 2)"},
		{"checkpoint,epoch\n", "not the expected header"},
	} {
		_, err := ReadRobust(strings.NewReader(tc.data), "fuzz.csv")
		var pe *ParseError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ReadRobust(%q) = %v, want a *ParseError saying %q", tc.data, err, tc.msg)
		}
	}
}

// FuzzReadRobust checks that ReadRobust never panics and that whatever it
// accepts writes back to rows it reads again unchanged.
func FuzzReadRobust(f *testing.F) {
	head := strings.Join(RobustHeader, ",") + "\n"
	f.Add([]byte(head))
	f.Add([]byte(head + "a.onnx,1,test,linf,0.1,0,true\na.onnx,1,test,l2,0.5,0,false\n"))
	f.Add([]byte(head + "\"a,\"\"b\"\".onnx\",0,train,linf,0x1p-3,12,false\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRoundTrip(t, data, ReadRobust, WriteRobust, func(a, b RobustImage) bool { return a == b })
	})
}
