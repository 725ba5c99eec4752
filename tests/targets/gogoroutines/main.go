// gogoroutines: a Go program whose goroutines wait in known places, for cprof's goroutine dump.
//
// Usage: gogoroutines [RECEIVERS [DUMPFILE|- [spin][,churn]]]. It starts RECEIVERS (default
// 1000) goroutines in chan receive, 10 in select, 5 in sync.Mutex.Lock, one in a network read,
// one sleeping and one locked to its thread (runtime.LockOSThread) in chan receive, then
// prints READY. On SIGUSR1 it writes its own pprof.Lookup("goroutine").WriteTo(w, 2) to
// DUMPFILE (through DUMPFILE.tmp, renamed when complete). With spin, one more goroutine runs
// main.spin forever; with churn, goroutines pass a token around a ring and short-lived ones
// come and go all the time (goroutines that move while cprof reads them).
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	// The client end of the connection reader() reads: kept here, or a GC would finalize
	// it, close it, and end the read.
	client net.Conn
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

//go:noinline
func spin() {
	x := 0
	for {
		x++
		if x == -1 {
			fmt.Println(x)
		}
	}
}

//go:noinline
func ringMember(in, out chan int) {
	for v := range in {
		out <- v + 1
	}
}

// churn keeps goroutines moving: a ring of 20 passing a token, and short-lived ones.
func churn() {
	first := make(chan int)
	in := first
	for i := 0; i < 19; i++ {
		out := make(chan int)
		go ringMember(in, out)
		in = out
	}
	go ringMember(in, first)
	first <- 0
	for {
		done := make(chan bool)
		go func() { done <- true }()
		<-done
	}
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

// busy counts the goroutines not parked: runnable or running (main itself is one).
func busy() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Count(string(buf), " [runnable]:") + strings.Count(string(buf), " [running]:")
}

func main() {
	n := 1000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 && os.Args[2] != "-" {
		go dumpOnSignal(os.Args[2])
	}
	extra := 0
	if len(os.Args) > 3 {
		for _, mode := range strings.Split(os.Args[3], ",") {
			switch mode {
			case "spin":
				go spin()
				extra++
			case "churn":
				go churn()
				extra += 21
			}
		}
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
	client, err = net.Dial("tcp", ln.Addr().String())
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
	// Let every goroutine reach its wait before saying READY (on a loaded machine some are
	// still runnable long after they were started).
	want := n + 10 + 5 + 3 + 1 + extra
	for runtime.NumGoroutine() < want {
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 100 && busy() > 1+extra; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("READY", os.Getpid())
	select {}
}
