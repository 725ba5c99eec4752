// gowaits is the Go fixture of tests/integration/test_dump_go.py: goroutines blocked on a
// channel, a mutex, a sleep and a TCP accept, two of them on threads of their own
// (LockOSThread); blocking system calls at start leave spare threads (Ms) parked in futex
// waits; BUSY goroutines (the argument, default 1) spin in main.spin. Prints READY when set up.
package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

var sink uint64

//go:noinline
func spin(seed uint64) {
	x := seed
	for {
		for i := 0; i < 1000000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		sink += x
	}
}

func main() {
	busy := 1
	if len(os.Args) > 1 {
		busy, _ = strconv.Atoi(os.Args[1])
	}
	runtime.GOMAXPROCS(4)
	ch := make(chan int)
	var mu sync.Mutex
	mu.Lock()
	for i := 0; i < 3; i++ {
		go func() { <-ch }()
		go func() { mu.Lock() }()
		go func() { time.Sleep(time.Hour) }()
	}
	for i := 0; i < 2; i++ {
		go func() {
			runtime.LockOSThread()
			<-ch
		}()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() { ln.Accept() }()
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			ts := syscall.Timespec{Nsec: 50 * 1000 * 1000}
			syscall.Nanosleep(&ts, nil)
			wg.Done()
		}()
	}
	wg.Wait()
	for i := 0; i < busy; i++ {
		go spin(uint64(i))
	}
	time.Sleep(100 * time.Millisecond)
	fmt.Println("READY")
	select {}
}
