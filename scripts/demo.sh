#!/bin/sh
# The cprof demo: start a workload with a hot function and blocked threads, dump it, explain.
# Usage: sh scripts/demo.sh BUILD_DIR   (make demo calls it with the test build)
set -u

BUILD=${1:-build}
CPROF="$BUILD/cprof"
[ -x "$CPROF" ] || CPROF="$BUILD/cmd/cprof"
DEMO="$BUILD/tests/targets/demo"

if [ ! -x "$CPROF" ] || [ ! -x "$DEMO" ]; then
	echo "demo: build first (missing $CPROF or $DEMO); try 'make build'" >&2
	exit 1
fi

OUT=$(mktemp -d "${TMPDIR:-/tmp}/cprof-demo.XXXXXX")
PID=

SERVE_PID=
GOPID=

cleanup() {
	# Only the processes this script started, by their PIDs.
	if [ -n "$GOPID" ] && kill -0 "$GOPID" 2>/dev/null; then
		kill -9 "$GOPID" 2>/dev/null
		wait "$GOPID" 2>/dev/null
	fi
	if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
		kill "$SERVE_PID" 2>/dev/null
		wait "$SERVE_PID" 2>/dev/null
	fi
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -9 "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() {
	printf '\n\033[1m== %s\033[0m\n' "$*"
}

say "starting the demo workload ($DEMO)"
"$DEMO" >"$OUT/demo.out" 2>&1 &
PID=$!
i=0
until grep -q READY "$OUT/demo.out" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$PID" 2>/dev/null; then
		echo "demo: workload did not start:" >&2
		cat "$OUT/demo.out" >&2
		exit 1
	fi
	sleep 0.1
done
echo "workload pid $PID: $(cat "$OUT/demo.out" | grep READY)"

say "cprof dump -p $PID   (every thread, its stack and why it waits)"
"$CPROF" dump -p "$PID" || exit 1

say "cprof dump -p $PID --format json -o demo-dump.json"
"$CPROF" dump -p "$PID" --format json -o demo-dump.json || exit 1

say "what to look at"
# Pull the facts out of the JSON, so the pointers below are about this very run.
python3 - "$PID" demo-dump.json <<'EOF' || true
import json, sys

pid, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))
by_name = {t["name"]: t for t in d["threads"]}
names = {t["tid"]: t["name"] for t in d["threads"]}


def who(tid):
    return '%s "%s"' % (tid, names.get(tid, "?"))


t = by_name.get("w-mutex")
if t and t["wait"]["owner_tid"]:
    print('- thread w-mutex waits for the mutex %s held by thread %s'
          % (t["wait"]["address"], who(t["wait"]["owner_tid"])))
for dl in d["deadlocks"]:
    print("- DEADLOCK between threads " + ", ".join(who(x) for x in dl["tids"]))
conns = [t for t in d["threads"] if t["name"].startswith("conn-")]
if conns:
    print("- %d conn-N threads share one stack, blocked reading a socket with no timeout: "
          "made at once, a pool rather than a leak (LEAK? needs threads made over time, "
          "or growth under --stuck); 'cprof dump -p %s --group' folds them"
          % (len(conns), pid))
t = by_name.get("hot")
if t:
    chain = " <- ".join(f["function"] or "?" for f in t["frames"][:3])
    print("- thread hot is %s in %s" % (t["wait"]["kind"], chain))
for name in ("w-cond", "w-sleep", "w-pipe", "w-poll"):
    t = by_name.get(name)
    if t:
        print("- thread %s: %s%s" % (name, t["wait"]["kind"],
                                     (": " + t["wait"]["detail"]) if t["wait"]["detail"] else ""))
print("- the whole dump as JSON: %s (%d threads)" % (path, d["summary"]["threads"]))
EOF

say "cprof dump -p $PID --group   (identical stacks merged)"
"$CPROF" dump -p "$PID" --group | head -n 30

say "cprof dump -p $PID --stuck 2   (which threads made no progress in 2 s?)"
"$CPROF" dump -p "$PID" --stuck 2 | grep -E '^  watched|^thread .*stuck' | head -n 12

say "cprof attach -p $PID --seconds 5 -o demo-cpu.pb.gz   (a CPU profile, every thread)"
"$CPROF" attach -p "$PID" --seconds 5 -o demo-cpu.pb.gz || exit 1

say "cprof report demo-cpu.pb.gz --top 12   (where the CPU goes)"
"$CPROF" report demo-cpu.pb.gz --top 12 || true

say "cprof attach -p $PID --seconds 3 --format svg -o demo-flame.svg   (a flame graph)"
"$CPROF" attach -p "$PID" --seconds 3 --format svg -o demo-flame.svg || exit 1
echo "- thread hot burns CPU in hot_outer -> hot_middle -> hot_inner: the widest tower of"
echo "  demo-flame.svg (open it in a browser; click a frame to zoom)"
echo "- the same profile in pprof: go tool pprof -http=: demo-cpu.pb.gz"
echo "  (or 'go tool pprof -top demo-cpu.pb.gz', '-traces' for stacks with thread labels)"

say "cprof attach -p $PID --profile block --seconds 3 --format text   (where threads wait)"
"$CPROF" attach -p "$PID" --profile block --seconds 3 -o demo-block.pb.gz || exit 1
"$CPROF" report demo-block.pb.gz --top 8 || true
echo "- every blocked thread is there from the start of the window: w-mutex in"
echo "  pthread_mutex_lock, w-cond in pthread_cond_wait, w-pipe in read (label wait; try"
echo "  'go tool pprof -tags demo-block.pb.gz')"

say "cprof attach -p $PID --profile heap --rate 65536 --seconds 5 -o demo-heap.pb.gz   (what holds memory)"
"$CPROF" attach -p "$PID" --profile heap --rate 65536 --seconds 5 -o demo-heap.pb.gz || exit 1
"$CPROF" report demo-heap.pb.gz --top 6 || true
echo "- the ticker thread leaks 16 KiB a tick in cache_remember: inuse_space (heap's default)"
echo "  grows by about 800 KiB in 5 s, all of it there; request_scratch frees its 64-byte"
echo "  buffers at once, so it shows only in alloc_space:"
echo "  go tool pprof -sample_index=alloc_space -top demo-heap.pb.gz"
go_demo() {
	say "a Go service that leaks goroutines (tests/targets/godemo), read from the outside"
	if ! command -v go >/dev/null 2>&1; then
		echo "- skipped: the go command is not installed (make deps installs golang-go)"
		return 0
	fi
	if ! HOME=${HOME:-/tmp} GOCACHE=/tmp/cprof-gocache GOPATH=/tmp/cprof-gopath GOPROXY=off \
		GOFLAGS= GO111MODULE=auto CGO_ENABLED=0 \
		go build -o "$OUT/godemo" "$(dirname "$0")/../tests/targets/godemo/main.go"; then
		echo "- skipped: go build of tests/targets/godemo failed"
		return 0
	fi
	"$OUT/godemo" >"$OUT/godemo.out" 2>&1 &
	GOPID=$!
	i=0
	until grep -q READY "$OUT/godemo.out" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$GOPID" 2>/dev/null; then
			echo "demo: godemo did not start" >&2
			return 1
		fi
		sleep 0.1
	done
	sleep 3
	echo "cprof dump -p $GOPID --stuck 2 -o godemo-dump.txt   (two looks 2 s apart)"
	"$CPROF" dump -p "$GOPID" --stuck 2 -o godemo-dump.txt || return 1
	"$CPROF" dump -p "$GOPID" --format json -o godemo-dump.json || return 1
	grep -E '^(process|  LEAK\?|  NO DEADLINE)' godemo-dump.txt | cut -c1-300 | head -n 8
	grep -m 1 -A 6 '^goroutine .*\[chan send' godemo-dump.txt
	echo "- handle() gives up after 100 ms, and the goroutine it started stays blocked in"
	echo "  'chan send' on an unbuffered channel nobody reads: a group (one wait reason, one"
	echo "  creation site) that grew between the two looks, flagged LEAK? (the fix: a buffered"
	echo "  channel, make(chan string, 1)). The whole dump: godemo-dump.txt, godemo-dump.json"
	kill -9 "$GOPID" 2>/dev/null
	wait "$GOPID" 2>/dev/null
	GOPID=
}
go_demo || exit 1

say "cprof serve -p $PID   (Go's pprof endpoints and /metrics over HTTP, loopback only)"
SERVE_SECONDS=${CPROF_DEMO_SERVE_SECONDS:-60}
"$CPROF" serve -p "$PID" --listen 127.0.0.1:0 2>"$OUT/serve.err" &
SERVE_PID=$!
i=0
until grep -q 'listening on' "$OUT/serve.err" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$SERVE_PID" 2>/dev/null; then
		echo "demo: serve did not start:" >&2
		cat "$OUT/serve.err" >&2
		SERVE_PID=
		exit 1
	fi
	sleep 0.1
done
URL=$(sed -n 's/^cprof: listening on \(http:[^ ]*\)$/\1/p' "$OUT/serve.err" | head -n 1)
curl -s "${URL%/debug/pprof/}/metrics" 2>/dev/null | grep -E '^(process_threads|cprof_threads_waiting.*} [1-9])' | head -n 8
echo "- serving pid $PID for $SERVE_SECONDS s; paste in another terminal:"
echo
echo "    go tool pprof -http=: '${URL}profile?seconds=10'"
echo "    curl '${URL}goroutine?debug=2'"
echo
sleep "$SERVE_SECONDS"
kill "$SERVE_PID" 2>/dev/null
wait "$SERVE_PID" 2>/dev/null
SERVE_PID=

say "done: stopping the workload (pid $PID)"
