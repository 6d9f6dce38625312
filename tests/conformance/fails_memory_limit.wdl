version 1.1
# Allocates 300 MiB under a 64 MiB memory limit ([task_runtime] memory_limit_multiplier = 1):
# killed by the container's cgroup, or refused by the local backend's RLIMIT_DATA.
task fails_memory_limit {
  command <<<
    perl -e 1 || exit 0  # no perl: succeed, so the case fails rather than pass for the wrong reason
    perl -e '$x = "a" x (300 * 1024 * 1024); print length($x), "\n"'
  >>>
  runtime { docker: "IMAGE"  memory: "64 MiB" }
}
