version 1.1
# Lines that IPython's prompt strippers match (`>>>`, `...`, `In [1]:`) inside a task's command:
# the magic must receive and run them unchanged.
task prompts {
  command {
    cat <<'TEXT'
>>> x
... 
In [1]: y
   ...: z
TEXT
  }
  output {
    String text = read_string(stdout())
  }
}
workflow prompts_then_heredoc {
  call prompts
  call heredoc { input: text = prompts.text }
  output {
    String text = prompts.text
    String lines = heredoc.lines
  }
}
task heredoc {
  input {
    String text
  }
  command <<<
    printf '%s\n' "~{text}" | wc -l
  >>>
  output {
    String lines = read_string(stdout())
  }
}
