// goheap is the Go fixture of tests/integration/test_go_profiles.py: it allocates in known
// functions (main.leakA keeps its memory, main.churnB drops it), blocks on a channel
// (main.waitChan, block profile) and contends on a sync.Mutex (main.holdMutex releases it,
// mutex profile), runs runtime.GC() so that the heap profile is published, then stays still
// and serves its own net/http/pprof on 127.0.0.1:PORT (the first argument). With "off" as the
// second argument it enables neither the block nor the mutex profile; with "spin" as the third,
// one more goroutine runs main.spin forever. Prints READY when set up.
package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"sync"
	"time"
)

var kept [][]byte
var sink []byte

// leakA keeps n blocks of size bytes: the heap profile's in-use space.
//
//go:noinline
func leakA(n, size int) {
	for i := 0; i < n; i++ {
		kept = append(kept, make([]byte, size))
	}
}

// churnB allocates n blocks of size bytes and keeps none: allocated space, not in use.
//
//go:noinline
func churnB(n, size int) {
	for i := 0; i < n; i++ {
		sink = make([]byte, size)
	}
	sink = nil
}

// waitChan blocks on a channel receive n times for d each: the block profile's delay.
//
//go:noinline
func waitChan(n int, d time.Duration) {
	ch := make(chan int)
	for i := 0; i < n; i++ {
		go func() {
			time.Sleep(d)
			ch <- 1
		}()
		<-ch
	}
}

// holdMutex holds mu for d, n times, while another goroutine waits for it: the mutex
// profile charges the wait to this function's Unlock.
//
//go:noinline
func holdMutex(mu *sync.Mutex, n int, d time.Duration) {
	for i := 0; i < n; i++ {
		mu.Lock()
		time.Sleep(d)
		mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

//go:noinline
func contend(mu *sync.Mutex, n int) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			time.Sleep(time.Millisecond)
			mu.Lock()
			mu.Unlock()
		}
	}()
	holdMutex(mu, n, 5*time.Millisecond)
	wg.Wait()
}

var spun uint64

// spin keeps a goroutine running: the goroutine profile shows it at its thread's stack.
//
//go:noinline
func spin() {
	x := uint64(1)
	for {
		for i := 0; i < 1000000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		spun += x
	}
}

// parked goroutines: the goroutine profile counts them by stack.
//
//go:noinline
func parked(ch chan int) {
	<-ch
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: goheap PORT [off]")
		os.Exit(2)
	}
	enable := len(os.Args) < 3 || os.Args[2] != "off"
	if enable {
		runtime.SetBlockProfileRate(1)
		runtime.SetMutexProfileFraction(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go http.Serve(ln, nil)

	never := make(chan int)
	for i := 0; i < 20; i++ {
		go parked(never)
	}
	leakA(4096, 8192)
	churnB(2048, 65536)
	waitChan(10, 20*time.Millisecond)
	var mu sync.Mutex
	contend(&mu, 10)
	// Two collections: allocations are published in the heap profile at the second.
	runtime.GC()
	runtime.GC()
	if len(os.Args) > 3 && os.Args[3] == "spin" {
		go spin()
	}
	fmt.Println("READY")
	select {}
}
