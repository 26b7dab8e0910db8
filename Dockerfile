# Pistachio pod image: the project at a commit, its pinned venv, ComfyUI and custom nodes restored from the pod
# lock (params/pod.lock.yaml, written on a working pod by `pistachio pod lock`). No models: they come from the
# persistent volume (/workspace) or the models manifest at first boot. Secrets only from the environment.
# Build targets per CUDA/torch: docker-bake.hcl (`docker buildx bake`).
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

ARG PYTHON_VERSION=3.11
ARG COMFYUI_DIR=/opt/ComfyUI
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/workspace/pistachio-data/hf-cache \
    PISTACHIO_COMFY_DIR=${COMFYUI_DIR}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common git make curl ca-certificates \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get install -y --no-install-recommends "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv" "python${PYTHON_VERSION}-dev" \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/pistachio
COPY . /opt/pistachio

# the same steps a pod's `pistachio pod start` runs, up to the custom nodes (models and services come at boot)
RUN make setup PY="python${PYTHON_VERSION}" \
    && "python${PYTHON_VERSION}" -m venv "${COMFYUI_DIR}-venv" \
    && .venv/bin/pistachio pod start --build-only --lock params/pod.lock.yaml \
         --comfy-dir "${COMFYUI_DIR}" --python "${COMFYUI_DIR}-venv/bin/python" --state-dir /opt/pistachio-state

EXPOSE 8188 8888 6006 8000
HEALTHCHECK --interval=60s --timeout=30s --start-period=300s --retries=3 \
    CMD ["/bin/bash", "-c", "/opt/pistachio/.venv/bin/pistachio health --params params/pod.yaml || exit 1"]

# every boot: docker/boot.sh (pod start with the volume's models and the services, then watch supervisord)
CMD ["/opt/pistachio/docker/boot.sh"]
