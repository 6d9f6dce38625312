version 1.1
workflow sleepy {
  input { Int n = 4  Int seconds = 600 }
  scatter (i in range(n)) {
    call nap { input: seconds = seconds }
  }
}
task nap {
  input { Int seconds }
  command <<< sleep ~{seconds} >>>
  runtime { docker: "IMAGE" cpu: 1 }
}
