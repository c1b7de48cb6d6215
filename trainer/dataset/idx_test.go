package dataset

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"
)

func TestReadIDXImages(t *testing.T) {
	valid := idxImages(3, 4, 5, 1)
	corruptCRC := gz(valid)
	corruptCRC[len(corruptCRC)-8] ^= 0xff // first byte of the CRC-32 trailer
	tests := []struct {
		name    string
		data    []byte
		wantErr error // nil for success
		wantOff int64 // offset of the *FormatError
		wantMsg string
		want    IDXConfig
	}{
		{name: "plain", data: valid, want: IDXConfig{IDXImagesMagic, 3, 4, 5}},
		{name: "gzip", data: gz(valid), want: IDXConfig{IDXImagesMagic, 3, 4, 5}},
		{name: "no images", data: idxHeader(IDXImagesMagic, 0, 28, 28), want: IDXConfig{IDXImagesMagic, 0, 28, 28}},
		{name: "one pixel", data: append(idxHeader(IDXImagesMagic, 1, 1, 1), 255), want: IDXConfig{IDXImagesMagic, 1, 1, 1}},
		{name: "empty", data: nil, wantErr: ErrTruncated, wantMsg: "IDX magic number: got 0 of 4 bytes"},
		{name: "short magic", data: []byte{0, 0, 8}, wantErr: ErrTruncated, wantOff: 3},
		{name: "label file", data: idxLabels(3, 1), wantErr: ErrBadMagic, wantMsg: "got 0x00000801 (IDX labels), want 0x00000803 (IDX images)"},
		{name: "float idx", data: idxHeader(0x00000D03, 1, 1, 1), wantErr: ErrBadMagic, wantMsg: "(IDX float32, 3 dimensions)"},
		{name: "not idx", data: []byte("P5\n28 28\n255\n"), wantErr: ErrBadMagic, wantMsg: "not an IDX file"},
		{name: "little endian", data: []byte{3, 8, 0, 0, 1, 0, 0, 0}, wantErr: ErrBadMagic},
		{name: "short dims", data: idxHeader(IDXImagesMagic, 3, 4), wantErr: ErrTruncated, wantOff: 12},
		{name: "zero rows", data: idxHeader(IDXImagesMagic, 3, 0, 5), wantErr: ErrBadDims, wantOff: 8},
		{name: "zero cols", data: idxHeader(IDXImagesMagic, 3, 5, 0), wantErr: ErrBadDims, wantOff: 8},
		{name: "huge", data: idxHeader(IDXImagesMagic, 1<<20, 28, 28), wantErr: ErrTooLarge, wantOff: 4},
		{name: "huge image", data: idxHeader(IDXImagesMagic, 0, 1<<16, 1<<16), wantErr: ErrTooLarge},
		{name: "max dims", data: idxHeader(IDXImagesMagic, math.MaxUint32, math.MaxUint32, math.MaxUint32), wantErr: ErrTooLarge},
		{name: "truncated pixels", data: valid[:16+7], wantErr: ErrTruncated, wantOff: 16 + 7, wantMsg: "pixel data: got 7 of 60 bytes"},
		{name: "truncated gzip pixels", data: gz(valid[:16+7]), wantErr: ErrTruncated, wantOff: 16 + 7},
		{name: "cut gzip stream", data: gz(valid)[:20], wantErr: ErrTruncated},
		{name: "gzip without trailer", data: gz(valid)[:len(gz(valid))-8], wantErr: ErrTruncated, wantOff: 76},
		{name: "trailing byte", data: append(bytes.Clone(valid), 0), wantErr: ErrTrailingData, wantOff: 76},
		{name: "gzip checksum", data: corruptCRC, wantErr: gzip.ErrChecksum, wantOff: 76},
		{name: "gzip garbage after stream", data: append(gz(valid), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10), wantErr: gzip.ErrHeader},
		{name: "bad gzip header", data: []byte{0x1f, 0x8b, 99, 0, 0, 0, 0, 0, 0, 0}, wantErr: gzip.ErrHeader},
		{name: "short gzip header", data: []byte{0x1f, 0x8b, 8}, wantErr: ErrTruncated},
	}
	for _, tt := range tests {
		// Sized readers take the fail-fast path, opaque ones read in chunks:
		// both must agree.
		for _, wrap := range []struct {
			name string
			r    func([]byte) io.Reader
		}{
			{"sized", func(b []byte) io.Reader { return bytes.NewReader(b) }},
			{"opaque", func(b []byte) io.Reader { return opaque{bytes.NewReader(b)} }},
		} {
			t.Run(tt.name+"/"+wrap.name, func(t *testing.T) {
				pix, cfg, err := ReadIDXImages(wrap.r(tt.data))
				if tt.wantErr == nil {
					if err != nil {
						t.Fatalf("ReadIDXImages: %v", err)
					}
					if cfg != tt.want {
						t.Errorf("config = %+v, want %+v", cfg, tt.want)
					}
					raw := gunzipIfGz(t, tt.data)[16:]
					if len(pix) != len(raw) {
						t.Fatalf("%d pixels, want %d", len(pix), len(raw))
					}
					for i, b := range raw {
						if want := float32(b) / 255; pix[i] != want {
							t.Fatalf("pixel %d = %v, want %v", i, pix[i], want)
						}
					}
					return
				}
				checkFormatError(t, err, tt.wantErr, tt.wantOff, tt.wantMsg)
			})
		}
	}
}

// checkFormatError checks that err is a *FormatError wrapping want, at
// offset off (unless off is 0 and want is not about offset 0: pass 0 to skip
// checking mid-stream gzip errors), whose message contains msg.
func checkFormatError(t *testing.T, err, want error, off int64, msg string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FormatError", err, err)
	}
	if off != 0 && fe.Offset != off {
		t.Errorf("offset = %d, want %d (error: %v)", fe.Offset, off, err)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not contain %q", err, msg)
	}
	if !strings.HasPrefix(err.Error(), "dataset: ") {
		t.Errorf("error %q lacks the package prefix", err)
	}
}

func TestReadIDXLabels(t *testing.T) {
	valid := idxLabels(10, 2)
	tests := []struct {
		name    string
		data    []byte
		wantErr error
		wantOff int64
		wantMsg string
	}{
		{name: "plain", data: valid},
		{name: "gzip", data: gz(valid)},
		{name: "none", data: idxHeader(IDXLabelsMagic, 0)},
		{name: "all digits", data: append(idxHeader(IDXLabelsMagic, 10), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{name: "label 10", data: append(idxHeader(IDXLabelsMagic, 3), 1, 10, 2), wantErr: ErrLabelRange, wantOff: 9, wantMsg: "label 10 at index 1, want 0–9"},
		{name: "label 255 gzip", data: gz(append(idxHeader(IDXLabelsMagic, 3), 1, 2, 255)), wantErr: ErrLabelRange, wantOff: 10},
		{name: "image file", data: idxImages(1, 2, 2, 1), wantErr: ErrBadMagic, wantOff: 0, wantMsg: "want 0x00000801"},
		{name: "short count", data: idxHeader(IDXLabelsMagic)[:4], wantErr: ErrTruncated, wantOff: 4},
		{name: "truncated", data: valid[:12], wantErr: ErrTruncated, wantOff: 12, wantMsg: "labels: got 4 of 10 bytes"},
		{name: "trailing", data: append(bytes.Clone(valid), 3), wantErr: ErrTrailingData, wantOff: 18},
		{name: "huge", data: idxHeader(IDXLabelsMagic, MaxDataBytes+1), wantErr: ErrTooLarge, wantOff: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			labels, err := ReadIDXLabels(bytes.NewReader(tt.data))
			if tt.wantErr != nil {
				checkFormatError(t, err, tt.wantErr, tt.wantOff, tt.wantMsg)
				return
			}
			if err != nil {
				t.Fatalf("ReadIDXLabels: %v", err)
			}
			raw := gunzipIfGz(t, tt.data)[8:]
			if len(labels) != len(raw) {
				t.Fatalf("%d labels, want %d", len(labels), len(raw))
			}
			for i, b := range raw {
				if labels[i] != int(b) {
					t.Fatalf("label %d = %d, want %d", i, labels[i], b)
				}
			}
		})
	}
}

func TestDecodeIDXConfig(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		want    IDXConfig
		wantErr error
	}{
		{"images", idxImages(2, 3, 4, 1), IDXConfig{IDXImagesMagic, 2, 3, 4}, nil},
		{"images gzip", gz(idxImages(2, 3, 4, 1)), IDXConfig{IDXImagesMagic, 2, 3, 4}, nil},
		{"labels", idxLabels(7, 1), IDXConfig{Magic: IDXLabelsMagic, N: 7}, nil},
		// The header alone is enough: the data need not be present.
		{"header only", idxHeader(IDXImagesMagic, 60000, 28, 28), IDXConfig{IDXImagesMagic, 60000, 28, 28}, nil},
		{"bad magic", idxHeader(0x00000802, 1, 1), IDXConfig{}, ErrBadMagic},
		{"huge", idxHeader(IDXImagesMagic, 1<<30, 1, 1), IDXConfig{}, ErrTooLarge},
		{"truncated", idxHeader(IDXImagesMagic, 1, 1), IDXConfig{}, ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := DecodeIDXConfig(bytes.NewReader(tt.data))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if cfg != tt.want {
				t.Errorf("config = %+v, want %+v", cfg, tt.want)
			}
		})
	}
	if got, want := (IDXConfig{IDXImagesMagic, 2, 3, 4}).DataSize(), int64(24); got != want {
		t.Errorf("images DataSize = %d, want %d", got, want)
	}
	if got, want := (IDXConfig{Magic: IDXLabelsMagic, N: 7}).HeaderSize(), int64(8); got != want {
		t.Errorf("labels HeaderSize = %d, want %d", got, want)
	}
}

// TestIDXRoundTrip checks that WriteIDX* inverts ReadIDX* byte for byte.
func TestIDXRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 17} {
		img := idxImages(n, 7, 3, uint64(n))
		pix, cfg, err := ReadIDXImages(bytes.NewReader(gz(img)))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteIDXImages(&buf, pix, cfg.N, cfg.Rows, cfg.Cols); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), img) {
			t.Errorf("n=%d: images do not round trip", n)
		}
		lab := idxLabels(n, uint64(n))
		labels, err := ReadIDXLabels(bytes.NewReader(lab))
		if err != nil {
			t.Fatal(err)
		}
		buf.Reset()
		if err := WriteIDXLabels(&buf, labels); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), lab) {
			t.Errorf("n=%d: labels do not round trip", n)
		}
	}
}

func TestWriteIDXErrors(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteIDXImages(&buf, make([]float32, 5), 1, 2, 2); !errors.Is(err, ErrBadDims) {
		t.Errorf("wrong pixel count: error = %v, want ErrBadDims", err)
	}
	if err := WriteIDXImages(&buf, nil, 1, 0, 2); !errors.Is(err, ErrBadDims) {
		t.Errorf("zero rows: error = %v, want ErrBadDims", err)
	}
	if err := WriteIDXImages(&buf, nil, 1<<20, 1<<20, 1<<20); !errors.Is(err, ErrBadDims) {
		t.Errorf("huge: error = %v, want ErrBadDims", err)
	}
	if err := WriteIDXLabels(&buf, []int{1, 10}); !errors.Is(err, ErrLabelRange) {
		t.Errorf("label 10: error = %v, want ErrLabelRange", err)
	}
	if err := WriteIDXLabels(&buf, []int{-1}); !errors.Is(err, ErrLabelRange) {
		t.Errorf("label -1: error = %v, want ErrLabelRange", err)
	}
}

func TestUnitToByte(t *testing.T) {
	for i := range 256 {
		if got := unitToByte(byteToUnit[i]); got != byte(i) {
			t.Errorf("unitToByte(%d/255) = %d", i, got)
		}
	}
	for _, tt := range []struct {
		v    float32
		want byte
	}{
		{-0.5, 0}, {0, 0}, {0.5, 128}, {1, 255}, {7, 255},
		{float32(math.NaN()), 0}, {float32(math.Inf(1)), 255}, {float32(math.Inf(-1)), 0},
	} {
		if got := unitToByte(tt.v); got != tt.want {
			t.Errorf("unitToByte(%v) = %d, want %d", tt.v, got, tt.want)
		}
	}
}

// TestIDXLyingHeaderMemory checks that a header claiming far more data than
// the stream holds costs memory in proportion to the data present: a
// 210 MB claim over 1 KB of gzip allocates a few MB, not 210 MB (or 840 MB
// of float32).
func TestIDXLyingHeaderMemory(t *testing.T) {
	data := gz(append(idxHeader(IDXImagesMagic, 268000, 28, 28), make([]byte, 1000)...))
	for _, r := range []io.Reader{bytes.NewReader(data), opaque{bytes.NewReader(data)}} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := ReadIDXImages(r)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("error = %v, want ErrTruncated", err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Errorf("%T: allocated %d bytes for a truncated stream of 1 KB", r, alloc)
		}
	}
}

// TestReadIDXGrowth checks the chunked path on a stream larger than one chunk
// whose size the reader cannot know.
func TestReadIDXGrowth(t *testing.T) {
	img := idxImages(3000, 28, 28, 5) // 2.35 MB: three chunks
	pix, cfg, err := ReadIDXImages(opaque{bytes.NewReader(img)})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.N != 3000 || len(pix) != 3000*28*28 {
		t.Fatalf("got %d images, %d pixels", cfg.N, len(pix))
	}
	if got, want := pix[len(pix)-1], float32(img[len(img)-1])/255; got != want {
		t.Errorf("last pixel = %v, want %v", got, want)
	}
}

func TestLoadIDX(t *testing.T) {
	dir := t.TempDir()
	img := writeFile(t, dir, "img.gz", gz(idxImages(5, 3, 2, 1)))
	lab := writeFile(t, dir, "lab", idxLabels(5, 1))
	lab4 := writeFile(t, dir, "lab4.gz", gz(idxLabels(4, 1)))
	bad := writeFile(t, dir, "bad.gz", gz(append(idxHeader(IDXLabelsMagic, 2), 3, 11)))

	d, err := LoadIDX(img, lab)
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 5 || d.C != 1 || d.H != 3 || d.W != 2 || d.Classes != 10 {
		t.Errorf("shape %d×%d×%d×%d, %d classes", d.N, d.C, d.H, d.W, d.Classes)
	}
	if err := d.Validate(); err != nil {
		t.Error(err)
	}

	_, err = LoadIDX(img, lab4)
	if !errors.Is(err, ErrCountMismatch) || !strings.Contains(err.Error(), "5 images") || !strings.Contains(err.Error(), "4 labels") {
		t.Errorf("mismatch: error = %v", err)
	}

	_, err = LoadIDX(img, bad)
	var fe *FormatError
	if !errors.As(err, &fe) || fe.File != bad || fe.Offset != 9 || !errors.Is(err, ErrLabelRange) {
		t.Errorf("bad label: error = %v, want a FormatError naming %s at offset 9", err, bad)
	}
	if !strings.HasPrefix(err.Error(), "dataset: "+bad+": offset 9: label out of range") {
		t.Errorf("message %q", err)
	}

	_, err = LoadIDX(lab, lab) // labels where images belong
	if !errors.Is(err, ErrBadMagic) || !strings.Contains(err.Error(), lab) {
		t.Errorf("swapped: error = %v", err)
	}

	_, err = LoadIDX(img, dir+"/missing")
	if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing: error = %v", err)
	}
}
