// godiag is the Go fixture of tests/integration/test_go_diag.py, one problem per mode (the
// argument): "leak" leaks a goroutine blocked in a send nobody receives (main.leakOne) at
// start and then one every LEAK_EVERY, beside a fixed pool of workers on one channel of
// main.job (not a leak), a connection read without a deadline, one with a deadline and an
// accept (no deadline, as usual);
// "deadlock" ends with every goroutine asleep for good (two goroutines that take two mutexes
// in opposite orders, main waiting for them, one on a channel nobody sends to) while
// os/signal's watcher keeps Go's own deadlock check quiet; "timer" is the same with a
// select that a pending timer will wake. Prints facts as "name value" lines, then READY.
package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

type job struct {
	id      int
	payload string
}

const leakEvery = 100 * time.Millisecond

// The listener and the connections live as long as the program (none closed by a finalizer).
var (
	listener net.Listener
	conns    []net.Conn
)

// goid is the running goroutine's id, from its own traceback header.
func goid() int {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf = bytes.TrimPrefix(buf, []byte("goroutine "))
	id, _ := strconv.Atoi(string(buf[:bytes.IndexByte(buf, ' ')]))
	return id
}

//go:noinline
func leakOne(i int) {
	reply := make(chan int)
	go func() { reply <- i }() // nobody receives: leaked
}

//go:noinline
func worker(jobs chan job) {
	for j := range jobs {
		_ = j
	}
}

//go:noinline
func readForever(c net.Conn, ids chan int) {
	ids <- goid()
	buf := make([]byte, 16)
	c.Read(buf)
}

//go:noinline
func readWithDeadline(c net.Conn, ids chan int) {
	c.SetReadDeadline(time.Now().Add(time.Hour))
	ids <- goid()
	buf := make([]byte, 16)
	c.Read(buf)
}

func leakMode() {
	jobs := make(chan job)
	for i := 0; i < 20; i++ {
		go worker(jobs)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	listener = ln
	ids := make(chan int)
	for i, reader := range []func(net.Conn, chan int){readForever, readWithDeadline} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		s, _ := ln.Accept()
		conns = append(conns, c, s)
		go reader(s, ids)
		fmt.Printf("%s %d\n", []string{"nodeadline", "deadline"}[i], <-ids)
	}
	go func(ids chan int) {
		ids <- goid()
		ln.Accept() // waits with no deadline, as a server's accept loop does
	}(ids)
	fmt.Printf("accept %d\n", <-ids)
	for i := 0; i < 20; i++ {
		leakOne(i)
	}
	runtime.GC() // the runtime notes since when each parked goroutine waits
	fmt.Println("READY")
	for i := 20; i < 100000; i++ {
		time.Sleep(leakEvery)
		leakOne(i)
	}
}

func deadlockMode(timer bool) {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGUSR1)
	var a, b sync.Mutex
	var held, done sync.WaitGroup
	step := make(chan struct{})
	never := make(chan job)
	held.Add(2)
	done.Add(2)
	go func() {
		a.Lock()
		held.Done()
		<-step
		b.Lock()
		done.Done()
	}()
	go func() {
		b.Lock()
		held.Done()
		<-step
		a.Lock()
		done.Done()
	}()
	go func() { <-never }()
	if timer {
		go func() {
			select {
			case <-time.After(time.Hour):
			case <-never:
			}
		}()
	}
	held.Wait()
	close(step)
	fmt.Println("READY")
	done.Wait()
}

func main() {
	mode := "leak"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "leak":
		leakMode()
	case "deadlock", "timer":
		deadlockMode(mode == "timer")
	default:
		fmt.Fprintln(os.Stderr, "usage: godiag leak|deadlock|timer")
		os.Exit(2)
	}
}
