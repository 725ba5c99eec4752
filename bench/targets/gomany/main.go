// gomany is the target of bench/go_dump.py: N goroutines (the argument, default 10000)
// parked at a few depths in a channel receive, a mutex and a select, like a busy server's
// handlers; one goroutine spins so that a thread runs. Prints READY when all are parked.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

var (
	never = make(chan int)
	other = make(chan string)
	mu    sync.Mutex
	sink  uint64
)

//go:noinline
func park(depth, kind int, started *sync.WaitGroup) {
	if depth > 0 {
		park(depth-1, kind, started)
		return
	}
	started.Done()
	switch kind {
	case 0:
		<-never
	case 1:
		mu.Lock()
	default:
		select {
		case <-never:
		case <-other:
		}
	}
}

//go:noinline
func spin() {
	x := uint64(1)
	for {
		for i := 0; i < 1000000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		sink += x
	}
}

func main() {
	n := 10000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	mu.Lock()
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		go park(i%8, i%3, &started)
	}
	started.Wait()
	go spin()
	runtime.GC()
	time.Sleep(100 * time.Millisecond)
	fmt.Println("READY", runtime.NumGoroutine())
	select {}
}
