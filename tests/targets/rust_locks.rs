// Fixture: Rust threads blocked in std's locks and channels, and a two-mutex deadlock.
//
// Threads (by name): mutex-holder holds a Mutex and sleeps, mutex-wait blocks in Mutex::lock;
// cv-wait sleeps in Condvar::wait; rw-reader holds a RwLock for reading, rw-writer blocks in
// RwLock::write; mpsc-recv blocks in mpsc::Receiver::recv; abba-1 and abba-2 take two mutexes
// in opposite orders and deadlock. Prints "TID <name> <tid>" for each thread, then
// "READY pid <pid>" once every waiter is asleep in futex(2). Builds with rustc 1.63 and later.
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Condvar, Mutex, RwLock};
use std::thread;
use std::time::Duration;

#[cfg(target_arch = "x86_64")]
const SYS_FUTEX: i64 = 202;
#[cfg(target_arch = "aarch64")]
const SYS_FUTEX: i64 = 98;

/// The calling thread's kernel id, from the /proc/thread-self link ("PID/task/TID").
fn gettid() -> i64 {
	let link = std::fs::read_link("/proc/thread-self").expect("rust_locks: /proc/thread-self");
	let s = link.to_string_lossy().into_owned();
	s.rsplit('/').next().and_then(|t| t.parse().ok()).expect("rust_locks: tid")
}

/// The system call a thread sleeps in, -1 outside one, -2 when running or unreadable.
fn task_syscall(tid: i64) -> i64 {
	let path = format!("/proc/self/task/{}/syscall", tid);
	match std::fs::read_to_string(path) {
		Ok(s) => s.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(-2),
		Err(_) => -2,
	}
}

/// Names this thread in the fixture's output and sends its tid to main.
fn publish(name: &str, tids: &mpsc::Sender<(String, i64, bool)>, waits: bool) {
	tids.send((name.to_string(), gettid(), waits)).expect("rust_locks: publish");
}

#[inline(never)]
fn hold_forever() -> ! {
	loop {
		thread::sleep(Duration::from_secs(1000));
	}
}

#[inline(never)]
fn block_mutex(m: &Mutex<u64>) {
	let g = m.lock().unwrap(); // BLOCK:mutex
	eprintln!("rust_locks: mutex unexpectedly acquired {}", *g);
	hold_forever();
}

#[inline(never)]
fn block_condvar(pair: &(Mutex<bool>, Condvar)) {
	let mut ready = pair.0.lock().unwrap();
	while !*ready {
		ready = pair.1.wait(ready).unwrap(); // BLOCK:condvar
	}
	hold_forever();
}

#[inline(never)]
fn block_rwlock_write(rw: &RwLock<u64>) {
	let g = rw.write().unwrap(); // BLOCK:rwlock-write
	eprintln!("rust_locks: rwlock unexpectedly acquired {}", *g);
	hold_forever();
}

#[inline(never)]
fn block_recv(rx: &mpsc::Receiver<u64>) {
	let v = rx.recv(); // BLOCK:recv
	eprintln!("rust_locks: recv unexpectedly returned {:?}", v);
	hold_forever();
}

#[inline(never)]
fn lock_in_order(first: &Mutex<u64>, second: &Mutex<u64>, barrier: &Barrier) {
	let _held = first.lock().unwrap();
	barrier.wait();
	block_mutex(second); // BLOCK:abba
}

type Tids = mpsc::Sender<(String, i64, bool)>;

fn spawn<F: FnOnce() + Send + 'static>(name: &str, tids: &Tids, waits: bool, f: F) {
	let tids = tids.clone();
	let tname = name.to_string();
	thread::Builder::new()
		.name(name.to_string())
		.spawn(move || {
			publish(&tname, &tids, waits);
			drop(tids);
			f();
		})
		.expect("rust_locks: spawn");
}

/// Until the lock is held by another thread.
fn wait_held<T>(m: &Mutex<T>) {
	while m.try_lock().is_ok() {
		thread::sleep(Duration::from_millis(1));
	}
}

fn main() {
	let (tids_tx, tids_rx) = mpsc::channel();
	let mut expect = 0;

	let m = Arc::new(Mutex::new(0u64));
	let m2 = m.clone();
	spawn("mutex-holder", &tids_tx, false, move || {
		let _g = m2.lock().unwrap();
		hold_forever();
	});
	wait_held(&m);
	let m3 = m.clone();
	spawn("mutex-wait", &tids_tx, true, move || block_mutex(&m3));
	// A second waiter of the same lock: both reference it, neither holds it.
	let m4 = m.clone();
	spawn("mutex-wait2", &tids_tx, true, move || block_mutex(&m4));
	expect += 3;

	let pair = Arc::new((Mutex::new(false), Condvar::new()));
	let pair2 = pair.clone();
	spawn("cv-wait", &tids_tx, true, move || block_condvar(&pair2));
	expect += 1;

	let rw = Arc::new(RwLock::new(0u64));
	let rw2 = rw.clone();
	let (held_tx, held_rx) = mpsc::channel();
	spawn("rw-reader", &tids_tx, false, move || {
		let _g = rw2.read().unwrap();
		held_tx.send(()).unwrap();
		hold_forever();
	});
	held_rx.recv().expect("rust_locks: rw-reader");
	let rw3 = rw.clone();
	spawn("rw-writer", &tids_tx, true, move || block_rwlock_write(&rw3));
	expect += 2;

	// The sender lives as long as main: recv never returns.
	let (_tx, rx) = mpsc::channel::<u64>();
	spawn("mpsc-recv", &tids_tx, true, move || block_recv(&rx));
	expect += 1;

	let a = Arc::new(Mutex::new(1u64));
	let b = Arc::new(Mutex::new(2u64));
	let bar = Arc::new(Barrier::new(2));
	let (a1, b1, bar1) = (a.clone(), b.clone(), bar.clone());
	spawn("abba-1", &tids_tx, true, move || lock_in_order(&a1, &b1, &bar1));
	let (a2, b2, bar2) = (a.clone(), b.clone(), bar.clone());
	spawn("abba-2", &tids_tx, true, move || lock_in_order(&b2, &a2, &bar2));
	expect += 2;
	drop(tids_tx);

	let mut waiters = Vec::new();
	for _ in 0..expect {
		let (name, tid, waits) = tids_rx.recv().expect("rust_locks: tids");
		println!("TID {} {}", name, tid);
		if waits {
			waiters.push(tid);
		}
	}
	let mut tries = 0;
	while !waiters.iter().all(|&t| task_syscall(t) == SYS_FUTEX) {
		tries += 1;
		if tries > 20000 {
			eprintln!("rust_locks: waiters did not block");
			std::process::exit(1);
		}
		thread::sleep(Duration::from_millis(1));
	}
	println!("READY pid {}", std::process::id());
	use std::io::Write;
	std::io::stdout().flush().unwrap();
	loop {
		thread::sleep(Duration::from_secs(1000));
	}
}
