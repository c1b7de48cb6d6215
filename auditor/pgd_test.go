package auditor

import (
	"strings"
	"testing"
)

func TestReadPGDErrors(t *testing.T) {
	good := "a.onnx,1,test,l2,0.5,10,4\n"
	head := strings.Join(PGDHeader, ",") + "\n"
	testParseErrors(t, PGDHeader, readPGD, []parseErrorCase{
		{"epoch", head + strings.Replace(good, ",1,", ",x,", 1), 2, 2, `invalid integer "x"`},
		{"eps", head + strings.Replace(good, "0.5", "big", 1), 2, 5, `invalid number "big"`},
		{"images", head + strings.Replace(good, ",10,", ",1e1,", 1), 2, 6, `invalid integer "1e1"`},
		{"robust", head + good + strings.Replace(good, ",4\n", ",four\n", 1), 3, 7, `invalid integer "four"`},
		{"impossible", head + strings.Replace(good, ",4\n", ",11\n", 1), 2, 0, "robust 11 of 10 images is impossible"},
		{"split", head + strings.Replace(good, "test", "val", 1), 2, 0, `"val"`},
	})
}
