version 1.1
# must fail: a declared output file is never written
task fails_output {
  command <<< echo nothing >>>
  output { File missing = "never_written.txt" }
  runtime { docker: "IMAGE" }
}
