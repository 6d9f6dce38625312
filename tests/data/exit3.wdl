version 1.1
task boom {
  command <<<
    echo "starting" >&2
    echo "something went wrong" >&2
    exit 3
  >>>
  runtime { docker: "IMAGE" }
}
