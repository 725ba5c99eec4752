// gocgo is the cgo fixture of tests/integration/test_go_diag.py: a Go program with threads
// of its own in C. A pthread made in C (c_worker) blocks reading a pipe; a goroutine calls
// into C (c_sleep_forever, through main._Cfunc_...) and stays there in nanosleep; other
// goroutines wait on a channel (main.waiter). Prints READY when all are in place.
package main

/*
#cgo CFLAGS: -O1 -g -fno-omit-frame-pointer
#include <pthread.h>
#include <time.h>
#include <unistd.h>

static int fds[2];

__attribute__((noinline)) static void *c_worker(void *arg)
{
	char c;

	(void)arg;
	read(fds[0], &c, 1);
	return NULL;
}

static int c_start_worker(void)
{
	pthread_t t;

	if (pipe(fds) != 0)
		return -1;
	return pthread_create(&t, NULL, c_worker, NULL);
}

__attribute__((noinline)) static void c_sleep_forever(void)
{
	struct timespec ts = { 3600, 0 };

	for (;;)
		nanosleep(&ts, NULL);
}
*/
import "C"

import (
	"fmt"
	"os"
	"time"
)

//go:noinline
func waiter(ch chan int) {
	<-ch
}

func main() {
	if C.c_start_worker() != 0 {
		fmt.Fprintln(os.Stderr, "c_start_worker failed")
		os.Exit(1)
	}
	ch := make(chan int)
	for i := 0; i < 5; i++ {
		go waiter(ch)
	}
	go func() { C.c_sleep_forever() }()
	time.Sleep(200 * time.Millisecond)
	fmt.Println("READY")
	select {}
}
