/* Placeholder fixture; the wait-kind fixture replaces it. */
#include <unistd.h>
int main(void)
{
	pause();
	return 0;
}
