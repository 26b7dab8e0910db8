#!/usr/bin/env bash
# The image's CMD: every boot makes the pod its lock (models linked from the volume and checked, services started
# under supervisord, ComfyUI healthy), then keeps the container alive while supervisord runs the services.
set -euo pipefail
cd /opt/pistachio
state=/workspace/pistachio-data/pod-state
.venv/bin/pistachio pod start --lock params/pod.lock.yaml --comfy-dir "${PISTACHIO_COMFY_DIR}" \
    --python "${PISTACHIO_COMFY_DIR}-venv/bin/python" --models-volume /workspace/models --state-dir "$state" \
    --params params/pod.yaml
while kill -0 "$(cat "$state/supervisord.pid")" 2>/dev/null; do sleep 30; done
echo "supervisord ended; see $state/supervisord.log" >&2
exit 1
