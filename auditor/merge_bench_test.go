package auditor

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/shard"
)

// BenchmarkMergeMemory measures the peak heap of Merge for the folders of
// 4 shards holding 10 and 40 checkpoints of 1,000 images in two norms
// (makePart, with PGD, confidences and robust outcomes), as issue 13 item
// 4 asks of the whole audit: the peak must not grow with the number of
// checkpoints beyond the summary itself (about 5 KB per checkpoint, see
// BenchmarkStoreMemory), so the two sizes must report about the same
// peak-heap-MB. See loopPeakHeap for how the peak is measured (run it
// with -benchtime=5x).
func BenchmarkMergeMemory(b *testing.B) {
	const shards, images = 4, 1000
	for _, checkpoints := range []int{10, 40} {
		b.Run(fmt.Sprintf("checkpoints=%d/images=%d", checkpoints, images), func(b *testing.B) {
			dirs := writeShardFolders(b, testSettings(), checkpoints, images, shards)
			outs, n := b.TempDir(), 0
			loopPeakHeap(b, func() error {
				out := filepath.Join(outs, fmt.Sprint(n))
				n++
				if _, err := Merge(dirs, out); err != nil {
					return err
				}
				return os.RemoveAll(out)
			})
		})
	}
}

// writeShardFolders writes the finished folders of the given number of
// shards of an audit of checkpoints makePart(i, images), i < checkpoints,
// on the test split, each checkpoint whole in one shard (shards ≤
// checkpoints), and returns them.
func writeShardFolders(tb testing.TB, settings *Settings, checkpoints, images, shards int) []string {
	tb.Helper()
	pgd := len(settings.PGD.Norms) * len(settings.PGD.Eps)
	items := make([]shard.Item, checkpoints)
	index := map[string]int{}
	for i := range items {
		name := fmt.Sprintf("epoch-%03d.onnx", i)
		items[i] = shard.Item{Checkpoint: name, Split: string(Test), Images: images, Weight: len(settings.Norms) + pgd}
		index[name] = i
	}
	root := tb.TempDir()
	dirs := make([]string, shards)
	for i := range dirs {
		m, err := shard.NewManifest(items, shard.Spec{Index: i, Count: shards})
		if err != nil {
			tb.Fatal(err)
		}
		dirs[i] = filepath.Join(root, fmt.Sprintf("shard-%d", i))
		st, err := OpenStore(dirs[i], settings)
		if err != nil {
			tb.Fatal(err)
		}
		if err := writeFile(filepath.Join(dirs[i], ShardFile), m.Write); err != nil {
			tb.Fatal(err)
		}
		for _, u := range m.Units {
			if u.Lo != 0 || u.Hi != images {
				tb.Fatalf("shard %d/%d holds part of a checkpoint: %s", i, shards, u)
			}
			if err := st.Commit(makePart(index[u.Checkpoint], images)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return dirs
}
