version 1.1
workflow hello {
  input {
    Array[String] names
    String greeting = "hello"
  }
  scatter (n in names) {
    call greet { input: name = n, greeting = greeting }
  }
  output {
    Array[File] files = greet.out
    Int count = length(names)
  }
}
task greet {
  input {
    String name
    String greeting
  }
  command <<<
    echo "~{greeting} ~{name}" > "~{name}.txt"
    date +%s%N > stamp
  >>>
  output {
    File out = "~{name}.txt"
    String stamp = read_string("stamp")
  }
  runtime { docker: "IMAGE" }
}
