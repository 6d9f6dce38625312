version 1.1
# must fail: the command exits 1
task fails_exit {
  command <<< echo "bad input" >&2; exit 1 >>>
  runtime { docker: "IMAGE" }
}
