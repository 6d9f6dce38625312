version 1.2
# WDL 1.2 env declarations and [task_runtime] env from the configuration
task environment {
  input { env String secret = "s3cr3t" }
  command <<< echo "secret=$secret from_cfg=$FROM_CFG" >>>
  output { String out = read_string(stdout()) }
  requirements { container: "IMAGE" }
}
