// Heap profile fixture in C++: operator new and delete (libstdc++, which calls malloc through
// its own GOT). On SIGUSR1 (or at once with --now) Cache::grow keeps 100 vectors of 1 MiB (a
// Cache never deleted) and churn_strings makes and drops 2 million std::strings of 100 chars
// (266 MB with their buffers); then prints "DONE N".
// Prints "READY pid=PID" when waiting in sigwait.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

namespace demo {

class Cache {
public:
	__attribute__((noinline)) void grow()
	{
		for (int i = 0; i < 100; i++)
			blocks_.push_back(std::make_unique<std::vector<char>>(1 << 20, 'x'));
	}

private:
	std::vector<std::unique_ptr<std::vector<char>>> blocks_;
};

__attribute__((noinline)) unsigned long churn_strings(unsigned long bytes)
{
	unsigned long sum = 0;

	for (unsigned long done = 0; done < bytes; done += 100) {
		auto *s = new std::string(100, static_cast<char>('a' + done % 26));
		sum += static_cast<unsigned char>((*s)[done % 100]);
		delete s;
	}
	return sum;
}

} // namespace demo

int main(int argc, char **argv)
{
	bool now = argc > 1 && !std::strcmp(argv[1], "--now");
	auto *cache = new demo::Cache; // never deleted: still in use at exit
	sigset_t set;
	int sig, rounds = 0;
	unsigned long sink = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, nullptr);
	setvbuf(stdout, nullptr, _IOLBF, 0);
	for (;;) {
		if (!now) {
			std::printf("READY pid=%d\n", static_cast<int>(getpid()));
			if (sigwait(&set, &sig) != 0)
				return 1;
		}
		cache->grow();
		sink += demo::churn_strings(200000000ul);
		std::printf("DONE %d %lu\n", ++rounds, sink % 7);
		if (now)
			return 0;
	}
}
