// gogoroutines: a Go program whose goroutines wait in known places, for cprof's goroutine dump.
//
// Usage: gogoroutines [RECEIVERS [DUMPFILE]]. It starts RECEIVERS (default 1000) goroutines in
// chan receive, 10 in select, 5 in sync.Mutex.Lock, one in a network read, one sleeping and
// one locked to its thread (runtime.LockOSThread) in chan receive, then prints READY. On
// SIGUSR1 it writes its own pprof.Lookup("goroutine").WriteTo(w, 2) to DUMPFILE (through
// DUMPFILE.tmp, renamed when complete).
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"
)

var (
	never  = make(chan int)
	never2 = make(chan int)
	mu     sync.Mutex
)

//go:noinline
func receiver(id int) {
	<-never
	fmt.Println("unreachable", id)
}

//go:noinline
func selecter() {
	select {
	case <-never:
	case <-never2:
	}
}

//go:noinline
func locker() {
	mu.Lock()
	mu.Unlock()
}

//go:noinline
func reader(c net.Conn) {
	buf := make([]byte, 16)
	c.Read(buf)
}

//go:noinline
func sleeper() {
	time.Sleep(24 * time.Hour)
}

//go:noinline
func lockedWaiter() {
	runtime.LockOSThread()
	<-never
}

func dumpOnSignal(path string) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	for range sigs {
		f, err := os.Create(path + ".tmp")
		if err != nil {
			continue
		}
		pprof.Lookup("goroutine").WriteTo(f, 2)
		f.Close()
		os.Rename(path+".tmp", path)
	}
}

func main() {
	n := 1000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		go dumpOnSignal(os.Args[2])
	}
	for i := 0; i < n; i++ {
		go receiver(i)
	}
	for i := 0; i < 10; i++ {
		go selecter()
	}
	mu.Lock()
	for i := 0; i < 5; i++ {
		go locker()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	server, err := ln.Accept()
	if err != nil {
		panic(err)
	}
	go reader(server)
	go sleeper()
	go lockedWaiter()
	// Let every goroutine reach its wait before saying READY.
	want := n + 10 + 5 + 3 + 1
	for runtime.NumGoroutine() < want {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	fmt.Println("READY", os.Getpid())
	select {}
	_ = client
}
