version 1.1
# sub-workflows and imports
import "subworkflow_lib.wdl" as lib
workflow subworkflow {
  scatter (n in ["a", "b"]) { call lib.shout { input: word = n } }
  output { Array[String] shouted = shout.loud }
}
