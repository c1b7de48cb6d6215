package optim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
)

// stateMagic starts an encoded State; the last byte is the format version.
var stateMagic = []byte("maoptim\x01")

// ErrCorrupt reports an encoded State that cannot be decoded.
var ErrCorrupt = errors.New("optim: corrupt state")

// maxName bounds the length of names in an encoded State.
const maxName = 1 << 12

// MarshalBinary encodes s: the magic "maoptim\x01", the optimizer name, the
// step count, the buffers sorted by key (key, length, little-endian float32
// values), and a CRC-32 (IEEE) of everything before it. The encoding of a
// state is deterministic.
func (s *State) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	b.Write(stateMagic)
	putString(&b, s.Name)
	binary.Write(&b, binary.LittleEndian, s.Step)
	keys := make([]string, 0, len(s.Buffers))
	for k := range s.Buffers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	binary.Write(&b, binary.LittleEndian, uint32(len(keys)))
	for _, k := range keys {
		if len(k) > maxName {
			return nil, fmt.Errorf("optim: buffer name of %d bytes", len(k))
		}
		putString(&b, k)
		v := s.Buffers[k]
		binary.Write(&b, binary.LittleEndian, uint64(len(v)))
		binary.Write(&b, binary.LittleEndian, v)
	}
	binary.Write(&b, binary.LittleEndian, crc32.ChecksumIEEE(b.Bytes()))
	return b.Bytes(), nil
}

func putString(b *bytes.Buffer, s string) {
	binary.Write(b, binary.LittleEndian, uint32(len(s)))
	b.WriteString(s)
}

// UnmarshalBinary decodes a state encoded by MarshalBinary. Data that is not
// such an encoding (wrong magic, bad checksum, sizes past the end) fails
// with an error wrapping ErrCorrupt, without allocating more than len(data).
func (s *State) UnmarshalBinary(data []byte) error {
	if len(data) < len(stateMagic)+4 || !bytes.Equal(data[:len(stateMagic)], stateMagic) {
		return fmt.Errorf("%w: not an optimizer state (bad magic)", ErrCorrupt)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	r := &reader{b: body[len(stateMagic):]}
	out := State{Name: r.string(), Buffers: map[string][]float32{}}
	out.Step = int64(r.uint64())
	n := r.uint32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		k := r.string()
		m := r.uint64()
		if r.err == nil && m > uint64(len(r.b)/4) {
			r.err = io.ErrUnexpectedEOF
			break
		}
		v := make([]float32, m)
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(r.b[4*j:]))
		}
		r.b = r.b[4*m:]
		if _, dup := out.Buffers[k]; dup {
			return fmt.Errorf("%w: buffer %q twice", ErrCorrupt, k)
		}
		out.Buffers[k] = v
	}
	if r.err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, r.err)
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes of trailing data", ErrCorrupt, len(r.b))
	}
	*s = out
	return nil
}

// reader decodes little-endian values from a byte slice, remembering the
// first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = io.ErrUnexpectedEOF
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) uint32() uint32 {
	if p := r.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *reader) uint64() uint64 {
	if p := r.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (r *reader) string() string {
	n := r.uint32()
	if n > maxName {
		if r.err == nil {
			r.err = fmt.Errorf("name of %d bytes", n)
		}
		return ""
	}
	return string(r.take(int(n)))
}
