version 1.1
# What a task's command sees of its environment: [task_runtime] env (set and passed through), not
# whatever else happens to be set where miniwdl runs; TMPDIR only under [file_io] mount_tmpdir.
task environment_minimal {
  command <<<
    echo "leak=${MINIWDL_JUPYTER_TEST_LEAK-unset} passed=${PASSED_THROUGH-unset} set=${SET_IN_CFG-unset}"
    if [ -z "${TMPDIR-}" ]; then
      echo "tmpdir=unset"
    else
      case "$TMPDIR" in
        "$PWD"/*) [ -d "$TMPDIR" ] && touch "$TMPDIR/probe" && echo "tmpdir=a writable dir under the work dir" ;;
        *) echo "tmpdir=$TMPDIR" ;;
      esac
    fi
  >>>
  output { Array[String] out = read_lines(stdout()) }
  runtime { docker: "IMAGE" }
}
