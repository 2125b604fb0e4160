# OpenBao of docker/compose.yaml: one node of integrated storage (raft; OpenBao 2.x has no `file`
# storage) in the openbao-data volume, plain HTTP inside the compose network (put TLS in front, or
# set tls_cert_file/tls_key_file, before it leaves one host).
storage "raft" {
  path    = "/openbao/file"
  node_id = "openbao-1"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true
}

api_addr     = "http://openbao:8200"
cluster_addr = "http://openbao:8201"
ui           = false
