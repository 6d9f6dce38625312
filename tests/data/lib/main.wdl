version 1.1
import "greet.wdl" as g
workflow main {
  input { String who }
  call g.greet { input: who = who }
  output { String message = greet.message }
}
