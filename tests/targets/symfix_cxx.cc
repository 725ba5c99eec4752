// Fixture for the symbolizer tests: a method of a class template in a namespace, whose
// demangled name is ns::Worker<int>::run(). Prints "cxx RETURN-ADDRESS LINE DECL-LINE", then
// READY; exits when stdin closes.
#include <cstdio>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

volatile int sink;

NOINLINE void where(const char *tag, int line, int extra)
{
	std::printf("%s %p %d %d\n", tag, __builtin_return_address(0), line, extra);
	sink++;
}

namespace ns {
template <typename T> struct Worker {
	T value;
	static constexpr int run_line = __LINE__ + 1;
	NOINLINE void run()
	{
		where("cxx", __LINE__, run_line);
		value += sink;
	}
};
} // namespace ns

int main()
{
	ns::Worker<int> w{ 1 };
	char buf[64];

	w.run();
	std::printf("READY\n");
	std::fflush(stdout);
	while (read(0, buf, sizeof(buf)) > 0)
		;
	return w.value == 12345;
}
