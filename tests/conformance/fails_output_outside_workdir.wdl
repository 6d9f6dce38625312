version 1.1
# must fail: an output may not name a file outside the task's working directory (the local
# backend runs on the host, where /etc/hostname exists)
task fails_output_outside_workdir {
  command <<< echo nothing >>>
  output { File leak = "/etc/hostname" }
  runtime { docker: "IMAGE" }
}
