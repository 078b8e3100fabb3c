/* sandbox_oom_raise against real processes: a child of ours gets the raised value (read
 * back from /proc) while this process keeps its own, and a pid that is gone gives an
 * error naming the step and the file, which a backend turns into SandboxError. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/oom.h"

static int read_adj(pid_t pid)
{
    char path[64], buf[16] = "";
    snprintf(path, sizeof path, "/proc/%d/oom_score_adj", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    return atoi(buf);
}

static void a_child_is_raised_and_we_are_not(void **state)
{
    int own = read_adj(getpid());
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        pause();
        _exit(0);
    }
    char err[256] = "";
    assert_int_equal(sandbox_oom_raise(child, err, sizeof err), 0);
    assert_int_equal(read_adj(child), SANDBOX_OOM_SCORE_ADJ);
    assert_int_equal(SANDBOX_OOM_SCORE_ADJ, 1000);
    assert_int_equal(read_adj(getpid()), own);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
}

static void a_gone_process_is_an_error_naming_the_step(void **state)
{
    char err[256] = "";
    assert_int_equal(sandbox_oom_raise(2147483000, err, sizeof err), -1);
    assert_string_equal(err, "oom_score_adj: open /proc/2147483000/oom_score_adj: No such file or directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_child_is_raised_and_we_are_not),
        cmocka_unit_test(a_gone_process_is_an_error_naming_the_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
