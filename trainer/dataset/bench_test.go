package dataset

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkReadIDXImages reads generated 28×28 images (random pixels, so
// gzip barely compresses them) from memory, plain and gzip-compressed.
func BenchmarkReadIDXImages(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		plain := idxImages(n, 28, 28, 1)
		for _, in := range []struct {
			name string
			data []byte
		}{{"plain", plain}, {"gzip", gz(plain)}} {
			b.Run(fmt.Sprintf("n=%d/%s", n, in.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(plain)))
				for b.Loop() {
					if _, _, err := ReadIDXImages(bytes.NewReader(in.data)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkReadCIFAR reads generated CIFAR-10 records from memory.
func BenchmarkReadCIFAR(b *testing.B) {
	for _, n := range []int{100, 10000} {
		data := cifarRecords(n, 1)
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := ReadCIFAR(bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
