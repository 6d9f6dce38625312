version 1.2
# must fail: every attempt exits 3, and max_retries allows only one retry
task fails_retries_exhausted {
  command <<< echo "attempt ~{task.attempt}" >&2; exit 3 >>>
  requirements { container: "IMAGE" max_retries: 1 }
}
