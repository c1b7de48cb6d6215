package shard

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// checkpoints returns items for c checkpoints of the given splits, with
// images[i] images in split i, each of cost weight.
func checkpoints(c int, splits []string, images []int, weight int) []Item {
	var out []Item
	for k := range c {
		for i, s := range splits {
			out = append(out, Item{Checkpoint: fmt.Sprintf("epoch-%03d.onnx", k), Split: s, Images: images[i], Weight: weight})
		}
	}
	return out
}

func TestPartitionCoversEveryImageOnceAndBalances(t *testing.T) {
	works := map[string][]Item{
		"one checkpoint of 1 image":   checkpoints(1, []string{"test"}, []int{1}, 1),
		"one checkpoint of 50 images": checkpoints(1, []string{"test"}, []int{50}, 2),
		"3 checkpoints of 7 images":   checkpoints(3, []string{"test"}, []int{7}, 1),
		"5 checkpoints, 2 splits":     checkpoints(5, []string{"train", "test"}, []int{13, 7}, 2),
		"21 checkpoints of 3 images":  checkpoints(21, []string{"test"}, []int{3}, 1),
		"uneven weights and sizes": {
			{Checkpoint: "a", Split: "train", Images: 40, Weight: 3},
			{Checkpoint: "a", Split: "test", Images: 1, Weight: 1},
			{Checkpoint: "b", Split: "test", Images: 17, Weight: 2},
		},
	}
	for name, items := range works {
		total, totalCost, maxItem, maxWeight := 0, 0, 0, 0
		for _, it := range items {
			total, totalCost = total+it.Images, totalCost+it.Cost()
			maxItem, maxWeight = max(maxItem, it.Cost()), max(maxWeight, it.Weight)
		}
		for n := 1; n <= 20; n++ {
			t.Run(fmt.Sprintf("%s/%d shards", name, n), func(t *testing.T) {
				shards, err := Partition(items, n)
				if n > total {
					if !errors.Is(err, ErrSpec) {
						t.Fatalf("%d shards for %d images: err = %v, want ErrSpec", n, total, err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(shards) != n {
					t.Fatalf("%d shards, want %d", len(shards), n)
				}
				seen := map[string][]int{}
				costs := make([]int, n)
				weight := map[string]int{}
				for _, it := range items {
					key := it.Checkpoint + " " + it.Split
					seen[key], weight[key] = make([]int, it.Images), it.Weight
				}
				for k, units := range shards {
					if len(units) == 0 {
						t.Errorf("shard %d has no units", k)
					}
					for _, u := range units {
						key := u.Checkpoint + " " + u.Split
						if seen[key] == nil || u.Lo < 0 || u.Hi > len(seen[key]) || u.Lo >= u.Hi {
							t.Fatalf("shard %d: unit %v is not within an item", k, u)
						}
						for i := u.Lo; i < u.Hi; i++ {
							seen[key][i]++
						}
						costs[k] += u.Len() * weight[key]
					}
				}
				for key, counts := range seen {
					for i, c := range counts {
						if c != 1 {
							t.Errorf("%s image %d is in %d units", key, i, c)
						}
					}
				}
				// Whole items differ by at most an item's cost; with image
				// ranges each shard is within an image's cost of the mean.
				if spread := slices.Max(costs) - slices.Min(costs); n <= len(items) && spread > maxItem {
					t.Errorf("costs %v differ by %d, more than an item's cost %d", costs, spread, maxItem)
				}
				if n > len(items) {
					for k, c := range costs {
						if d := c*n - totalCost; d > maxWeight*n || -d > maxWeight*n {
							t.Errorf("shard %d costs %d, more than %d from the mean %d/%d", k, c, maxWeight, totalCost, n)
						}
					}
				}
			})
		}
	}
}

func TestPartitionExamples(t *testing.T) {
	u := func(ckpt string, lo, hi int) Unit { return Unit{Checkpoint: ckpt, Split: "test", Lo: lo, Hi: hi} }
	for _, tc := range []struct {
		name  string
		items []Item
		n     int
		want  [][]Unit
	}{
		{"split by checkpoints", checkpoints(3, []string{"test"}, []int{10}, 2), 3,
			[][]Unit{{u("epoch-000.onnx", 0, 10)}, {u("epoch-001.onnx", 0, 10)}, {u("epoch-002.onnx", 0, 10)}}},
		// Equal items go round robin; the third to the first shard.
		{"3 checkpoints on 2 shards", checkpoints(3, []string{"test"}, []int{10}, 2), 2,
			[][]Unit{{u("epoch-000.onnx", 0, 10), u("epoch-002.onnx", 0, 10)}, {u("epoch-001.onnx", 0, 10)}}},
		// Image g goes to shard ⌊(2g+1)·3/20⌋.
		{"one checkpoint split by images", checkpoints(1, []string{"test"}, []int{10}, 2), 3,
			[][]Unit{{u("epoch-000.onnx", 0, 3)}, {u("epoch-000.onnx", 3, 7)}, {u("epoch-000.onnx", 7, 10)}}},
		{"2 checkpoints on 3 shards", checkpoints(2, []string{"test"}, []int{3}, 1), 3,
			[][]Unit{{u("epoch-000.onnx", 0, 2)}, {u("epoch-000.onnx", 2, 3), u("epoch-001.onnx", 0, 1)}, {u("epoch-001.onnx", 1, 3)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Partition(tc.items, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Partition = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPartitionRefusesBadWork(t *testing.T) {
	for _, tc := range []struct {
		name  string
		items []Item
		n     int
		want  string
	}{
		{"no shards", checkpoints(1, []string{"test"}, []int{3}, 1), 0, "0 shards"},
		{"no images", checkpoints(1, []string{"test"}, []int{0}, 1), 1, "0 images"},
		{"no cost", checkpoints(1, []string{"test"}, []int{3}, 0), 1, "cost 0"},
		{"an item twice", append(checkpoints(1, []string{"test"}, []int{3}, 1), checkpoints(1, []string{"test"}, []int{3}, 1)...), 1, "listed twice"},
		{"more shards than images", checkpoints(2, []string{"test"}, []int{1}, 1), 3, "3 shards for 2 images"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Partition(tc.items, tc.n)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
		ok   bool
	}{
		{"0/1", Spec{0, 1}, true},
		{"3/4", Spec{3, 4}, true},
		{" 2/3 ", Spec{2, 3}, true},
		{"4/4", Spec{}, false},
		{"-1/4", Spec{}, false},
		{"0/0", Spec{}, false},
		{"1", Spec{}, false},
		{"a/b", Spec{}, false},
		{"auto", Spec{}, false},
	} {
		got, err := Parse(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrSpec) {
			t.Errorf("Parse(%q): %v does not wrap ErrSpec", tc.in, err)
		}
	}
}

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want Spec
		err  string // part of the error; "" for none
	}{
		{"slurm from 0", map[string]string{SlurmTaskID: "2", SlurmTaskMin: "0", SlurmTaskCount: "4"}, Spec{2, 4}, ""},
		{"slurm from 1", map[string]string{SlurmTaskID: "1", SlurmTaskMin: "1", SlurmTaskCount: "3", "SLURM_ARRAY_TASK_STEP": "1"}, Spec{0, 3}, ""},
		{"slurm with a step", map[string]string{SlurmTaskID: "2", SlurmTaskMin: "0", SlurmTaskCount: "2", "SLURM_ARRAY_TASK_STEP": "2"}, Spec{}, "step 2"},
		{"slurm without a count", map[string]string{SlurmTaskID: "2", SlurmTaskMin: "0"}, Spec{}, "SLURM_ARRAY_TASK_COUNT"},
		{"slurm out of range", map[string]string{SlurmTaskID: "5", SlurmTaskMin: "0", SlurmTaskCount: "4"}, Spec{}, "0 ≤ I < N"},
		{"kubernetes", map[string]string{JobCompletionIndex: "3", CountEnv: "5"}, Spec{3, 5}, ""},
		{"kubernetes without a count", map[string]string{JobCompletionIndex: "3"}, Spec{}, CountEnv},
		{"neither", map[string]string{"HOME": "/root"}, Spec{}, "neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromEnv(func(k string) string { return tc.env[k] })
			switch {
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrSpec)):
				t.Fatalf("err = %v, want ErrSpec saying %q", err, tc.err)
			}
			if got != tc.want {
				t.Errorf("FromEnv = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestManifestRoundTrip(t *testing.T) {
	items := checkpoints(2, []string{"train", "test"}, []int{5, 4}, 2)
	m, err := NewManifest(items, Spec{Index: 1, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := m.Write(&b); err != nil {
		t.Fatal(err)
	}
	got, err := ReadManifest(bytes.NewReader(b.Bytes()), "shard.json")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) || !got.SameWork(m) {
		t.Errorf("read back %+v, want %+v", got, m)
	}
	if m.Images() == 0 || len(m.Checkpoints()) == 0 {
		t.Errorf("shard 1/3 of %v has %d images of %v", items, m.Images(), m.Checkpoints())
	}

	// A manifest whose units are not its shard's is refused.
	edited := strings.Replace(b.String(), `"index": 1`, `"index": 2`, 1)
	if _, err := ReadManifest(strings.NewReader(edited), "shard.json"); err == nil || !strings.Contains(err.Error(), "not those of its work's partition") {
		t.Errorf("edited manifest: err = %v", err)
	}
}

func TestCover(t *testing.T) {
	items := checkpoints(3, []string{"test"}, []int{4}, 1)
	manifest := func(i, n int, items []Item) *Manifest {
		m, err := NewManifest(items, Spec{Index: i, Count: n})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	all := []*Manifest{manifest(0, 3, items), manifest(1, 3, items), manifest(2, 3, items)}
	dirs := []string{"s0", "s1", "s2"}
	if err := Cover(dirs, all); err != nil {
		t.Errorf("all shards: %v", err)
	}
	for _, tc := range []struct {
		name string
		dirs []string
		ms   []*Manifest
		want string
	}{
		{"missing", dirs[:2], all[:2], "shard 2/3 is missing (epoch-002.onnx test images 0-3)"},
		{"doubled", []string{"s0", "s1", "s2", "copy"}, append(slices.Clone(all), all[1]), "shard 1/3 is given 2 times (s1, copy)"},
		{"other count", []string{"s0", "x"}, []*Manifest{all[0], manifest(1, 2, items)}, "s0 is shard 0/3 but x is shard 1/2"},
		{"other work", []string{"s0", "x"}, []*Manifest{all[0], manifest(1, 3, checkpoints(3, []string{"test"}, []int{5}, 1))}, "shards of different work"},
		{"none", nil, nil, "no shards"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Cover(tc.dirs, tc.ms)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func FuzzReadManifest(f *testing.F) {
	m, err := NewManifest(checkpoints(2, []string{"test"}, []int{5}, 1), Spec{Index: 2, Count: 3})
	if err != nil {
		f.Fatal(err)
	}
	var b bytes.Buffer
	if err := m.Write(&b); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte(`{"format":"marginaudit-shard","version":1,"shard":{"index":0,"count":1},"items":[],"units":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 || bytes.Contains(data, []byte(`"images":1`)) && len(data) > 4096 {
			t.Skip("too large")
		}
		m, err := ReadManifest(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		// A manifest that reads back writes the same manifest.
		var out bytes.Buffer
		if err := m.Write(&out); err != nil {
			t.Fatal(err)
		}
		again, err := ReadManifest(&out, "again")
		if err != nil || !again.SameWork(m) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0/1", "3/4", " 2/3 ", "4/4", "-1/2", "a/b", "1/", "/1", "1//2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("Parse(%q): %v does not wrap ErrSpec", s, err)
			}
			return
		}
		if sp.Index < 0 || sp.Index >= sp.Count {
			t.Fatalf("Parse(%q) = %v, not 0 ≤ I < N", s, sp)
		}
		if again, err := Parse(sp.String()); err != nil || again != sp {
			t.Fatalf("Parse(%q) = %v, but its String %q reads as %v, %v", s, sp, sp.String(), again, err)
		}
	})
}
