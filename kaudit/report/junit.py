"""JUnit XML: one test case per compared variable, failures carrying the figures. Text from the
files passes through ``_fmt.text``: XML 1.0 cannot carry most control characters at all, and
``ElementTree`` escapes the rest of XML's syntax."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from . import _fmt as F


def diff_junit(result) -> str:
    t = result.records
    suite = ET.Element(
        "testsuite",
        {
            "name": "kaudit diff",
            "tests": str(len(t)),
            "failures": str(sum(not r.passed for r in t)),
            "errors": "0",
            "skipped": "0",
        },
    )
    props = ET.SubElement(suite, "properties")
    for k, v in (
        ("a", result.file_a),
        ("b", result.file_b),
        ("verdict", result.verdict),
        ("policy", (result.policy or {}).get("description") or "none"),
    ):
        ET.SubElement(props, "property", {"name": k, "value": F.text(v)})
    classname = f"kaudit.{_safe(result.file_a)}__vs__{_safe(result.file_b)}"
    for r in t:
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": F.text(r.path), "time": "0"})
        if not r.passed:
            fail = ET.SubElement(
                case, "failure", {"message": F.text(r.failures)[:1000], "type": str(r.rule or r.status)}
            )
            fail.text = (
                f"rule={r.rule} status={r.status} rel_change={F.num(r.rel_change)} max_abs={F.num(r.max_abs)} mean_abs={F.num(r.mean_abs)} "
                f"rel_l2={F.num(r.rel_l2)} n_exceed={F.num(r.n_exceed)} shape={F.arrow(r.shape_a, r.shape_b, F.shape)} "
                f"dtype={F.text(F.arrow(r.dtype_a, r.dtype_b))} "
                f"trainable={F.arrow(r.trainable_a, r.trainable_b, F.tri)}\n{F.text(r.failures)}"
            )
        else:
            ET.SubElement(case, "system-out").text = f"status={r.status} max_abs={F.num(r.max_abs)}"
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _safe(path: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_]+", "_", path.rsplit("/", 1)[-1])
