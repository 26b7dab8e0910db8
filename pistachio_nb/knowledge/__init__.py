"""07_knowledge_audit: measure a Markdown knowledge base's context budget, blank templates, duplication,
staleness and rule growth, and suggest a disposition per file (never applied)."""

_EXPORTS = {  # public name -> the module that defines it
    "KnowledgeAuditParams": ".params",
    "KnowledgeAudit": ".audit",
    "audit_knowledge": ".audit",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Import a verb's module on first use, so importing the params (the profile loader does) stays light."""
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
