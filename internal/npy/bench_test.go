package npy

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkRead reads float32 vectors of 4 KiB and 4 MiB from memory.
func BenchmarkRead(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 20} {
		var buf bytes.Buffer
		if err := Write(&buf, &Array{Shape: []int{n}, Data: make([]float32, n)}); err != nil {
			b.Fatal(err)
		}
		data := buf.Bytes()
		b.Run(fmt.Sprintf("%dKiB", 4*n>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Read(bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWrite writes a 4 MiB float32 array to memory.
func BenchmarkWrite(b *testing.B) {
	a := &Array{Shape: []int{1024, 1024}, Data: make([]float32, 1<<20)}
	var buf bytes.Buffer
	b.ReportAllocs()
	b.SetBytes(4 << 20)
	for b.Loop() {
		buf.Reset()
		if err := Write(&buf, a); err != nil {
			b.Fatal(err)
		}
	}
}
