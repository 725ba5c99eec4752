// cpp_burn: burns CPU for S seconds (argument, default 1) in a C++ template member function,
// so that profiles must show its demangled name, cprof_test::Burner<unsigned long>::spin.
#include <cstdint>
#include <cstdlib>
#include <ctime>

namespace cprof_test {

template <typename T> struct Burner {
	volatile T state = 1;
	__attribute__((noinline)) T spin(unsigned int n);
};

template <typename T> T Burner<T>::spin(unsigned int n)
{
	T x = state;
	for (unsigned int i = 0; i < n; i++)
		x = x * 6364136223846793005ull + 1;
	state = x;
	return x;
}

} // namespace cprof_test

static double now()
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1.0;
	cprof_test::Burner<unsigned long> b;
	unsigned long sum = 0;

	for (double end = now() + seconds; now() < end;)
		sum += b.spin(100000);
	return sum == 42 ? 3 : 0;
}
