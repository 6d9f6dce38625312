version 1.2
# File / Directory / Array / Map / Pair / Struct inputs and outputs
struct Sample { String name  Int reads }
workflow types {
  input {
    File greeting
    Directory folder
    Map[String, Int] counts = {"a": 1, "b": 2}
    Pair[String, Int] pair = ("p", 7)
    Sample sample = Sample { name: "s1", reads: 100 }
  }
  call shape { input: greeting = greeting, folder = folder, counts = counts, pair = pair, sample = sample }
  output {
    File copied = shape.copied
    Directory made = shape.made
    Array[File] parts = shape.parts
    Map[String, Int] doubled = shape.doubled
    Pair[String, Int] swapped = shape.swapped
    Sample grown = shape.grown
  }
}
task shape {
  input {
    File greeting
    Directory folder
    Map[String, Int] counts
    Pair[String, Int] pair
    Sample sample
  }
  command <<<
    cat "~{greeting}" > copied.txt
    mkdir -p made/sub
    ls "~{folder}" | sort > made/listing.txt
    echo deep > made/sub/deep.txt
    echo one > part1.txt
    echo two > part2.txt
    echo "a	~{counts["a"] * 2}" > doubled.tsv
    echo "b	~{counts["b"] * 2}" >> doubled.tsv
  >>>
  output {
    File copied = "copied.txt"
    Directory made = "made"
    Array[File] parts = ["part1.txt", "part2.txt"]
    Map[String, Int] doubled = read_map("doubled.tsv")
    Pair[String, Int] swapped = (pair.left + "!", pair.right + 1)
    Sample grown = Sample { name: sample.name, reads: sample.reads * 2 }
  }
  requirements { container: "IMAGE" }
}
