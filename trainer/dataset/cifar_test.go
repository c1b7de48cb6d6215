package dataset

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadCIFAR(t *testing.T) {
	valid := cifarRecords(3, 7)
	badLabel := cifarRecords(3, 7)
	badLabel[2*CIFARRecordSize] = 10
	gzValid := gz(valid)
	tests := []struct {
		name    string
		data    []byte
		wantN   int
		wantErr error
		wantOff int64
		wantMsg string
	}{
		{name: "one", data: cifarRecords(1, 1), wantN: 1},
		{name: "three", data: valid, wantN: 3},
		{name: "gzip", data: gz(valid), wantN: 3},
		{name: "empty", data: nil, wantErr: ErrTruncated, wantMsg: "empty file"},
		{name: "one byte over", data: append(bytes.Clone(valid), 0), wantErr: ErrRecordSize, wantOff: 3 * CIFARRecordSize,
			wantMsg: "size 9220 bytes is 3 records of 3073 bytes and 1 bytes over"},
		{name: "one byte short", data: valid[:len(valid)-1], wantErr: ErrRecordSize, wantOff: 2 * CIFARRecordSize,
			wantMsg: "size 9218 bytes"},
		{name: "label only", data: []byte{3}, wantErr: ErrRecordSize, wantOff: 0, wantMsg: "size 1 bytes"},
		{name: "gzip short", data: gz(valid[:len(valid)-1]), wantErr: ErrRecordSize, wantOff: 2 * CIFARRecordSize},
		// All records decompress, but the gzip trailer is cut off.
		{name: "gzip without trailer", data: gzValid[:len(gzValid)-8], wantErr: ErrTruncated, wantOff: 3 * CIFARRecordSize},
		{name: "label 10", data: badLabel, wantErr: ErrLabelRange, wantOff: 2 * CIFARRecordSize, wantMsg: "label 10 in record 2, want 0–9"},
	}
	for _, tt := range tests {
		for _, wrap := range []struct {
			name string
			r    func([]byte) io.Reader
		}{
			{"sized", func(b []byte) io.Reader { return bytes.NewReader(b) }},
			{"opaque", func(b []byte) io.Reader { return opaque{bytes.NewReader(b)} }},
		} {
			t.Run(tt.name+"/"+wrap.name, func(t *testing.T) {
				d, err := ReadCIFAR(wrap.r(tt.data))
				if tt.wantErr != nil {
					// Offset 0 is a real offset for CIFAR errors: check it.
					checkFormatError(t, err, tt.wantErr, tt.wantOff, tt.wantMsg)
					var fe *FormatError
					if errors.As(err, &fe) && fe.Offset != tt.wantOff {
						t.Errorf("offset = %d, want %d", fe.Offset, tt.wantOff)
					}
					return
				}
				if err != nil {
					t.Fatalf("ReadCIFAR: %v", err)
				}
				if err := d.Validate(); err != nil {
					t.Fatal(err)
				}
				if d.N != tt.wantN || d.C != 3 || d.H != 32 || d.W != 32 || d.Classes != 10 || d.Name != "cifar10" {
					t.Fatalf("got %s N=%d %d×%d×%d, %d classes", d.Name, d.N, d.C, d.H, d.W, d.Classes)
				}
				raw := gunzipIfGz(t, tt.data)
				for i := range d.N {
					rec := raw[i*CIFARRecordSize:]
					if d.Labels[i] != int(rec[0]) {
						t.Errorf("label %d = %d, want %d", i, d.Labels[i], rec[0])
					}
					for k, v := range d.Image(i) {
						if want := float32(rec[1+k]) / 255; v != want {
							t.Fatalf("image %d value %d = %v, want %v", i, k, v, want)
						}
					}
				}
			})
		}
	}
}

// TestCIFARLayout checks that the record's R, G and B planes become the C
// axis and that each plane is row-major: pixel (c, y, x) of the record is at
// 1 + c·1024 + y·32 + x.
func TestCIFARLayout(t *testing.T) {
	rec := make([]byte, CIFARRecordSize)
	rec[0] = 6                   // frog
	rec[1+0*1024+0*32+1] = 255   // R, row 0, column 1
	rec[1+1*1024+2*32+0] = 51    // G, row 2, column 0
	rec[1+2*1024+31*32+31] = 102 // B, last pixel
	d, err := ReadCIFAR(bytes.NewReader(rec))
	if err != nil {
		t.Fatal(err)
	}
	img := d.Image(0)
	at := func(c, y, x int) float32 { return img[(c*d.H+y)*d.W+x] }
	if d.Labels[0] != 6 || at(0, 0, 1) != 1 || at(1, 2, 0) != 0.2 || at(2, 31, 31) != 0.4 || at(0, 1, 0) != 0 {
		t.Errorf("label %d, R(0,1)=%v G(2,0)=%v B(31,31)=%v R(1,0)=%v", d.Labels[0], at(0, 0, 1), at(1, 2, 0), at(2, 31, 31), at(0, 1, 0))
	}
}

func TestCIFARRoundTrip(t *testing.T) {
	for _, n := range []int{1, 5, cifarChunkRecords + 3} {
		raw := cifarRecords(n, uint64(n))
		d, err := ReadCIFAR(opaque{bytes.NewReader(raw)})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteCIFAR(&buf, d); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), raw) {
			t.Errorf("n=%d: does not round trip", n)
		}
	}
}

func TestWriteCIFARErrors(t *testing.T) {
	mnist := &Dataset{Images: make([]float32, 784), Labels: []int{1}, N: 1, C: 1, H: 28, W: 28, Classes: 10}
	if err := WriteCIFAR(io.Discard, mnist); !errors.Is(err, ErrBadDims) {
		t.Errorf("28×28: error = %v, want ErrBadDims", err)
	}
	bad := &Dataset{Images: make([]float32, 3072), Labels: []int{10}, N: 1, C: 3, H: 32, W: 32, Classes: 10}
	if err := WriteCIFAR(io.Discard, bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("label 10: error = %v, want ErrInvalid", err)
	}
}

func TestLoadCIFAR(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "data_batch_1.bin", cifarRecords(2, 1))
	b := writeFile(t, dir, "data_batch_2.bin.gz", gz(cifarRecords(3, 2)))
	c := writeFile(t, dir, "data_batch_3.bin", cifarRecords(1, 3))
	d, err := LoadCIFAR(a, b, c)
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 6 || len(d.Images) != 6*3072 {
		t.Fatalf("N = %d, %d values", d.N, len(d.Images))
	}
	want := append(append(cifarRecords(2, 1), cifarRecords(3, 2)...), cifarRecords(1, 3)...)
	var buf bytes.Buffer
	if err := WriteCIFAR(&buf, d); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Error("concatenation differs from the files in order")
	}

	// A file of the wrong size fails before any file is read, naming the
	// file and its size.
	odd := writeFile(t, dir, "data_batch_4.bin", make([]byte, 30730001))
	_, err = LoadCIFAR(a, odd)
	var fe *FormatError
	if !errors.As(err, &fe) || fe.File != odd || !errors.Is(err, ErrRecordSize) {
		t.Fatalf("error = %v, want ErrRecordSize naming %s", err, odd)
	}
	if msg := err.Error(); !strings.Contains(msg, filepath.Base(odd)) || !strings.Contains(msg, "30730001") {
		t.Errorf("message %q lacks the file or its size", msg)
	}

	badLabel := cifarRecords(2, 9)
	badLabel[CIFARRecordSize] = 200
	bl := writeFile(t, dir, "test_batch.bin", badLabel)
	if _, err = LoadCIFAR(a, bl); !errors.As(err, &fe) || fe.File != bl || fe.Offset != CIFARRecordSize {
		t.Errorf("bad label: error = %v", err)
	}
	if _, err = LoadCIFAR(); err == nil {
		t.Error("no files: no error")
	}
	if _, err = LoadCIFAR(filepath.Join(dir, "nope.bin")); err == nil || !strings.Contains(err.Error(), "nope.bin") {
		t.Errorf("missing file: error = %v", err)
	}
}
