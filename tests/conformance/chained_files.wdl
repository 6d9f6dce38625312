version 1.2
# A task's output File and Directory as the next task's inputs: miniwdl hands them on as (relative)
# symlinks in the first call's out/, which every backend must resolve to the files themselves.
workflow chained_files {
  call make
  call read { input: f = make.f, d = make.d }
  output { Array[String] seen = read.seen }
}
task make {
  command <<<
    echo made > made.txt
    mkdir -p folder/sub && echo deep > folder/sub/deep.txt
  >>>
  output { File f = "made.txt"  Directory d = "folder" }
  runtime { docker: "IMAGE" }
}
task read {
  input { File f  Directory d }
  command <<<
    cat "~{f}"
    find "~{d}" -type f | sed "s|^~{d}/||"
    cat "~{d}/sub/deep.txt"
  >>>
  output { Array[String] seen = read_lines(stdout()) }
  runtime { docker: "IMAGE" }
}
