version 1.2
# retries with max_retries, and return codes
workflow retries {
  call flaky
  call odd_exit
  output { String flaky_out = flaky.out  String odd = odd_exit.out }
}
task flaky {
  command <<<
    if [ ~{task.attempt} -lt 2 ]; then echo "attempt ~{task.attempt} fails" >&2; exit 1; fi
    echo "ok after ~{task.attempt}"
  >>>
  output { String out = read_string(stdout()) }
  requirements { container: "IMAGE" max_retries: 3 }
}
task odd_exit {
  command <<< echo odd; exit 42 >>>
  output { String out = read_string(stdout()) }
  requirements { container: "IMAGE" return_codes: [0, 42] }
}
