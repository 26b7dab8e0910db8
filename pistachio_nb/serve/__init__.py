"""The generation API for the chatbot: FastAPI in front of the ComfyUI servers, with a durable SQLite job store."""

from ..lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "ServeParams": ".params",
    "JobStore": ".store",
    "create_app": ".api",
    "load_service": ".service",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
