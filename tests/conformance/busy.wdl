version 1.1
# two tasks that each reserve `cpu` cpus; used to check cpu scheduling (not a case of its own)
workflow busy {
  input { Int cpu }
  scatter (i in [1, 2]) { call span { input: cpu = cpu } }
  output { Array[Array[String]] spans = span.times }
}
task span {
  input { Int cpu }
  command <<< date +%s.%N; sleep 1; date +%s.%N >>>
  output { Array[String] times = read_lines(stdout()) }
  runtime { docker: "IMAGE" cpu: cpu }
}
