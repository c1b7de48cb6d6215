package auditor

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

// BenchmarkStoreMemory measures the peak heap of the end of an audit — the
// commit of its last checkpoint (which rebuilds margins.csv, confidence.csv
// and robust.csv) and WriteReport — for stores of few and many
// checkpoints of 200 and 1,000 images in two norms (makePart), as issue 13
// item 4 asks: the peak must not grow with the number of checkpoints beyond
// the summary itself (summary.json is about 5 KB per checkpoint, held
// whole while it is encoded), whatever the number of images. The heap is
// sampled every 100 µs with the GC target at 5 % above the live heap, so
// the peak is close to the live data's.
func BenchmarkStoreMemory(b *testing.B) {
	for _, size := range []struct{ checkpoints, images int }{{5, 200}, {40, 200}, {120, 200}, {5, 1000}, {120, 1000}} {
		checkpoints, images := size.checkpoints, size.images
		b.Run(fmt.Sprintf("checkpoints=%d/images=%d", checkpoints, images), func(b *testing.B) {
			st, err := OpenStore(b.TempDir(), testSettings())
			if err != nil {
				b.Fatal(err)
			}
			parts := make([]*Part, checkpoints-1)
			for i := range parts {
				parts[i] = makePart(i, images)
			}
			if err := st.CommitAll(parts); err != nil {
				b.Fatal(err)
			}
			parts = nil
			last := makePart(checkpoints-1, images)
			defer debug.SetGCPercent(debug.SetGCPercent(5))
			runtime.GC()
			base := heapBytes()
			var peak uint64
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				stop := sampleHeapPeak(&peak)
				if err := st.Commit(last); err != nil {
					b.Fatal(err)
				}
				if _, err := st.WriteReport(); err != nil {
					b.Fatal(err)
				}
				stop()
			}
			b.ReportMetric(float64(peak-min(base, peak))/1e6, "peak-heap-MB")
		})
	}
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
