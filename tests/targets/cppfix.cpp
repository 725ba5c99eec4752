// C++ fixture: a namespaced class template method that blocks through an always_inline helper.
/*
 * Five "cashier-N" threads run shop::Counter<int>::serve, which calls the always_inline
 * shop::wait_for_order, which calls the out-of-line shop::block_forever that reads a pipe
 * nobody writes. Identical stacks (for --group), a demangled template method and an inlined
 * frame with its own line. Prints "READY pid=PID" when all threads are blocked.
 */
#include <pthread.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace shop {

static int order_pipe[2];
static pthread_barrier_t ready;

__attribute__((noipa)) void block_forever(int fd)
{
	char c;

	while (read(fd, &c, 1) > 0) /* MARK: block_forever reads */
		;
}

static inline __attribute__((always_inline)) void wait_for_order(int fd)
{
	block_forever(fd); /* MARK: wait_for_order calls */
}

template <typename T> class Counter {
public:
	__attribute__((noipa)) void serve(int fd)
	{
		value_ += 1;
		wait_for_order(fd); /* MARK: serve calls */
		value_ += 2;
	}

private:
	volatile T value_{};
};

static void *cashier(void *arg)
{
	char name[16];
	Counter<int> counter;

	snprintf(name, sizeof(name), "cashier-%d", (int)(long)arg);
	pthread_setname_np(pthread_self(), name);
	pthread_barrier_wait(&ready);
	counter.serve(order_pipe[0]);
	return nullptr;
}

} // namespace shop

int main()
{
	const int n = 5;

	if (pipe(shop::order_pipe) < 0) {
		perror("pipe");
		return 1;
	}
	pthread_barrier_init(&shop::ready, nullptr, n + 1);
	for (int i = 0; i < n; i++) {
		pthread_t t;

		if (pthread_create(&t, nullptr, shop::cashier, (void *)(long)i) != 0)
			return 1;
	}
	pthread_barrier_wait(&shop::ready);
	usleep(200 * 1000);
	printf("READY pid=%d\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
