"""`pistachio knowledge apply | skills`: apply a 07_knowledge_audit proposal; regenerate the suite's skill files."""

from __future__ import annotations

import argparse

EXIT_OK, EXIT_FAILED = 0, 1


def cmd_apply(args: argparse.Namespace) -> int:
    """Commit the proposal on a new branch of --repo (refuses a dirty tree); prints how to undo it."""
    from .apply import apply_proposal

    applied = apply_proposal(args.proposal, args.repo, args.branch)
    print(f"applied on branch {applied.branch} (commit {applied.commit[:10]}); review it with git show")
    print(f"undo: {applied.undo}")
    return EXIT_OK


def cmd_skills(args: argparse.Namespace) -> int:
    """Write skills/ from the notebooks and the CLI, or with --check only report whether it is current."""
    from .skills import write_skills

    changed = write_skills(args.dest, check=args.check)
    for rel in changed:
        print(f"{'out of date' if args.check else 'wrote'}: {rel}")
    if args.check and changed:
        print("fix: pistachio knowledge skills")
        return EXIT_FAILED
    print(f"ok: {args.dest} matches the notebooks and the CLI" if not changed else f"{len(changed)} file(s) written")
    return EXIT_OK


def add_commands(sub) -> None:
    """Register `knowledge apply` and `knowledge skills` on the `pistachio` parser's subparsers."""
    knowledge = sub.add_parser("knowledge", help="apply a knowledge-base proposal (07); regenerate the skill files")
    verbs = knowledge.add_subparsers(dest="knowledge_command", required=True)

    apply = verbs.add_parser("apply", help="commit a 07 proposal on a new branch of the notes repository (undo: git)")
    apply.add_argument("--proposal", required=True, help="the knowledge_proposal folder 07 wrote, e.g. outputs/demo/knowledge_proposal")
    apply.add_argument("--repo", required=True, help="the audited notes folder (a clean git repository)")
    apply.add_argument("--branch", default=None, help="name of the new branch (default: knowledge-proposal-<commit>)")
    apply.set_defaults(func=cmd_apply)

    skills = verbs.add_parser("skills", help="regenerate skills/ from the notebooks' headings and prose and the CLI's verbs")
    skills.add_argument("--dest", default="skills", help="folder of the skill files (default: skills)")
    skills.add_argument("--check", action="store_true", help="write nothing; exit 1 when a skill is out of date")
    skills.set_defaults(func=cmd_skills)
