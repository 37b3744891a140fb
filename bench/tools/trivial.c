/* The floor of a launcher: a static program that does nothing (bench/run.sh). */
int
main(void)
{
	return 0;
}
