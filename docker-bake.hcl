// `docker buildx bake` targets: one image per CUDA base the pods offer; torch comes from requirements-pinned.txt.
group "default" {
  targets = ["cuda128"]
}

target "common" {
  dockerfile = "Dockerfile"
  context    = "."
  args       = { PYTHON_VERSION = "3.11" }
}

target "cuda128" {
  inherits = ["common"]
  args     = { CUDA_IMAGE = "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04" }
  tags     = ["pistachio-pod:cuda12.8"]
}

target "cuda126" {
  inherits = ["common"]
  args     = { CUDA_IMAGE = "nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04" }
  tags     = ["pistachio-pod:cuda12.6"]
}
