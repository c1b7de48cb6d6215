package dataset

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the files under testdata/")

// generatedTestdata returns the seed files under testdata/ that are made
// from fixed-seed random data, by name.
func generatedTestdata() map[string][]byte {
	images := idxImages(3, 4, 5, 11)
	labels := idxLabels(3, 11)
	cifar := cifarRecords(2, 11)
	return map[string][]byte{
		"tiny-images-idx3-ubyte":    images,
		"tiny-images-idx3-ubyte.gz": gz(images),
		"tiny-labels-idx1-ubyte":    labels,
		"tiny-labels-idx1-ubyte.gz": gz(labels),
		"tiny-cifar.bin":            cifar,
		"tiny-cifar.bin.gz":         gz(cifar),
	}
}

// The first four images of the MNIST test set (labels 7, 2, 1, 0), cut from
// the real t10k files and stored under the real names, so that
// Load("mnist", "test", "testdata") reads them: a realistic fuzz seed and
// the data of the examples.
const (
	mnistHeadImages = "mnist/t10k-images-idx3-ubyte.gz"
	mnistHeadLabels = "mnist/t10k-labels-idx1-ubyte.gz"
	mnistHeadN      = 4
)

// TestTestdata checks the files under testdata/ against their generators;
// go test -run TestTestdata -update rewrites them (the MNIST excerpt needs
// the real MNIST, see Load).
func TestTestdata(t *testing.T) {
	want := generatedTestdata()
	if *update {
		d := loadReal(t, "mnist", "test").Head(mnistHeadN)
		var img, lab bytes.Buffer
		if err := WriteIDXImages(&img, d.Images, d.N, d.H, d.W); err != nil {
			t.Fatal(err)
		}
		if err := WriteIDXLabels(&lab, d.Labels); err != nil {
			t.Fatal(err)
		}
		want[mnistHeadImages] = gz(img.Bytes())
		want[mnistHeadLabels] = gz(lab.Bytes())
		for name, b := range want {
			writeFile(t, "testdata", name, b)
		}
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatalf("%v (run go test -run TestTestdata -update)", err)
		}
		// Compare gzip files by content: compressors differ across Go versions.
		if !bytes.Equal(gunzipIfGz(t, got), gunzipIfGz(t, b)) {
			t.Errorf("testdata/%s differs from its generator (run go test -run TestTestdata -update)", name)
		}
	}
	d, err := LoadIDX(filepath.Join("testdata", mnistHeadImages), filepath.Join("testdata", mnistHeadLabels))
	if err != nil {
		t.Fatal(err)
	}
	if d.N != mnistHeadN || d.Labels[0] != 7 || d.Labels[1] != 2 || d.Labels[2] != 1 || d.Labels[3] != 0 {
		t.Errorf("MNIST excerpt: N=%d labels %v, want 4 images labelled 7 2 1 0", d.N, d.Labels)
	}
}
