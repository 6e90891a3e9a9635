"""Self-contained HTML report of a run folder.

``report.html`` shows the run metadata, how claims are decided (the sequential design and the
abstention policy), the paper's tables with the paper's value and this run's value side by
side and a holds/refuted/inconclusive badge, and every claim with the interval its decision
was made on beside the plain 95 % one, and its budget with the power it has there;
``claims/<slug>.html`` shows one claim: its evidence and a grid of the judged bundles
(embedded PNG thumbnails) with the judge's reason. Pages use inline CSS and ``data:``
images only, and a Content-Security-Policy that forbids scripts. Every string that comes
from a run (reasons, labels, metadata, ids) is escaped: judge output is untrusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import io
import re
from pathlib import Path

from PIL import Image

from mechinterp.claims import Claim, Table, claims_by_id, load_registry, load_tables
from mechinterp.report.meta import RunMeta
from mechinterp.report.run import ClaimResult, Run, VerdictRow, atomic_write, decision_counts, run_image_path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
THUMB_PX = 160
CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328;background:#fff}
table{border-collapse:collapse;margin:8px 0 24px}
th,td{border:1px solid #d0d7de;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f6f8fa}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
.holds{background:#1a7f37}.refuted{background:#cf222e}.inconclusive{background:#9a6700}
.paper{color:#57606a;font-size:12px;white-space:nowrap}.run{font-weight:600;white-space:nowrap}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.bundle{border:1px solid #d0d7de;border-radius:6px;padding:6px;width:360px;overflow-wrap:anywhere}
.bundle img{width:80px;height:80px;object-fit:contain;border:1px solid #eee}
.fig{display:inline-block;margin:2px;font-size:11px;text-align:center;width:82px;overflow:hidden}
.reason{font-size:12px;white-space:pre-wrap;word-break:break-word}
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def esc(value: object) -> str:
    """Escape any value for HTML text or attribute context."""
    return html.escape("" if value is None else str(value), quote=True)


def claim_slug(claim_id: str) -> str:
    """File name of a claim page: readable part plus a short hash (ids map 1:1)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", claim_id).strip("_")[:60]
    return f"{readable}-{hashlib.sha1(claim_id.encode()).hexdigest()[:6]}.html"


def badge(decision: str) -> str:
    """A coloured holds/refuted/inconclusive badge."""
    cls = decision if decision in ("holds", "refuted", "inconclusive") else "inconclusive"
    return f'<span class="badge {cls}">{esc(decision)}</span>'


def page(title: str, body: str) -> str:
    """A complete self-contained HTML document."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>{body}</body></html>")


def thumbnail_uri(image: dict, run_dir: Path) -> str | None:
    """A ``data:`` URI of a small PNG thumbnail, or ``None`` when the image is unusable.

    Accepts ``{"path": ...}`` (relative to the run folder, never outside it) or
    ``{"png": base64}``; the bytes must be a PNG and are re-encoded, so nothing else
    reaches the page.
    """
    try:
        if "png" in image:
            data = base64.b64decode(image["png"], validate=True)
        elif "path" in image:
            path = run_image_path(run_dir, image["path"])
            if path is None:
                return None
            data = path.read_bytes()
        else:
            return None
        if not data.startswith(PNG_SIGNATURE):
            return None
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
    except (OSError, ValueError, binascii.Error):
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _metadata_html(meta: RunMeta) -> str:
    rows = "".join(f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>" for label, value in meta.rows())
    return f"<h2>Run</h2><table>{rows}</table>"


def _cell_html(claim: Claim, res: ClaimResult | None) -> str:
    paper = esc(claim.paper.text) if claim.paper else "&mdash;"
    if res is None:
        return f'<div class="paper">paper {paper}</div><div class="run">run &mdash;</div>'
    return (f'<div class="paper">paper {paper}</div><div class="run">run {esc(res.run_text)}</div>'
            f'<a href="claims/{esc(claim_slug(claim.id))}">{badge(res.decision)}</a>')


def _tables_html(tables: list[Table], results: dict[str, ClaimResult], index: dict[str, Claim]) -> str:
    out = []
    for t in tables:
        head = "".join(f"<th>{esc(label)}</th>" for _, label in t.columns)
        body = []
        for rkey, rlabel in t.rows:
            cells = []
            for ckey, _ in t.columns:
                cid = t.cells.get((rkey, ckey))
                cells.append(f"<td>{_cell_html(index[cid], results.get(cid))}</td>" if cid else "<td></td>")
            body.append(f"<tr><th>{esc(rlabel)}</th>{''.join(cells)}</tr>")
        out.append(f'<h3>{esc(t.title)}</h3><table class="paper-table"><tr><th></th>{head}</tr>{"".join(body)}</table>')
    return "<h2>Paper tables: paper vs this run</h2>" + "".join(out)


def _statistics_html() -> str:
    from mechinterp.stats import ABSTENTIONS, DESIGN

    return f"<h2>How claims are decided</h2><p>{esc(DESIGN)}</p><p>{esc(ABSTENTIONS)}</p>"


def _span(low: float | None, high: float | None, paired: bool) -> str:
    if low is None or high is None:
        return "—"
    if paired:
        return f"[{100 * low:+.1f}, {100 * high:+.1f}]"
    return f"[{100 * low:.1f}, {100 * high:.1f}] %"


def decision_text(r: ClaimResult) -> str:
    """The interval the decision was made on, with its level: ``[80.3, 100.0] % at 99.69 %``."""
    if r.decision_low is None:
        return "95 % (fixed sample)" if not r.note else r.note
    text = f"{_span(r.decision_low, r.decision_high, r.a is not None)} at {100 * r.decision_confidence:.2f} %"
    if r.worst_low is not None:
        text += f"; worst case with the {r.abstained} abstentions {_span(r.worst_low, r.worst_high, r.a is not None)}"
    return text


def power_text(r: ClaimResult, claim: Claim, index: dict[str, Claim]) -> str:
    """``budget 184: 90 % at 85.0 %`` — P(holds) at the claim's design point with its budget."""
    budget, power, point = r.budget, r.power, r.design_point
    if budget is None:  # not a suite run (e.g. released verdicts): the plan the suite would use
        from mechinterp.report.power import default_plan

        plan = default_plan(claim, index)
        budget, power, point = plan.budget, plan.power.p_holds, plan.point
    where = f"{100 * point:+.1f} points" if claim.is_relation else f"{100 * point:.1f} %"
    return f"budget {budget}: {100 * power:.0f} % at {where}"


def _claims_html(claims: list[Claim], results: dict[str, ClaimResult]) -> str:
    index = claims_by_id(claims)
    rows = []
    for c in claims:
        r = results.get(c.id)
        if r is None:
            continue
        kn = f"{r.k}/{r.n}" + (f" vs {r.k2}/{r.n2}" if r.a else "") + (f" ({r.abstained} abstained)" if r.abstained else "")
        rows.append(f'<tr><td><a href="claims/{esc(claim_slug(c.id))}">{esc(c.id)}</a></td><td>{esc(c.statement)}</td>'
                    f"<td>{esc(r.hypothesis)}</td><td>{esc(r.paper_text or '—')}</td><td>{esc(r.run_text)}</td>"
                    f"<td>{esc(kn)}</td><td>{esc(decision_text(r))}</td><td>{esc(power_text(r, c, index))}</td>"
                    f"<td>{badge(r.decision)}</td></tr>")
    head = ("<tr><th>claim</th><th>statement</th><th>hypothesis</th><th>paper</th><th>run (95 %)</th><th>k/n</th>"
            "<th>decided on</th><th>power at its budget</th><th>decision</th></tr>")
    return f"<h2>Claims</h2><table>{head}{''.join(rows)}</table>"


def _bundle_html(v: VerdictRow, claim: Claim, run_dir: Path) -> str:
    figs = []
    for img in v.images:
        uri = thumbnail_uri(img, run_dir)
        pic = f'<img alt="{esc(img.get("label"))}" src="{uri}">' if uri else "<i>(no image)</i>"
        figs.append(f'<span class="fig">{pic}<br>{esc(img.get("label"))}</span>')
    verdict = "abstained" if v.passed is None else ("success" if claim.success(v.passed) else "no success")
    return (f'<div class="bundle"><b>{esc(v.task_id)}</b> &middot; judge pass={esc(v.passed)} ({esc(verdict)})'
            f'<div>{"".join(figs)}</div><div class="reason">{esc(v.reason)}</div>'
            f'<div class="paper">{esc(v.judge)} &middot; {esc(v.question_id)}</div></div>')


def _claim_page(claim: Claim, res: ClaimResult, verdicts: list[VerdictRow], run_dir: Path, max_bundles: int,
                index: dict[str, Claim]) -> str:
    facts = [("statement", claim.statement), ("where", claim.where), ("hypothesis", res.hypothesis),
             ("experiment", claim.experiment), ("question", claim.question), ("polarity", claim.polarity),
             ("tasks", ", ".join(claim.tasks)), ("paper", res.paper_text), ("run", res.run_text),
             ("k / n (abstained)", f"{res.k} / {res.n} ({res.abstained})"),
             ("95 % interval" + (" (paired)" if claim.is_relation else " (Wilson)"), f"[{res.ci_low:.4f}, {res.ci_high:.4f}]"),
             ("decided on", decision_text(res)),
             ("looks (judged)", None if not res.looks else ", ".join(map(str, res.looks))),
             ("power at its budget", power_text(res, claim, index)), ("note", res.note)]
    if claim.is_relation:
        facts += [("a", claim.a), ("b", claim.b), ("b: k / n", f"{res.k2} / {res.n2}")]
        if res.pairs:
            facts.append(("paired tasks (both, a only, b only, neither, abstained)",
                          ", ".join(str(res.pairs[k]) for k in ("n11", "n10", "n01", "n00", "abstained"))))
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts if v not in (None, ""))
    shown = verdicts[:max_bundles]
    grid = "".join(_bundle_html(v, claim, run_dir) for v in shown)
    note = f"<p>Showing {len(shown)} of {len(verdicts)} judged bundles.</p>" if verdicts else ""
    listing = "".join(f"<tr><td>{esc(v.task_id)}</td><td>{esc(v.passed)}</td><td class=\"reason\">{esc(v.reason)}</td></tr>"
                      for v in verdicts[max_bundles:])
    rest = f"<h2>Other verdicts</h2><table><tr><th>task</th><th>pass</th><th>reason</th></tr>{listing}</table>" if listing else ""
    plot = ""
    if res.sweep:
        from mechinterp.report.plots import sweep_plot

        uri = sweep_plot(res.sweep, f"{claim.id}: rate per site", getattr(claim.hypothesis, "value", None))
        cells = "".join(f"<tr><td>{esc(site)}</td><td>{s['k']} / {s['n']}</td><td>[{s['low']:.3f}, {s['high']:.3f}]</td>"
                        f"<td>{esc(_power_of_site(s))}</td><td>{badge(s['decision'])}</td></tr>" for site, s in res.sweep.items())
        plot = (f'<h2>Sweep</h2><img class="sweep" alt="rate per site" src="{uri}">'
                f"<table><tr><th>site</th><th>k / n</th><th>decided on</th><th>budget: power</th><th>decision</th></tr>"
                f"{cells}</table>")
    body = (f'<p><a href="../report.html">&larr; report</a></p><h1>{esc(claim.id)} {badge(res.decision)}</h1>'
            f'<table>{rows}</table>{plot}{note}<div class="grid">{grid}</div>{rest}')
    return page(claim.id, body)


def _power_of_site(site: dict) -> str:
    if site.get("budget") is None:
        return "—"
    return f"{site['budget']}: {100 * site['power']:.0f} %"


def write_html(run: Run, registry: str | Path | None = None, max_bundles: int = 48) -> Path:
    """Write ``report.html`` and one page per claim into the run folder."""
    out = run.path
    reg = registry or run.metadata.registry or None
    claims, tables = load_registry(reg), load_tables(reg)
    index = claims_by_id(claims)
    by_claim: dict[str, list[VerdictRow]] = {}
    for v in run.verdicts:
        by_claim.setdefault(v.claim_id, []).append(v)
    for cid, res in run.results.items():
        if cid in index:
            html_text = _claim_page(index[cid], res, by_claim.get(cid, []), run.path, max_bundles, index)
            atomic_write(out / "claims" / claim_slug(cid), html_text)
    counts = decision_counts(run.results)
    summary = " ".join(f"{badge(d)} {counts[d]}" for d in ("holds", "refuted", "inconclusive"))
    title = f"mechinterp claims report: {run.metadata.name or run.path.name}"
    body = (f"<h1>{esc(title)}</h1><p>{summary}</p>{_metadata_html(run.metadata)}{_statistics_html()}"
            f"{_tables_html(tables, run.results, index)}{_claims_html(claims, run.results)}")
    atomic_write(out / "report.html", page(title, body))
    return out / "report.html"
