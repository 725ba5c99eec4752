// godemo is make demo's Go program: a service whose handler asks a slow backend with a
// timeout. When the backend is late the handler gives up, and the goroutine that queried it
// stays blocked forever sending its answer on a channel nobody reads: one goroutine leaked
// per timed-out request, the classic Go leak. It imports no net/http/pprof: cprof reads it
// from the outside. Prints READY, then serves "requests" forever.
package main

import (
	"errors"
	"fmt"
	"math/rand"
	"time"
)

// queryBackend answers after a delay; a third of the time later than any caller waits.
//
//go:noinline
func queryBackend(id int) string {
	if rand.Intn(3) == 0 {
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Sprintf("answer %d", id)
}

// handle asks the backend with a timeout. The bug: the result channel is unbuffered, so when
// handle has timed out, the sender below blocks forever.
//
//go:noinline
func handle(id int) (string, error) {
	result := make(chan string) // the fix: make(chan string, 1)
	go func() {
		result <- queryBackend(id)
	}()
	select {
	case r := <-result:
		return r, nil
	case <-time.After(100 * time.Millisecond):
		return "", errors.New("timeout")
	}
}

func main() {
	fmt.Println("READY")
	for id := 0; ; id++ {
		go handle(id)
		time.Sleep(20 * time.Millisecond)
	}
}
