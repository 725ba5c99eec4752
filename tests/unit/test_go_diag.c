/*
 * Unit tests of the Go diagnosis on made-up goroutines (leaks, deadlocks, channel waiters),
 * and of its layout table against the DWARF of a Go build (tests/targets/godiag).
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "go_diag.h"
#include "maps.h"

#define SEC 1000000000ll
#define NOW (100000 * SEC)
#define SITE_A 0x401000
#define SITE_B 0x402000
#define SITE_SIG 0x403000

static struct cp_goroutine gs[256], before[256];

static struct cp_goroutine parked(int64_t id, const char *reason, uint64_t gopc, int64_t waited)
{
	return (struct cp_goroutine){ .id = id, .status = CP_GO_WAITING, .wait_reason = reason,
				      .gopc = gopc, .wait_since_ns = waited ? NOW - waited : 0 };
}

static const char *names(void *arg, uint64_t pc)
{
	(void)arg;
	return pc == SITE_SIG ? "os/signal.Notify.func1" : "main.main";
}

static void test_leaks(void)
{
	struct cp_go_leak *l;
	size_t n = 0, nl;

	/* 30 goroutines made by one go statement, in chan receive; 12 were there a look ago. */
	for (int i = 0; i < 30; i++)
		gs[n++] = parked(100 + i, "chan receive", SITE_A, 0);
	for (int i = 0; i < 12; i++)
		before[i] = parked(100 + i, "chan receive", SITE_A, 0);
	/* A fixed pool of 20 in select, the same at both looks: not a leak. */
	for (int i = 0; i < 20; i++)
		gs[n++] = before[12 + i] = parked(300 + i, "select", SITE_B, 0);
	/* System goroutines and running ones never count. */
	for (int i = 0; i < 15; i++) {
		gs[n] = parked(400 + i, "chan receive", SITE_B, 0);
		gs[n++].system = true;
	}
	CHECK(cp_go_find_leaks(gs, n, before, 32, NOW, &l, &nl) == 0);
	CHECK(nl == 1, "%zu leaks", nl);
	if (nl == 1) {
		CHECK(l[0].count == 30 && l[0].before == 12 && l[0].grown == 18);
		CHECK(l[0].by_growth && !l[0].by_age);
		CHECK(l[0].gopc == SITE_A && !strcmp(l[0].wait_reason, "chan receive"));
		CHECK(l[0].ids[0] == 100 && l[0].ids[29] == 129);
	}
	cp_go_leaks_free(l, nl);

	/* Churn without growth (as many as before, some of them new): not a leak. */
	for (int i = 0; i < 30; i++)
		before[i] = parked(50 + i, "chan receive", SITE_A, 0);
	CHECK(cp_go_find_leaks(gs, 30, before, 30, NOW, &l, &nl) == 0 && nl == 0);
	cp_go_leaks_free(l, nl);

	/* By age: 10 goroutines parked for an hour, 40 others for a few seconds. */
	n = 0;
	for (int i = 0; i < 10; i++)
		gs[n++] = parked(1 + i, "sync.Mutex.Lock", SITE_A, 3600 * SEC);
	for (int i = 0; i < 40; i++)
		gs[n++] = parked(100 + i, "IO wait", SITE_B, 3 * SEC);
	CHECK(cp_go_find_leaks(gs, n, NULL, 0, NOW, &l, &nl) == 0);
	CHECK(nl == 1 && l[0].by_age && !l[0].by_growth && l[0].count == 10,
	      "%zu leaks", nl);
	if (nl == 1)
		CHECK(l[0].wait_ns == 3600 * SEC && l[0].others_wait_ns == 3 * SEC);
	cp_go_leaks_free(l, nl);

	/* Old, but so is everyone else (an idle server): not far above the rest. */
	for (size_t i = 10; i < n; i++)
		gs[i].wait_since_ns = NOW - 1800 * SEC;
	CHECK(cp_go_find_leaks(gs, n, NULL, 0, NOW, &l, &nl) == 0 && nl == 0);
	cp_go_leaks_free(l, nl);
	/* Far above the rest but under a minute: too young to call. */
	for (size_t i = 0; i < n; i++)
		gs[i].wait_since_ns = NOW - (i < 10 ? 50 * SEC : 1 * SEC);
	CHECK(cp_go_find_leaks(gs, n, NULL, 0, NOW, &l, &nl) == 0 && nl == 0);
	cp_go_leaks_free(l, nl);
	/* Nine is too few, however old. */
	for (size_t i = 0; i < n; i++)
		gs[i].wait_since_ns = NOW - (i < 10 ? 3600 * SEC : 1 * SEC);
	CHECK(cp_go_find_leaks(gs + 1, n - 1, NULL, 0, NOW, &l, &nl) == 0 && nl == 0);
	cp_go_leaks_free(l, nl);
}

static void test_deadlock(void)
{
	int64_t *ids = NULL;
	size_t n = 0, nids = 0;

	gs[n++] = parked(1, "chan receive", 0, 0);
	gs[n++] = parked(7, "sync.Mutex.Lock", SITE_A, 0);
	gs[n++] = parked(6, "sync.Mutex.Lock", SITE_A, 0);
	gs[n] = parked(2, "force gc (idle)", 0, 0);
	gs[n++].system = true;
	/* os/signal's watcher, in a system call only a signal ends. */
	gs[n] = parked(9, "", SITE_SIG, 0);
	gs[n++].status = CP_GO_SYSCALL;
	CHECK(cp_go_find_deadlock(gs, n, 0, names, NULL, &ids, &nids) == 1);
	CHECK(nids == 4 && ids[0] == 1 && ids[1] == 6 && ids[2] == 7 && ids[3] == 9);
	free(ids);
	/* A pending timer may wake anyone, an unknown count too. */
	CHECK(cp_go_find_deadlock(gs, n, 1, names, NULL, &ids, &nids) == 0);
	CHECK(cp_go_find_deadlock(gs, n, -ENOTSUP, names, NULL, &ids, &nids) == 0);
	/* Without names the syscall goroutine is just in a system call: it may come back. */
	CHECK(cp_go_find_deadlock(gs, n, 0, NULL, NULL, &ids, &nids) == 0);
	/* A goroutine on the network, asleep or runnable: not dead. */
	gs[n++] = parked(11, "IO wait", SITE_B, 0);
	CHECK(cp_go_find_deadlock(gs, n, 0, names, NULL, &ids, &nids) == 0);
	gs[n - 1] = parked(11, "sleep", SITE_B, 0);
	CHECK(cp_go_find_deadlock(gs, n, 0, names, NULL, &ids, &nids) == 0);
	gs[n - 1].status = CP_GO_RUNNABLE;
	CHECK(cp_go_find_deadlock(gs, n, 0, names, NULL, &ids, &nids) == 0);
	/* Dead goroutines (kept for reuse) do not count. */
	gs[n - 1].status = CP_GO_DEAD;
	CHECK(cp_go_find_deadlock(gs, n, 0, names, NULL, &ids, &nids) == 1 && nids == 4);
	free(ids);
	CHECK(cp_go_wait_is_sync("select") && !cp_go_wait_is_sync("sleep") &&
	      !cp_go_wait_is_sync(NULL));
}

static void test_chans(void)
{
	struct cp_go_chan *c;
	size_t n = 0, nc;

	gs[n] = parked(5, "chan receive", 0, 0);
	gs[n++].waiting_chan = 0xc000100000;
	gs[n] = parked(3, "chan receive", 0, 0);
	gs[n++].waiting_chan = 0xc000100000;
	gs[n] = parked(4, "chan send", 0, 0);
	gs[n++].waiting_chan = 0xc000200000;
	gs[n] = parked(8, "select", 0, 0);
	gs[n++].waiting_chan = 0xc000100000;
	gs[n++] = parked(9, "sleep", 0, 0);
	CHECK(cp_go_find_chans(gs, n, &c, &nc) == 0);
	CHECK(nc == 2);
	if (nc == 2) {
		CHECK(c[0].addr == 0xc000100000 && c[0].nreceivers == 2 && c[0].receivers[0] == 3);
		CHECK(c[0].nselecting == 1 && c[0].selecting[0] == 8 && c[0].nsenders == 0);
		CHECK(c[1].nsenders == 1 && c[1].senders[0] == 4);
		CHECK(cp_go_chan_index(c, nc, 0xc000200000) == 1);
		CHECK(cp_go_chan_index(c, nc, 0xc000300000) == -1);
		CHECK(!c[0].have_state && !c[0].elem_type);
	}
	cp_go_chans_free(c, nc);
}

static const char go_env[] = "HOME=/tmp GOCACHE=/tmp/cprof-gocache GOPATH=/tmp/cprof-gopath "
			     "GOPROXY=off GOFLAGS= GO111MODULE=auto CGO_ENABLED=0 "
			     "GOTOOLCHAIN=local";

/* The Go 1.19 table equals what the DWARF of a Go 1.19 build says, part by part. */
static void test_layout(void)
{
	char dir[] = "/tmp/cprof-test-go-diag-XXXXXX", exe[256], cmd[1024], why[128];
	struct cp_go_diag_layout table, dwarf;
	struct cp_go_runtime *rt = NULL;
	struct cp_maps maps;
	struct cp_mem mem;
	pid_t pid;

	if (check_sh("command -v go >/dev/null") != 0) {
		CHECK(0, "go is not installed (make test installs golang-go)");
		return;
	}
	CHECK(mkdtemp(dir) != NULL);
	snprintf(exe, sizeof(exe), "%s/godiag", dir);
	snprintf(cmd, sizeof(cmd), "cd %s && %s go build -o %s %s/tests/targets/godiag/main.go",
		 dir, go_env, exe, CP_SRC_ROOT);
	CHECK(check_sh(cmd) == 0, "%s", cmd);
	pid = check_start(exe, "deadlock");
	CHECK(pid > 0, "godiag did not start");
	if (pid > 0 && cp_maps_read(pid, &maps) == 0) {
		cp_mem_open(&mem, pid);
		CHECK(cp_go_open(pid, &maps, &mem, &rt, why, sizeof(why)) == 0, "%s", why);
		if (rt && !strncmp(cp_go_version(rt), "go1.19", 6)) {
			CHECK(cp_go_diag_layout(rt, &table) == 0);
			CHECK(cp_go_diag_layout_dwarf(rt, &dwarf) == 0);
			CHECK(dwarf.have_chan && dwarf.have_type && dwarf.have_pd &&
			      dwarf.have_timers, "a part missing from DWARF");
			CHECK(!memcmp(&table, &dwarf, sizeof(table)), "the Go 1.19 table differs "
			      "from DWARF: pd_size %u/%u p_timers_len %u/%u", table.pd_size,
			      dwarf.pd_size, table.p_timers_len, dwarf.p_timers_len);
			/* Two goroutines hold the mutexes, none sleeps: no timer pending. */
			CHECK(cp_go_count_timers(rt, &table, &mem) == 0);
		}
		cp_go_close(rt);
		cp_mem_close(&mem);
		cp_maps_release(&maps);
	}
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	check_sh(cmd);
}

int main(void)
{
	test_layout();
	test_leaks();
	memset(gs, 0, sizeof(gs));
	test_deadlock();
	memset(gs, 0, sizeof(gs));
	test_chans();
	CHECK(cp_go_nanotime() > 0);
	return check_done("go_diag");
}
