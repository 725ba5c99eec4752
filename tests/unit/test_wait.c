/* Placeholder: unit tests for wait land with the module. */
#include <stdio.h>
int main(void)
{
	printf("skip: wait tests not written yet\n");
	return 77;
}
