"""07_knowledge_audit: measure a Markdown knowledge base's context budget, blank templates, duplication,
staleness and rule growth, and suggest a disposition per file (never applied)."""

from ..lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "KnowledgeAuditParams": ".params",
    "KnowledgeAudit": ".audit",
    "audit_knowledge": ".audit",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
