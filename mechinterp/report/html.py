"""Self-contained HTML report of a run folder.

``report.html`` shows the run metadata, how claims are decided (the sequential design and the
abstention policy), the paper's tables with the paper's value and this run's value side by
side and a holds/refuted/inconclusive badge, and every claim with the interval its decision
was made on beside the plain 95 % one, and its budget with the power it has there;
``claims/<slug>.html`` shows one claim: its evidence and a grid of the judged bundles
(embedded PNG thumbnails) with the judge's reason. Pages use inline CSS and ``data:``
images only, and a Content-Security-Policy that forbids scripts. The pages are Jinja2 templates
(``mechinterp/report/templates/``) rendered with autoescape: every value that comes from a run
(reasons, labels, metadata, ids, counts) is escaped, judge output is untrusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import zlib
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from PIL import Image

from mechinterp.claims import Claim, Table, claims_by_id, load_registry, load_tables
from mechinterp.io import bounded_memo
from mechinterp.judges.questions import QUESTIONS
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
.fig{display:inline-block;margin:2px;font-size:11px;text-align:center;width:82px;vertical-align:top;overflow-wrap:anywhere}
td,th,.paper,.run{overflow-wrap:anywhere}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}
.reason{font-size:12px;white-space:pre-wrap;word-break:break-word}
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@lru_cache(maxsize=1)
def _templates() -> Environment:
    """The report's Jinja2 templates, autoescaped (``None`` renders as nothing)."""
    return Environment(loader=PackageLoader("mechinterp.report", "templates"), autoescape=True, trim_blocks=True,
                       lstrip_blocks=True, undefined=StrictUndefined, finalize=lambda v: "" if v is None else v)


def render(template: str, title: str, **values) -> str:
    """A complete self-contained HTML document from one of the report's templates."""
    return _templates().get_template(template).render(title=title, css=Markup(CSS), csp=Markup(CSP), **values)


def claim_slug(claim_id: str) -> str:
    """File name of a claim page: readable part plus a short hash (ids map 1:1)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", claim_id).strip("_")[:60]
    return f"{readable}-{hashlib.sha1(claim_id.encode()).hexdigest()[:6]}.html"


def thumbnail_uri(image: dict, run_dir: Path) -> str | None:
    """A ``data:`` URI of a small PNG thumbnail, or ``None`` when the image is unusable.

    Accepts ``{"path": ...}`` (relative to the run folder, never outside it) or
    ``{"png": base64}``; the bytes must be a PNG and are re-encoded, so nothing else
    reaches the page, unless they already are a plain RGB thumbnail of pixels alone
    (:func:`is_plain_thumbnail`), which is embedded as it is.
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
    except (OSError, ValueError, binascii.Error):
        return None
    return _thumbnail_of(data)


#: the only chunks a PNG embedded as it is may hold: pixels and nothing else (no text, profile or private data)
_PLAIN_CHUNKS = (b"IHDR", b"IDAT", b"IEND")


def is_plain_thumbnail(data: bytes) -> bool:
    """Whether ``data`` is a PNG the report may embed byte for byte instead of re-encoding it: 8-bit RGB, not
    interlaced, at most THUMB_PX a side (so ``thumbnail`` would not change it), only IHDR, IDAT and IEND chunks
    with valid CRCs and nothing after IEND. Why: the runner already stores each judged image as a PNG
    thumbnail of this kind (96 px), and decoding plus an ``optimize=True`` re-encode of it cost ~0.6 ms per
    image for the same pixels; the chunk check keeps the rule that nothing but pixels reaches the page."""
    if not data.startswith(PNG_SIGNATURE):
        return False
    pos, first = len(PNG_SIGNATURE), True
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        end = pos + 12 + length
        if end > len(data) or kind not in _PLAIN_CHUNKS or first != (kind == b"IHDR"):
            return False
        if zlib.crc32(kind + body) != int.from_bytes(data[end - 4:end], "big"):
            return False
        if first:
            if length != 13:
                return False
            width, height = int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big")
            # bit depth 8, colour type 2 (RGB), compression 0, filter 0, interlace 0
            if not (0 < width <= THUMB_PX and 0 < height <= THUMB_PX) or body[8:13] != bytes([8, 2, 0, 0, 0]):
                return False
            first = False
        if kind == b"IEND":
            return end == len(data)
        pos = end
    return False


# memoised by the SHA-256 of the source PNG: a run's baselines and references recur in hundreds of bundles,
# and re-encoding each was most of the report's time (a digest key keeps full-size sources from staying alive)
@bounded_memo(lambda data: hashlib.sha256(data).digest())
def _thumbnail_of(data: bytes) -> str | None:
    """The ``data:`` URI of one PNG's thumbnail (``None`` for bytes that are not a readable PNG). A PNG that is
    already a plain small thumbnail (:func:`is_plain_thumbnail`) is embedded as it is once it decodes."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            if is_plain_thumbnail(data):
                im.load()  # every pixel decodes (a damaged IDAT fails here, as it would in convert)
                return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
            im = im.convert("RGB")
            im.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
    except (OSError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


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


def _rate(k: int | None, n: int | None) -> str:
    return "n/a" if not n else f"{100 * k / n:.1f} %"


def counts_text(r: ClaimResult) -> str:
    """The counts a claim's row shows: ``k/n`` for a rate, ``k/n vs k2/n2`` for a paired relation, and both
    arms with their rates for an unpaired one (``12/13 (92.3 %) vs 0/13 (0.0 %), independent arms``)."""
    if r.unpaired:
        text = f"{r.k}/{r.n} ({_rate(r.k, r.n)}) vs {r.k2}/{r.n2} ({_rate(r.k2, r.n2)}), independent arms"
    else:
        text = f"{r.k}/{r.n}" + (f" vs {r.k2}/{r.n2}" if r.a else "")
    return text + (f" ({r.abstained} abstained)" if r.abstained else "")


def _claim_rows(claims: list[Claim], results: dict[str, ClaimResult]) -> list[dict]:
    index = claims_by_id(claims)
    rows = []
    for c in claims:
        r = results.get(c.id)
        if r is None:
            continue
        rows.append(dict(id=c.id, slug=claim_slug(c.id), statement=c.statement, hypothesis=r.hypothesis,
                         paper=r.paper_text or "—", run=r.run_text, kn=counts_text(r), decided=decision_text(r),
                         power=power_text(r, c, index), decision=r.decision))
    return rows


def _table_rows(tables: list[Table], results: dict[str, ClaimResult], index: dict[str, Claim]) -> list[dict]:
    out = []
    for t in tables:
        rows = []
        for rkey, rlabel in t.rows:
            cells = []
            for ckey, _ in t.columns:
                cid = t.cells.get((rkey, ckey))
                cells.append(dict(claim=index[cid], res=results.get(cid), slug=claim_slug(cid)) if cid else None)
            rows.append((rlabel, cells))
        out.append(dict(title=t.title, columns=[label for _, label in t.columns], rows=rows))
    return out


def image_label(img: dict, question_id: str | None) -> str:
    """A bundle image's caption: its stored label, else the judge's label for its role in the question
    (``Image 2 - T2I baseline``), else the role itself; rows store only the role."""
    if img.get("label"):
        return str(img["label"])
    role = img.get("role")
    question = QUESTIONS.get(question_id) if question_id else None
    if question is not None and role in question.roles:
        return question.labels[question.roles.index(role)].rstrip(":")
    return str(role or "image")


def _bundle(v: VerdictRow, claim: Claim, run_dir: Path) -> dict:
    figs = [dict(uri=thumbnail_uri(img, run_dir), label=image_label(img, v.question_id)) for img in v.images]
    verdict = "abstained" if v.passed is None else ("success" if claim.success(v.passed) else "no success")
    return dict(task_id=v.task_id, passed=v.passed, verdict=verdict, figs=figs, reason=v.reason, judge=v.judge,
                question_id=v.question_id)


def bundle_groups(verdicts: list[VerdictRow], per_group: int) -> list[dict]:
    """Every judged bundle of a claim, in groups a page shows folded: one group per sweep site (a sweep's
    task ids end ``@<site>``), each split into pages of ``per_group``; nothing is left out."""
    by_site: dict[str, list[VerdictRow]] = {}
    for v in verdicts:
        task, sep, site = v.task_id.rpartition("@")
        by_site.setdefault(site if sep else "", []).append(v)
    groups = []
    for site, rows in by_site.items():
        for start in range(0, len(rows), per_group):
            part = rows[start:start + per_group]
            where = f"site {site}: " if site else ""
            groups.append(dict(title=f"{where}bundles {start + 1}-{start + len(part)} of {len(rows)}", rows=part))
    return groups


def _claim_page(claim: Claim, res: ClaimResult, verdicts: list[VerdictRow], run_dir: Path, max_bundles: int,
                index: dict[str, Claim]) -> str:
    facts = [("statement", claim.statement), ("where", claim.where), ("hypothesis", res.hypothesis),
             ("experiment", claim.experiment), ("question", claim.question), ("polarity", claim.polarity),
             ("tasks", ", ".join(claim.tasks)), ("paper", res.paper_text), ("run", res.run_text),
             ("k / n (abstained)", f"{res.k} / {res.n} ({res.abstained})"),
             ("95 % interval" + (" (Newcombe, unpaired)" if res.unpaired else " (paired)" if claim.is_relation
                                 else " (Wilson)"), f"[{res.ci_low:.4f}, {res.ci_high:.4f}]"),
             ("decided on", decision_text(res)),
             ("looks (judged)", None if not res.looks else ", ".join(map(str, res.looks))),
             ("power at its budget", power_text(res, claim, index)), ("note", res.note)]
    if claim.is_relation and res.unpaired:
        facts += [("a", claim.a), ("b", claim.b),
                  ("a: k / n (rate)", f"{res.k} / {res.n} ({_rate(res.k, res.n)})"),
                  ("b: k / n (rate)", f"{res.k2} / {res.n2} ({_rate(res.k2, res.n2)})"),
                  ("arms", "unpaired: each arm draws its own tasks (its cell's family and model); a - b is the "
                           "difference of two independent rates")]
    elif claim.is_relation:
        facts += [("a", claim.a), ("b", claim.b), ("b: k / n", f"{res.k2} / {res.n2}")]
        if res.pairs:
            facts.append(("paired tasks (both, a only, b only, neither, abstained)",
                          ", ".join(str(res.pairs[k]) for k in ("n11", "n10", "n01", "n00", "abstained"))))
    sweep = None
    if res.sweep:
        from mechinterp.report.plots import sweep_plot

        uri = sweep_plot(res.sweep, f"{claim.id}: rate per site", getattr(claim.hypothesis, "value", None),
                         res.transition)
        marks = crossing_marks(list(res.sweep), res.transition)
        sweep = dict(uri=uri, transition=res.transition,
                     rows=[dict(site=site, k=s["k"], n=s["n"], span=f"[{s['low']:.3f}, {s['high']:.3f}]",
                                power=_power_of_site(s), decision=s["decision"], marks=marks.get(site, []))
                           for site, s in res.sweep.items()])
    groups = [dict(title=g["title"], bundles=[_bundle(v, claim, run_dir) for v in g["rows"]])
              for g in bundle_groups(verdicts, max_bundles)]
    return render("claim.html", claim.id, claim_id=claim.id, decision=res.decision,
                  facts=[(k, v) for k, v in facts if v not in (None, "")], sweep=sweep, total=len(verdicts),
                  groups=groups)


def crossing_marks(sites: list[str], transition: dict | None) -> dict[str, list[str]]:
    """Per sweep site, the crossing marks its table row carries: ``claimed`` (the claimed crossing lies
    just before it), ``window`` (a crossing there is inside the claim's tolerance), ``measured`` (the
    per-site decisions allow the crossing just before it)."""
    if not transition:
        return {}
    order = [*sites, "end"]

    def span(pair):
        return order[order.index(pair[0]):order.index(pair[1]) + 1]

    marks: dict[str, list[str]] = {}
    for site in span(transition["claimed"]):
        marks.setdefault(site, []).append("window")
    marks.setdefault(transition["at"], []).insert(0, "claimed")
    for site in span(transition["located"]):
        marks.setdefault(site, []).append("measured")
    return marks


def _power_of_site(site: dict) -> str:
    if site.get("budget") is None:
        return "—"
    return f"{site['budget']}: {100 * site['power']:.0f} %"


def write_html(run: Run, registry: str | Path | None = None, max_bundles: int = 48) -> Path:
    """Write ``report.html`` and one page per claim into the run folder (every bundle of a claim, folded
    in groups of ``max_bundles`` per sweep site, the first one open)."""
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
    from mechinterp.stats import ABSTENTIONS, DESIGN

    counts = decision_counts(run.results)
    title = f"mechinterp claims report: {run.metadata.name or run.path.name}"
    text = render("report.html", title, counts=[(d, counts[d]) for d in ("holds", "refuted", "inconclusive")],
                  meta_rows=run.metadata.rows(), design=DESIGN, abstentions=ABSTENTIONS,
                  tables=_table_rows(tables, run.results, index), claims=_claim_rows(claims, run.results))
    atomic_write(out / "report.html", text)
    return out / "report.html"
