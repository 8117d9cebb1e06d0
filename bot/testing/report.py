"""What a conversation test run tells people and CI systems: a readable failure (the
conversation so far, then each failed check as expected against actual), a JSON
summary, and JUnit XML (one `testcase` per conversation case)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deskbot.bot.testing.runner import CaseResult, Observed, StepResult

__all__ = ["failure_text", "junit_xml", "summary"]


def summary(results: Sequence[CaseResult], seconds: float) -> dict[str, Any]:
    """`{"cases", "passed", "failed", "steps", "seconds", "failures": [...]}`."""
    failed = [r for r in results if not r.passed]
    return {
        "cases": len(results),
        "passed": len(results) - len(failed),
        "failed": len(failed),
        "steps": sum(len(r.steps) for r in results),
        "seconds": round(seconds, 2),
        "failures": [
            {
                "test_case": r.case.name,
                "where": f"{r.case.file}:{(r.failure.step.line if r.failure else r.case.line)}",
                "diff": [
                    {"check": what, "expected": exp, "actual": act}
                    for what, exp, act in (r.failure.diff if r.failure else ())
                ],
                "error": r.failure.error if r.failure else None,
            }
            for r in failed
        ],
    }


def failure_text(result: CaseResult) -> str:
    """The conversation up to the failed step, and what differed."""
    failed = result.failure
    lines = [f"FAILED {result.case.name} ({result.case.where})"]
    for step in result.steps:
        lines.extend(_transcript(step))
    if failed is not None:
        lines.append(f"  at {result.case.file}:{failed.step.line}:")
        if failed.error:
            lines.append(f"    error: {failed.error}")
        width = max((len(what) for what, _, _ in failed.diff), default=0)
        for what, expected, actual in failed.diff:
            lines.append(f"    {what.ljust(width)}  expected {expected}")
            lines.append(f"    {' ' * width}  actual   {actual}")
    return "\n".join(lines)


def _transcript(step: StepResult) -> list[str]:
    s = step.step
    if s.user is not None:
        lines = [f"  customer: {s.user}"]
        if step.observed is not None:
            lines.append(f"  bot:      {_reply(step.observed)}")
        return lines
    if s.feedback is not None:
        lines = [f"  customer: (thumbs {'up' if s.feedback > 0 else 'down'})"]
        if step.observed is not None:
            lines.append(f"  bot:      {_reply(step.observed)}")
        return lines
    if s.agent is not None:
        return [f"  agent:    {s.agent}"]
    return []


def _reply(seen: Observed) -> str:
    bits = [seen.kind]
    if seen.intent:
        conf = f" {seen.confidence:.2f}" if seen.confidence is not None else ""
        bits.append(f"{seen.intent}{conf}")
    if seen.citations:
        bits.append("cites " + ", ".join(seen.citations))
    if seen.action:
        bits.append(f"action {seen.action}")
    text = seen.text if len(seen.text) <= 100 else seen.text[:99] + "…"
    buttons = f" [{' | '.join(seen.buttons)}]" if seen.buttons else ""
    return f"[{'; '.join(bits)}] {text}{buttons}"


def junit_xml(results: Sequence[CaseResult], path: Path, seconds: float) -> None:
    """JUnit XML as CI systems read it: a `testsuite` of one `testcase` per case."""
    failed = sum(not r.passed for r in results)
    suite = ET.Element(
        "testsuite",
        name="deskbot conversations",
        tests=str(len(results)),
        failures=str(failed),
        errors="0",
        time=f"{seconds:.3f}",
    )
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=Path(r.case.file).name,
            name=r.case.name,
            file=r.case.file,
            line=str(r.case.line),
            time=f"{r.seconds:.3f}",
        )
        if not r.passed:
            failure = r.failure
            message = (
                failure.error
                if failure and failure.error
                else "; ".join(f"{w}: expected {e}, got {a}" for w, e, a in failure.diff)
                if failure
                else "failed"
            )
            ET.SubElement(case, "failure", message=message).text = failure_text(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
