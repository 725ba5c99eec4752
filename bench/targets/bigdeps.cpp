// Benchmark target: a C++ process with large libraries mapped (libstdc++, libcrypto, libz)
// and 16 threads blocked in std::condition_variable and std::this_thread::sleep_for, so a dump
// has to symbolize through big modules.
#include <dlfcn.h>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bench {
std::mutex mu;
std::condition_variable cv;

template <typename T> struct Sleeper {
	__attribute__((noinline)) void park(T seconds)
	{
		std::this_thread::sleep_for(std::chrono::seconds(seconds));
	}
};

__attribute__((noinline)) void wait_forever()
{
	std::unique_lock<std::mutex> lock(mu);
	cv.wait(lock, [] { return false; });
}
} // namespace bench

int main()
{
	const char *libs[] = { "libcrypto.so.3", "libz.so.1", "libssl.so.3" };
	for (const char *l : libs)
		dlopen(l, RTLD_NOW | RTLD_GLOBAL);
	std::vector<std::thread> threads;
	for (int i = 0; i < 16; i++) {
		if (i % 2)
			threads.emplace_back([] { bench::wait_forever(); });
		else
			threads.emplace_back([] {
				bench::Sleeper<int> s;
				for (;;)
					s.park(3600);
			});
	}
	std::this_thread::sleep_for(std::chrono::milliseconds(200));
	std::cout << "READY" << std::endl;
	std::string line;
	while (std::getline(std::cin, line))
		if (line == "stats")
			std::cout << "eintr=0 max_gap_us=0" << std::endl;
	for (auto &t : threads)
		t.join();
}
