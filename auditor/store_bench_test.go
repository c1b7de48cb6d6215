package auditor

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

// BenchmarkStoreMemory measures the peak heap of what the store does in a
// resumed audit — OpenStore (which reads and checks every finished
// checkpoint's parts and rebuilds margins.csv), the commit of the last
// checkpoint (which rebuilds margins.csv, confidence.csv and robust.csv
// again) and WriteReport — for stores of few and many
// checkpoints of 200 and 1,000 images in two norms (makePart), as issue 13
// item 4 asks: the peak must not grow with the number of checkpoints beyond
// the summary itself (summary.json is about 5 KB per checkpoint, held
// whole while it is encoded), whatever the number of images. See
// loopPeakHeap for how the peak is measured (run it with -benchtime=5x).
func BenchmarkStoreMemory(b *testing.B) {
	for _, size := range []struct{ checkpoints, images int }{{5, 200}, {40, 200}, {120, 200}, {5, 1000}, {120, 1000}} {
		checkpoints, images := size.checkpoints, size.images
		b.Run(fmt.Sprintf("checkpoints=%d/images=%d", checkpoints, images), func(b *testing.B) {
			dir := b.TempDir()
			st, err := OpenStore(dir, testSettings())
			if err != nil {
				b.Fatal(err)
			}
			if err := st.CommitAll(func(yield func(*Part, error) bool) {
				for i := range checkpoints - 1 {
					if !yield(makePart(i, images), nil) {
						return
					}
				}
			}); err != nil {
				b.Fatal(err)
			}
			last := makePart(checkpoints-1, images)
			loopPeakHeap(b, func() error {
				st, err := OpenStore(dir, testSettings())
				if err != nil {
					return err
				}
				if err := st.Commit(last); err != nil {
					return err
				}
				_, err = st.WriteReport()
				return err
			})
		})
	}
}

// loopPeakHeap runs run in b.Loop and reports peak-heap-MB: the least,
// over the iterations, of the peak of heapBytes while run ran, above
// heapBytes before it. The heap is sampled every 100 µs with the GC target
// at 5 % above the live heap, so a peak is close to the live data's. On a
// busy machine the collector falls behind now and then and a peak holds
// garbage too — up to 2 MB more in one iteration of four, measured on the
// shared 2-core machine — but garbage only ever adds to a peak: the least
// of several iterations' peaks is the one that depends least on the
// machine's load.
func loopPeakHeap(b *testing.B, run func() error) {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	least := uint64(math.MaxUint64)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
		base := heapBytes()
		var peak uint64
		stop := sampleHeapPeak(&peak)
		err := run()
		stop()
		if err != nil {
			b.Fatal(err)
		}
		least = min(least, peak-min(base, peak))
	}
	b.ReportMetric(float64(least)/1e6, "peak-heap-MB")
}

// heapBytes is the heap memory occupied by objects, live or not yet swept.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// sampleHeapPeak raises *peak to the largest heapBytes seen until stop is
// called.
func sampleHeapPeak(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Microsecond)
		defer t.Stop()
		for {
			*peak = max(*peak, heapBytes())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		*peak = max(*peak, heapBytes())
	}
}
