/* Placeholder: unit tests for unwind land with the module. */
#include <stdio.h>
int main(void)
{
	printf("skip: unwind tests not written yet\n");
	return 77;
}
