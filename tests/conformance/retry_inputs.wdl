version 1.2
# a retried task still finds its inputs after [file_io] delete_work removed the failed attempt's
# work directory, and its TMPDIR under [file_io] mount_tmpdir (the local backend's "container"
# paths live in the first attempt's work/)
task retry_inputs {
  input { File f }
  command <<<
    cat "~{f}" || exit 9
    touch "$TMPDIR/scratch" || exit 8
    if [ ~{task.attempt} -lt 1 ]; then exit 1; fi
  >>>
  output { String out = read_string(stdout()) }
  requirements { container: "IMAGE" max_retries: 1 }
}
