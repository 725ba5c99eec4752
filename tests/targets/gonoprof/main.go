// gonoprof is a Go program that imports no profiling package: the linker sets
// runtime.disableMemoryProfiling, so it keeps no heap profile (tests/integration/
// test_go_profiles.py checks that cprof says so). Prints READY, then waits.
package main

import (
	"fmt"
	"time"
)

var kept [][]byte

func main() {
	for i := 0; i < 100; i++ {
		kept = append(kept, make([]byte, 65536))
	}
	fmt.Println("READY")
	for {
		time.Sleep(time.Hour)
	}
}
