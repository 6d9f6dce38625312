version 1.1
# must fail: the task's own "command not found" (127) is the task's failure, not the backend's
task fails_command_not_found {
  command <<< no_such_program_for_conformance >>>
  runtime { docker: "IMAGE" }
}
