version 1.2
# must fail: exit status 42 is not among the task's return codes
task fails_return_code {
  command <<< exit 42 >>>
  requirements { container: "IMAGE" return_codes: [0, 1] }
}
