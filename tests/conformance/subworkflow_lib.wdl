version 1.1
workflow shout {
  input { String word }
  call upper { input: word = word }
  output { String loud = upper.out + "!" }
}
task upper {
  input { String word }
  command <<< echo "~{word}" | tr a-z A-Z >>>
  output { String out = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
