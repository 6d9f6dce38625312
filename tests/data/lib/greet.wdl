version 1.1
task greet {
  input { String who }
  command <<< echo "hi ~{who}" >>>
  output { String message = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
