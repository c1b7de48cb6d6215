package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// idxHeader builds an IDX header by hand (independently of WriteIDX*), so
// that tests can write any magic and any dimensions.
func idxHeader(magic uint32, dims ...uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, magic)
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return b
}

// randBytes returns n bytes from a fixed-seed generator.
func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// randLabels returns n labels in 0–9 as bytes.
func randLabels(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(10))
	}
	return b
}

// idxImages returns a plain IDX image file with random pixels.
func idxImages(n, rows, cols int, seed uint64) []byte {
	return append(idxHeader(IDXImagesMagic, uint32(n), uint32(rows), uint32(cols)), randBytes(n*rows*cols, seed)...)
}

// idxLabels returns a plain IDX label file with random labels 0–9.
func idxLabels(n int, seed uint64) []byte {
	return append(idxHeader(IDXLabelsMagic, uint32(n)), randLabels(n, seed)...)
}

// cifarRecords returns n CIFAR-10 records with random labels and pixels.
func cifarRecords(n int, seed uint64) []byte {
	labels := randLabels(n, seed)
	pix := randBytes(n*cifarImageBytes, seed)
	var b []byte
	for i := range n {
		b = append(b, labels[i])
		b = append(b, pix[i*cifarImageBytes:(i+1)*cifarImageBytes]...)
	}
	return b
}

// gz compresses b.
func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// gunzipIfGz returns b decompressed when it starts with the gzip magic.
func gunzipIfGz(t testing.TB, b []byte) []byte {
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b
	}
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

// opaque hides every method but Read, so readers cannot learn the size.
type opaque struct{ r io.Reader }

func (o opaque) Read(p []byte) (int, error) { return o.r.Read(p) }

// writeFile writes b to dir/name and returns the path.
func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
