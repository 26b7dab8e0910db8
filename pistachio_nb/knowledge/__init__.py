"""07_knowledge_audit: measure a Markdown knowledge base's context budget, blank templates, duplication,
staleness and rule growth, and suggest a disposition per file (never applied)."""

from .audit import KnowledgeAudit, audit_knowledge

__all__ = ["KnowledgeAudit", "audit_knowledge"]
