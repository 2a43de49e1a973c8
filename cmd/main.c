/* main.c: tailjet's entry point. */
#include "tj_cmd.h"

int main(int argc, char **argv)
{
    return tj_main(argc, argv);
}
