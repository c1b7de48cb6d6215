package shard_test

import (
	"fmt"

	"github.com/marginaudit/marginaudit/auditor/shard"
)

// Two checkpoints of 1,000 test images, attacked in two norms: two shards
// take a checkpoint each; three cut the images into ranges.
func ExamplePartition() {
	items := []shard.Item{
		{Checkpoint: "epoch-000.onnx", Split: "test", Images: 1000, Weight: 2},
		{Checkpoint: "epoch-001.onnx", Split: "test", Images: 1000, Weight: 2},
	}
	for _, n := range []int{2, 3} {
		shards, err := shard.Partition(items, n)
		if err != nil {
			fmt.Println(err)
			return
		}
		for i, units := range shards {
			fmt.Printf("shard %d/%d: %v\n", i, n, units)
		}
	}
	// Output:
	// shard 0/2: [epoch-000.onnx test images 0-999]
	// shard 1/2: [epoch-001.onnx test images 0-999]
	// shard 0/3: [epoch-000.onnx test images 0-666]
	// shard 1/3: [epoch-000.onnx test images 667-999 epoch-001.onnx test images 0-332]
	// shard 2/3: [epoch-001.onnx test images 333-999]
}
