package auditor_test

import (
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"

	"github.com/marginaudit/marginaudit/auditor"
)

// Four test images of one checkpoint, attacked in L2: three are classified
// correctly, and the attack on one of those failed.
func ExampleSummarize() {
	r := func(index, label, pred int, margin float64, success bool) auditor.Record {
		return auditor.Record{
			Checkpoint: "epoch-001.onnx", Epoch: 1, Split: auditor.Test, Index: index,
			Label: label, Pred: pred, Correct: label == pred, Norm: auditor.L2,
			Margin: margin, MarginRefined: math.NaN(), Iterations: 3, Success: success,
		}
	}
	records := []auditor.Record{
		r(0, 7, 7, 1.5, true),
		r(1, 2, 2, 0.5, true),
		r(2, 1, 1, math.NaN(), false),
		r(3, 0, 6, 0.25, true),
	}
	s, err := auditor.Summarize(records, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	acc := s.Checkpoints[0].Accuracy[0]
	fmt.Printf("%s accuracy %d/%d = %.2f\n", acc.Split, acc.Correct, acc.Images, acc.Accuracy)
	for _, g := range s.Groups {
		m := g.Margin
		fmt.Printf("%-9s images %d failures %d: n %d mean %.3f se %.3f median %v\n",
			g.Group, g.Images, g.Failures, m.N, m.Mean, m.SE, m.Median)
	}
	// Output:
	// test accuracy 3/4 = 0.75
	// all       images 4 failures 1: n 3 mean 0.750 se 0.382 median 0.5
	// correct   images 3 failures 1: n 2 mean 1.000 se 0.500 median 0.5
	// incorrect images 1 failures 0: n 1 mean 0.250 se NaN median 0.25
}

// An audit that is interrupted and run again: the second run skips the
// checkpoint the first one finished.
func ExampleOpenStore() {
	dir, err := os.MkdirTemp("", "audit")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	settings := &auditor.Settings{Data: "mnist", Splits: []auditor.Split{auditor.Test}, N: 1, Norms: []auditor.Norm{auditor.L2}}

	// audit stands for running the attacks on one checkpoint.
	audit := func(name string, epoch int) *auditor.Part {
		return &auditor.Part{Checkpoint: name, Epoch: epoch, Records: []auditor.Record{{
			Checkpoint: name, Epoch: epoch, Split: auditor.Test, Index: 0, Label: 3, Pred: 3, Correct: true,
			Norm: auditor.L2, Margin: 1.25, MarginRefined: math.NaN(), Iterations: 2, Success: true,
		}}}
	}
	run := func(checkpoints []string) {
		st, err := auditor.OpenStore(dir, settings)
		if err != nil {
			log.Fatal(err)
		}
		for epoch, name := range checkpoints {
			if st.Done(name) {
				fmt.Println("skip", name)
				continue
			}
			if err := st.Commit(audit(name, epoch)); err != nil {
				log.Fatal(err)
			}
			fmt.Println("audited", name)
		}
	}
	run([]string{"epoch-000.onnx"}) // interrupted before epoch-001.onnx
	run([]string{"epoch-000.onnx", "epoch-001.onnx"})

	data, err := os.ReadFile(filepath.Join(dir, auditor.MarginsFile))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(data))

	// Other settings are refused.
	settings.N = 1000
	_, err = auditor.OpenStore(dir, settings)
	fmt.Println(err != nil)
	// Output:
	// audited epoch-000.onnx
	// skip epoch-000.onnx
	// audited epoch-001.onnx
	// checkpoint,epoch,split,index,label,pred,correct,norm,margin,margin_refined,iterations,retries,success,censored,margin_lower
	// epoch-000.onnx,0,test,0,3,3,true,l2,1.25,,2,0,true,,
	// epoch-001.onnx,1,test,0,3,3,true,l2,1.25,,2,0,true,,
	// true
}

func ExampleEpochFromName() {
	for _, name := range []string{"epoch-007.onnx", "model_ep7.onnx", "ckpt_e12.onnx", "run-epoch=3.onnx", "final.onnx"} {
		epoch, ok := auditor.EpochFromName(name)
		fmt.Println(name, epoch, ok)
	}
	// Output:
	// epoch-007.onnx 7 true
	// model_ep7.onnx 7 true
	// ckpt_e12.onnx 12 true
	// run-epoch=3.onnx 3 true
	// final.onnx -1 false
}
