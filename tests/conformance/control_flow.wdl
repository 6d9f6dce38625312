version 1.1
# nested scatter, conditionals, optional and default inputs; WDL 1.1's returnCodes (exit 3 succeeds)
workflow control_flow {
  input {
    Array[Array[Int]] matrix = [[1, 2], [3]]
    Int? bonus
    String label = "m"
    Boolean double = true
  }
  scatter (row in matrix) {
    scatter (x in row) {
      if (double) { call times { input: x = x, by = 2 } }
      if (!double) { call times as once { input: x = x, by = 1 } }
      Int v = select_first([times.out, once.out])
    }
  }
  output {
    Array[Array[Int]] values = v
    Int total = select_first([bonus, 0]) + length(flatten(v))
    String name = label
  }
}
task times {
  input { Int x  Int by }
  command <<< echo $(( ~{x} * ~{by} )); exit 3 >>>
  output { Int out = read_int(stdout()) }
  runtime { docker: "IMAGE"  returnCodes: [0, 3] }
}
