package dataset_test

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/marginaudit/marginaudit/trainer/dataset"
)

// Load reads a split by name from a folder; testdata/mnist holds the first
// four images of the MNIST test set under their usual file names.
func ExampleLoad() {
	d, err := dataset.Load("mnist", "test", "testdata")
	if err != nil {
		log.Fatal(err)
	}
	names, _ := dataset.ClassNames(d.Name)
	fmt.Printf("%s %s: %d images of %d×%d×%d, %d classes\n", d.Name, d.Split, d.N, d.C, d.H, d.W, d.Classes)
	for i := range d.N {
		fmt.Printf("image %d: %d values, class %q\n", i, len(d.Image(i)), names[d.Labels[i]])
	}
	// Output:
	// mnist test: 4 images of 1×28×28, 10 classes
	// image 0: 784 values, class "7"
	// image 1: 784 values, class "2"
	// image 2: 784 values, class "1"
	// image 3: 784 values, class "0"
}

// With dir == "" Load finds the data in its default location, or says how
// to get it.
func ExampleLoad_defaultLocation() {
	d, err := dataset.Load("fashion-mnist", "train", "")
	var nf *dataset.NotFoundError
	if errors.As(err, &nf) {
		fmt.Fprintln(os.Stderr, "looked in", nf.Searched)
		fmt.Fprintln(os.Stderr, nf.Hint)
		os.Exit(1)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.N, "training images")
}

// ReadIDXImages reads plain or gzip-compressed IDX images.
func ExampleReadIDXImages() {
	f, err := os.Open("testdata/mnist/t10k-images-idx3-ubyte.gz")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	pix, cfg, err := dataset.ReadIDXImages(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d images of %d×%d, %d values\n", cfg.N, cfg.Rows, cfg.Cols, len(pix))
	// Draw rows 7–20 of the first image, every other column.
	for y := 7; y < 21; y++ {
		var line strings.Builder
		for x := 2; x < 28; x += 2 {
			switch v := pix[y*cfg.Cols+x]; {
			case v > 0.5:
				line.WriteByte('#')
			case v > 0:
				line.WriteByte('+')
			default:
				line.WriteByte('.')
			}
		}
		fmt.Println(strings.TrimRight(line.String(), "."))
	}
	// Output:
	// 4 images of 28×28, 3136 values
	// ..+#+
	// ..########
	// ..++######
	// .....++++#
	// ........+#
	// ........#+
	// ........#+
	// .......+#
	// .......##
	// .......#+
	// .......#
	// ......+#
	// ......##
	// .....+#+
}

// ReadIDXLabels reads an IDX label file.
func ExampleReadIDXLabels() {
	f, err := os.Open("testdata/mnist/t10k-labels-idx1-ubyte.gz")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	labels, err := dataset.ReadIDXLabels(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(labels)
	// Output:
	// [7 2 1 0]
}

// DecodeIDXConfig reads only the header.
func ExampleDecodeIDXConfig() {
	f, err := os.Open("testdata/mnist/t10k-images-idx3-ubyte.gz")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	cfg, err := dataset.DecodeIDXConfig(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("magic 0x%08x: %d images of %d×%d, %d bytes of pixels\n", cfg.Magic, cfg.N, cfg.Rows, cfg.Cols, cfg.DataSize())
	// Output:
	// magic 0x00000803: 4 images of 28×28, 3136 bytes of pixels
}

// ReadCIFAR reads CIFAR-10 binary records: one label byte, then the red,
// green and blue planes of a 32×32 image.
func ExampleReadCIFAR() {
	rec := make([]byte, dataset.CIFARRecordSize)
	rec[0] = 3       // label: cat
	rec[1] = 255     // red plane, pixel (0, 0)
	rec[1+1024] = 51 // green plane, pixel (0, 0)
	d, err := dataset.ReadCIFAR(bytes.NewReader(rec))
	if err != nil {
		log.Fatal(err)
	}
	names, _ := dataset.ClassNames("cifar10")
	img := d.Image(0)
	fmt.Printf("%d image of %d×%d×%d, class %s, pixel (0,0) RGB = %.1f %.1f %.1f\n",
		d.N, d.C, d.H, d.W, names[d.Labels[0]], img[0], img[d.H*d.W], img[2*d.H*d.W])

	// A file that is not a whole number of records is rejected.
	_, err = dataset.ReadCIFAR(bytes.NewReader(rec[:3000]))
	fmt.Println(errors.Is(err, dataset.ErrRecordSize), err)
	// Output:
	// 1 image of 3×32×32, class cat, pixel (0,0) RGB = 1.0 0.2 0.0
	// true dataset: offset 0: size is not a whole number of records: size 3000 bytes is 0 records of 3073 bytes and 3000 bytes over
}

// Errors from malformed files say where the problem is.
func ExampleFormatError() {
	// An IDX label file (magic 0x801, 3 labels) whose last label is 12.
	data := []byte{0, 0, 8, 1, 0, 0, 0, 3, 4, 2, 12}
	_, err := dataset.ReadIDXLabels(bytes.NewReader(data))
	var fe *dataset.FormatError
	if errors.As(err, &fe) {
		fmt.Println("offset", fe.Offset, errors.Is(err, dataset.ErrLabelRange))
	}
	fmt.Println(err)
	// Output:
	// offset 10 true
	// dataset: offset 10: label out of range: label 12 at index 2, want 0–9
}

func ExampleLookup() {
	for _, name := range dataset.Names() {
		in, _ := dataset.Lookup(name)
		fmt.Printf("%-13s %d×%d×%d, %d classes (%s … %s), %d train / %d test\n",
			in.Name, in.C, in.H, in.W, in.Classes, in.ClassNames[0], in.ClassNames[in.Classes-1], in.TrainN, in.TestN)
	}
	// Output:
	// mnist         1×28×28, 10 classes (0 … 9), 60000 train / 10000 test
	// fashion-mnist 1×28×28, 10 classes (T-shirt/top … Ankle boot), 60000 train / 10000 test
	// cifar10       3×32×32, 10 classes (airplane … truck), 50000 train / 10000 test
}

func ExampleDataset_Subset() {
	d, err := dataset.Load("mnist", "test", "testdata")
	if err != nil {
		log.Fatal(err)
	}
	s := d.Subset([]int{3, 1}) // copies
	h := d.Head(2)             // shares memory with d
	fmt.Println(s.N, s.Labels, h.N, h.Labels)
	// Output:
	// 2 [0 2] 2 [7 2]
}
