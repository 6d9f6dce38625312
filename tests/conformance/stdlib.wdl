version 1.1
# stdout()/stderr(), read_*/write_* functions, glob
task stdlib {
  input { Array[String] words = ["x", "y", "z"] }
  command <<<
    cat ~{write_lines(words)} | tr a-z A-Z
    echo "to stderr" >&2
    echo '{"k": [1, 2]}' > obj.json
    printf 'a\tb\nc\td\n' > grid.tsv
    echo 3.5 > f.txt
    echo true > b.txt
    touch g1.out g2.out g3.other
  >>>
  output {
    Array[String] upper = read_lines(stdout())
    String err = read_string(stderr())
    Map[String, Array[Int]] obj = read_json("obj.json")
    Array[Array[String]] grid = read_tsv("grid.tsv")
    Float f = read_float("f.txt")
    Boolean b = read_boolean("b.txt")
    Int globbed = length(glob("*.out"))
    String written = read_string(write_json({"n": 1}))
  }
  runtime { docker: "IMAGE" }
}
