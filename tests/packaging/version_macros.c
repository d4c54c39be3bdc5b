/*
 * version_macros.c -- weir.h's WEIR_VERSION_* macros name the release
 * CMakeLists.txt's project() builds (passed in as WEIR_EXPECT_*), and the
 * library reports the same version at run time.
 */
#include <stdio.h>
#include <string.h>

#include "weir.h"

_Static_assert(WEIR_VERSION_MAJOR == WEIR_EXPECT_MAJOR, "WEIR_VERSION_MAJOR != project() major");
_Static_assert(WEIR_VERSION_MINOR == WEIR_EXPECT_MINOR, "WEIR_VERSION_MINOR != project() minor");
_Static_assert(WEIR_VERSION_PATCH == WEIR_EXPECT_PATCH, "WEIR_VERSION_PATCH != project() patch");
_Static_assert(WEIR_VERSION_NUMBER ==
                   WEIR_EXPECT_MAJOR * 10000 + WEIR_EXPECT_MINOR * 100 + WEIR_EXPECT_PATCH,
               "WEIR_VERSION_NUMBER does not follow MAJOR/MINOR/PATCH");

int main(void) {
    int failed = 0;
    if (strcmp(WEIR_VERSION_STRING, WEIR_EXPECT_STRING) != 0) {
        fprintf(stderr, "WEIR_VERSION_STRING is \"%s\", project() says \"%s\"\n", WEIR_VERSION_STRING,
                WEIR_EXPECT_STRING);
        failed = 1;
    }
    char parts[32];
    snprintf(parts, sizeof parts, "%d.%d.%d", WEIR_VERSION_MAJOR, WEIR_VERSION_MINOR,
             WEIR_VERSION_PATCH);
    if (strcmp(parts, WEIR_VERSION_STRING) != 0) {
        fprintf(stderr, "WEIR_VERSION_STRING \"%s\" disagrees with MAJOR.MINOR.PATCH %s\n",
                WEIR_VERSION_STRING, parts);
        failed = 1;
    }
    if (strcmp(weir_version(), WEIR_VERSION_STRING) != 0) {
        fprintf(stderr, "weir_version() returns \"%s\", weir.h says \"%s\"\n", weir_version(),
                WEIR_VERSION_STRING);
        failed = 1;
    }
    if (!failed) printf("weir.h, project() and weir_version() all say %s\n", WEIR_VERSION_STRING);
    return failed;
}
