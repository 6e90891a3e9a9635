"""pytest plugin for the claims suite (registered through the ``pytest11`` entry point).

Options (each also ``mechinterp_<name>`` in ``[tool.pytest.ini_options]`` and
``MECHINTERP_<NAME>`` in the environment): ``--mi-model``, ``--mi-judge``, ``--mi-judge-config``, ``--mi-samples``,
``--mi-budget``, ``--mi-seed``, ``--mi-cache-dir``, ``--mi-data-dir``, ``--mi-device``, ``--mi-dtype``,
``--mi-generator``, ``--mi-report``, ``--mi-shard``, ``--mi-progress``, ``--mi-threads``. The prefix keeps
them from colliding with other plugins' or a project's own conftest options; the unprefixed names
(``--model``, ...) are aliases, added after the initial conftests are loaded and only where nobody
else registered that flag.

A claim test is a function taking the ``claim`` argument and marked
``@pytest.mark.claims(experiment=..., relation=...)``; the plugin parametrizes it over the
matching claims of the registry (ids like ``test_knockout[knockout[ref-to-text]-color]``: the claim id
spelled for ``-k``, ``mechinterp.suite.ids``; the claim's
markers applied) and the ``check_claim`` fixture runs, judges, decides and asserts: *holds*
passes, *refuted* fails with the numbers, *inconclusive* is an xfail with the reason. Users add
claims as ``*.claims.toml`` files anywhere under the test paths; they are collected the same way.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import pytest

from mechinterp.suite import PARTS
from mechinterp.suite.scheduling import GROUP_FLAG, GROUP_PREFIX, ClaimScheduling, pin_gpu, tag_nodeid
from mechinterp.suite.settings import OPTIONS, resolve

_SESSION_KEY = pytest.StashKey()
_RUN_DIR_KEY = pytest.StashKey()
_SETTINGS_KEY = pytest.StashKey()
_CLAIM_COUNT_KEY = pytest.StashKey()
_CLAIM_FILES_KEY = pytest.StashKey()
_CLAIM_NODES_KEY = pytest.StashKey()
_OUTCOMES_KEY = pytest.StashKey()
_SHARD_DROPPED_KEY = pytest.StashKey[bool]()
_USAGE_ERROR_KEY = pytest.StashKey[str]()


# -- options and configuration ------------------------------------------------------------------
def pytest_addoption(parser) -> None:
    """Add the suite's ``--mi-`` options, ini keys and (implicitly) environment variables."""
    group = parser.getgroup("mechinterp", "mechinterp claims suite")
    for opt in OPTIONS:
        group.addoption(opt.flag, dest=opt.dest, default=None, **_kind(opt),
                        help=f"{opt.help} [ini: {opt.ini}; env: {opt.env}; alias {opt.alias} where free]"
                        .replace("%", "%%"))  # argparse %-formats help texts
        parser.addini(opt.ini, opt.help, default=None)


def _kind(opt) -> dict:
    """argparse keywords of an option: a switch (``--mi-strict``) stores ``on``, the others take a value."""
    return {"action": "store_const", "const": "on"} if opt.switch else {}


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Once the initial conftests have added their options, add the unprefixed aliases that are still free."""
    result = yield
    add_aliases(parser)
    return result


def taken_flags(parser) -> set[str]:
    """Every flag registered on ``parser`` (pytest's, plugins', conftests')."""
    groups = [parser._anonymous, *parser._groups]
    return {name for group in groups for opt in group.options for name in opt.names()}


def add_aliases(parser) -> list[str]:
    """Add ``--model``, ``--seed``, ... for the options whose unprefixed flag nobody else has; returns those added."""
    import argparse

    taken, added = taken_flags(parser), []
    group = parser.getgroup("mechinterp")
    for opt in OPTIONS:
        if opt.alias in taken:
            continue
        try:
            group.addoption(opt.alias, dest=opt.dest, default=None, help=f"alias of {opt.flag}", **_kind(opt))
        except (ValueError, argparse.ArgumentError):
            continue
        added.append(opt.alias)
    return added


def pytest_configure(config) -> None:
    """Register markers, validate options and pick the run folder.

    Nothing here changes a session that runs no claims: no torch import, no ``--dist`` override,
    no GPU pinning. Under xdist, claim families are grouped onto workers (``suite.scheduling``)
    and each worker takes a GPU only once its collection holds claim items.
    """
    from mechinterp.vocabulary import markers

    for name, text in markers().items():
        config.addinivalue_line("markers", f"{name}: {text}")
    config.addinivalue_line("markers", "claims(experiment=None, relation=False, family=None): "
                                       "parametrize a claim test over the registry's matching claims")
    try:
        settings = resolve(config)
        if settings.model is not None:
            from mechinterp.suite.models import check_model

            check_model(settings.model)
    except ValueError as err:
        raise pytest.UsageError(str(err)) from None
    config.stash[_SETTINGS_KEY] = settings
    config.stash[_SESSION_KEY] = None
    config.pluginmanager.register(_OutcomeRecorder(config), "mechinterp-outcomes")
    if _worker_id(config):
        run_dir = Path(config.workerinput.get("mechinterp_run_dir") or settings.report or "reports/worker")
    else:
        # relative to where pytest was started (the rootdir of `--pyargs mechinterp.claims.paper` is site-packages)
        run_dir = settings.report or Path(config.invocation_params.dir) / "reports" / _run_name(settings.model)
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(_XdistHooks(run_dir), "mechinterp-xdist")
        from mechinterp.suite.runfolder import check_run_folder

        try:
            check_run_folder(Path(run_dir), settings)
        except ValueError as err:
            raise pytest.UsageError(str(err)) from None
    config.stash[_RUN_DIR_KEY] = run_dir


def _worker_id(config) -> str | None:
    """The xdist worker id (``gw0``...) in a worker, ``None`` in the controller or without xdist."""
    return config.workerinput.get("workerid") if hasattr(config, "workerinput") else None


def _run_name(model: str | None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    from mechinterp.resources import DEFAULT_ORGANISM

    short = (model or DEFAULT_ORGANISM).rstrip("/").split("/")[-1]
    return f"{stamp}-{short}"


class _XdistHooks:
    """Controller-side xdist hooks: the run folder for every worker, and claim-aware scheduling."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def pytest_configure_node(self, node) -> None:
        """Pass the run folder to a starting worker, and whether to tag claim items with their group."""
        node.workerinput["mechinterp_run_dir"] = str(self.run_dir)
        # plain -n (load: our scheduler picks loadgroup) and an explicit --dist loadgroup, whose own tags
        # xdist 3.8 writes where pytest >= 9.2 no longer reads node ids (so families would split)
        node.workerinput[GROUP_FLAG] = node.config.getvalue("dist") in ("load", "loadgroup")

    def pytest_testnodedown(self, node, error) -> None:
        """A worker that refused the ``-m`` selection: the run ends as that usage error (reported once)."""
        message = getattr(node, "workeroutput", {}).get(_USAGE_ERROR)
        if message:
            node.config.stash[_USAGE_ERROR_KEY] = message

    def pytest_xdist_make_scheduler(self, config, log):
        """Plain ``-n N`` (``--dist load``): :class:`ClaimScheduling`; any explicit other mode is left alone."""
        return ClaimScheduling(config, log) if config.getvalue("dist") == "load" else None


# -- registry and parametrization -----------------------------------------------------------------
def _registry(config):
    from mechinterp.claims import claims_by_id, load_registry

    key = "_mechinterp_registry"
    if not hasattr(config, key):
        setattr(config, key, claims_by_id(load_registry()))
    return getattr(config, key)


def claim_test_id(claim) -> str:
    """The claim's test id: its claim id in a ``-k``-safe spelling (``knockout[ref->text]-color`` →
    ``knockout[ref-to-text]-color``; ``mechinterp.suite.ids``)."""
    from mechinterp.suite.ids import test_id

    return test_id(claim.id)


def claim_marks(claim) -> list:
    """A claim's markers, plus the xdist group that keeps a family's claims of one experiment
    (and the relations between them) on one worker; a relation between families joins the group of
    the first family it is marked with (the job it runs in: ``markers`` in the registry)."""
    from mechinterp.vocabulary import EXPERIMENTS, FAMILIES

    kind = next((m for m in claim.markers if m in {k.marker for k in EXPERIMENTS.values()}), "other")
    family = claim.family or next((m for m in claim.markers if m in FAMILIES), "any")
    return [*(getattr(pytest.mark, m) for m in claim.markers),
            pytest.mark.xdist_group(name=f"{GROUP_PREFIX}{family}-{kind}")]


def is_claim_item(item) -> bool:
    """Whether a collected item is a claim (a parametrized claim test or a ``*.claims.toml`` claim)."""
    return isinstance(item, ClaimItem) or "claim" in getattr(item, "fixturenames", ())


def claim_params(claims) -> list:
    """``pytest.param`` per claim with :func:`claim_marks` (``ValueError`` when two claims spell the same id)."""
    from mechinterp.suite.ids import test_ids

    test_ids(c.id for c in claims)
    return [pytest.param(c, id=claim_test_id(c), marks=claim_marks(c)) for c in claims]


def select_claims(registry: dict, experiment: str | None = None, relation: bool = False, family: str | None = None) -> list:
    """The registry's claims of one experiment (or the relations), optionally of one family; an old
    experiment spelling (``i2i_patch``) selects the same claims as its table name."""
    from mechinterp.vocabulary import canonical_experiment

    experiment = canonical_experiment(experiment)
    out = []
    for c in registry.values():
        if relation != c.is_relation:
            continue
        if experiment and (c.experiment is None or c.experiment.name != experiment):
            continue
        if family and c.family != family:
            continue
        out.append(c)
    return out


def pytest_generate_tests(metafunc) -> None:
    """Parametrize claim tests over the registry."""
    marker = metafunc.definition.get_closest_marker("claims")
    if marker is None or "claim" not in metafunc.fixturenames:
        return
    claims = select_claims(_registry(metafunc.config), **marker.kwargs)
    metafunc.parametrize("claim", claim_params(claims))


def xdist_group(item) -> str | None:
    """The name of an item's ``xdist_group`` mark (``None`` without one)."""
    mark = item.get_closest_marker("xdist_group")
    return None if mark is None else mark.kwargs.get("name", mark.args[0] if mark.args else "default")


def shard_of_items(config, claims: list, n: int) -> dict[str, int]:
    """``{node id: shard}`` of the selected claim items: claim groups balanced by planned generations
    (``mechinterp.suite.sharding``), the same in every shard and worker given the same selection."""
    if not claims:
        return {}
    from mechinterp.suite.sharding import split

    members = [(item.nodeid, _item_claim(item)) for item in claims]
    index = {**_registry(config), **{c.id: c for _, c in members if c is not None}}
    return split(members, index, config.stash[_SETTINGS_KEY].samples, n)[0]


_BAD_SELECTION_KEY = pytest.StashKey[bool]()
#: the ``workeroutput`` key of a worker's refused ``-m`` (the controller ends the run with it as a usage error)
_USAGE_ERROR = "mechinterp_usage_error"


@pytest.hookimpl(tryfirst=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_markexpr(config, items) -> None:
    """In a session that collected claims, a ``-m`` word that is no marker of the claims, of a collected test
    or of the registered ones is one usage error naming the claims' markers (pytest's ``-m`` takes any word:
    ``-m colour`` would deselect every claim with no word why); tryfirst: before pytest's own ``-m`` and its
    ``--strict-markers`` check."""
    markexpr = config.option.markexpr
    claims = [c for item in items if is_claim_item(item) and (c := _item_claim(item)) is not None]
    if not markexpr or not claims:
        return
    from mechinterp.suite.markexpr import check_markexpr, registered_marker

    known = {registered_marker(line) for line in config.getini("markers")}
    known |= {mark.name for item in items for mark in item.iter_markers()}
    error = check_markexpr(markexpr, known, {m for c in claims for m in c.markers})
    if not error:
        return
    config.stash[_BAD_SELECTION_KEY] = True  # no prerequisites block for a selection that is refused
    if not _worker_id(config):
        raise pytest.UsageError(error)
    # an xdist worker: a usage error here would crash it; it runs nothing and the controller reports the error
    config.workeroutput[_USAGE_ERROR] = error
    config.option.markexpr = ""  # nor does pytest's own -m check raise on the word
    config.hook.pytest_deselected(items=list(items))
    items[:] = []


@pytest.hookimpl(trylast=True)  # after -m/-k deselected: the split balances the claims that run
def pytest_collection_modifyitems(config, items) -> None:
    """Apply ``--shard I/N`` (claim tests of this shard; other tests always run); in an xdist worker
    whose collection holds claims, take a GPU and tag the claims with their group for scheduling."""
    settings = config.stash[_SETTINGS_KEY]
    if settings.shard is not None:
        i, n = settings.shard
        shard = shard_of_items(config, [item for item in items if is_claim_item(item)], n)
        keep, drop = [], []
        for item in items:
            (drop if is_claim_item(item) and shard[item.nodeid] != i else keep).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
        config.stash[_SHARD_DROPPED_KEY] = bool(drop)
    worker = _worker_id(config)
    claims = [item for item in items if is_claim_item(item)]
    config.stash[_CLAIM_COUNT_KEY] = len(claims)
    config.stash[_OUTCOMES_KEY] = {}
    if worker and claims:
        pin_gpu(worker)
        if config.workerinput.get(GROUP_FLAG):
            for item in claims:
                if (group := xdist_group(item)) is not None:
                    tag_nodeid(item, group)
    # after the group tags: reports carry the tagged node ids
    config.stash[_CLAIM_NODES_KEY] = {item.nodeid: cid for item in claims if (cid := _item_claim_id(item))}


def pytest_collection_finish(session) -> None:
    """Once ``-m``/``-k``/``--mi-shard`` have chosen the claims: check their prerequisites (without
    xdist; under xdist the controller does, from the workers' collection); a shard the split left without
    a claim records its settings, so the run still writes its (empty) run folder."""
    if session.config.stash.get(_BAD_SELECTION_KEY, False):
        return
    claims = [c for item in session.items if is_claim_item(item) and (c := _item_claim(item)) is not None]
    if claims and not _worker_id(session.config):
        _check_prerequisites(session.config, claims)
    if not claims and session.config.stash.get(_SHARD_DROPPED_KEY, False) and not session.config.option.collectonly:
        # a shard left with no claim still leaves its (empty) run folder, so `merge` finds every shard
        from mechinterp.suite.runfolder import record_settings

        record_settings(Path(session.config.stash[_RUN_DIR_KEY]), session.config.stash[_SETTINGS_KEY])


_PREREQS_CHECKED_KEY = pytest.StashKey[bool]()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids) -> None:
    """Under xdist the controller collects nothing: check the prerequisites of the claims the first
    worker collected (every worker collects the same items), once."""
    config = node.config
    if config.stash.get(_PREREQS_CHECKED_KEY, False) or _SETTINGS_KEY not in config.stash:
        return
    config.stash[_PREREQS_CHECKED_KEY] = True
    import tomllib

    from mechinterp.resources import package_path
    from mechinterp.suite.ids import claim_ids_of_node_ids

    # the registry's ids read as plain TOML first: loading (validating) it, even importing mechinterp.claims,
    # imports scipy and torch, which an unrelated project's controller must not pay for
    raw = tomllib.loads(package_path("claims", "registry.toml").read_text(encoding="utf-8"))
    found = claim_ids_of_node_ids(ids, [c["id"] for c in raw.get("claim", []) if "id" in c])
    if found:
        registry = _registry(config)
        _check_prerequisites(config, [registry[cid] for cid in found if cid in registry])


def _check_prerequisites(config, selected) -> None:
    """Every missing prerequisite of the collected claims in one message before any runs: printed, or under
    ``--mi-strict`` the end of the run (a CI job must not pass having decided nothing)."""
    from mechinterp.suite.prereqs import describe, skipped_claims

    gaps = skipped_claims(selected, _registry(config), config.stash[_SETTINGS_KEY])
    if not gaps:
        return
    strict = config.stash[_SETTINGS_KEY].strict
    message = describe(gaps, len(selected), strict, compact=config.option.verbose < 0)
    if strict:
        pytest.exit(message, returncode=pytest.ExitCode.USAGE_ERROR)
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:
        terminal.write_line(message, yellow=True)


def _item_claim(item):
    """The claim a collected claim item runs (``None`` for other items)."""
    claim = getattr(item, "claim", None)
    if claim is None and hasattr(item, "callspec"):
        claim = item.callspec.params.get("claim")
    return claim


def _item_claim_id(item) -> str | None:
    """The claim id a collected claim item runs."""
    return getattr(_item_claim(item), "id", None)


class _OutcomeRecorder:
    """Records every claim item's outcome (passed, failed, error, skipped, xfailed) for the run folder, so
    ``junit.xml`` and ``results.json`` list claims that errored or were skipped too.

    The outcomes are saved as each claim starts and ends: a claim starts saved as a crash, so a process
    killed inside it (an xdist worker's ``os._exit``, SIGKILL, OOM) leaves that claim an error on disk,
    where pytest's controller reports it failed, and the claims it finished before keep theirs."""

    def __init__(self, config):
        self.config = config
        self.seconds: dict[str, float] = {}  # node id -> seconds of its reports so far
        self.started: dict[str, float] = {}  # node id -> when it started (epoch seconds)

    def _save(self) -> None:
        from mechinterp.suite.session import write_outcomes

        write_outcomes(self.config.stash[_RUN_DIR_KEY], _worker_id(self.config) or "main",
                       self.config.stash.get(_OUTCOMES_KEY, {}))

    def pytest_runtest_logstart(self, nodeid, location) -> None:
        """Save a starting claim as crashed: what stays on disk if this process dies inside it."""
        cid = self.config.stash.get(_CLAIM_NODES_KEY, {}).get(nodeid)
        if cid is not None:
            from mechinterp.suite.session import crash_outcome

            self.started[nodeid] = time.time()

            self.config.stash.setdefault(_OUTCOMES_KEY, {})[cid] = {**crash_outcome(_worker_id(self.config), nodeid),
                                                                    **_junit_names(self.config, nodeid)}
            self._save()

    def pytest_runtest_logfinish(self, nodeid, location) -> None:
        """Save a finished claim's outcome (its reports have replaced the crash), with its seconds."""
        cid = self.config.stash.get(_CLAIM_NODES_KEY, {}).get(nodeid)
        if cid is not None:
            outcome = self.config.stash.get(_OUTCOMES_KEY, {}).get(cid)
            if outcome is not None and not outcome.get("crashed"):
                outcome["seconds"] = round(self.seconds.pop(nodeid, 0.0), 6)
                outcome["started"] = self.started.pop(nodeid, None)
            self._save()

    def pytest_runtest_logreport(self, report) -> None:
        """Keep the first failing phase's outcome, else the call's."""
        cid = self.config.stash.get(_CLAIM_NODES_KEY, {}).get(report.nodeid)
        if cid is None:
            return
        # setup + call + teardown, as pytest's junit times a test (junit_duration_report = total)
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration
        outcomes = self.config.stash.setdefault(_OUTCOMES_KEY, {})
        if report.when != "call" and not (report.failed or report.skipped):
            return
        if report.when == "teardown" and outcomes.get(cid, {}).get("outcome") not in (None, "passed"):
            return
        if hasattr(report, "wasxfail"):
            outcome = "inconclusive"
        elif report.skipped:
            outcome = "skipped"
        elif report.failed:
            outcome = "failed" if report.when == "call" else "error"
        else:
            outcome = "passed"
        outcomes[cid] = {"outcome": outcome, "message": _report_message(report), "nodeid": report.nodeid,
                         **_junit_names(self.config, report.nodeid)}


def _junit_names(config, nodeid: str) -> dict[str, str]:
    """The ``classname`` and ``name`` pytest's own junit gives the test ``nodeid`` (its ``mangle_test_address``, the
    ``--junit-prefix`` in front), for the run's ``junit.xml``: one name per claim in both files."""
    from _pytest.junitxml import mangle_test_address  # pytest's own rule (it changed in 9.2): equal by construction

    names = mangle_test_address(nodeid)
    prefix = getattr(config.option, "junitprefix", None)
    return {"classname": ".".join(([prefix] if prefix else []) + names[:-1]), "name": names[-1]}


def _report_message(report) -> str:
    """A short reason: the skip reason, or the last lines of the failure."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    text = getattr(report, "longreprtext", "") or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E ")]
    return "\n".join((errors or lines)[-3:])[:2000]


# -- running a claim -------------------------------------------------------------------------------
def _session(config):
    from mechinterp.suite.session import SuiteSession

    if config.stash.get(_SESSION_KEY, None) is None:
        from mechinterp.suite.runfolder import record_settings

        settings = config.stash[_SETTINGS_KEY]
        try:  # made here, not at start-up: a session that runs no claims creates no cache folder
            settings.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            pytest.exit(f"--mi-cache-dir {settings.cache_dir}: cannot create the cache folder: {err}",
                        returncode=pytest.ExitCode.USAGE_ERROR)
        try:  # before this process's first claim runs: the settings its rows are made with
            record_settings(Path(config.stash[_RUN_DIR_KEY]), settings)
        except OSError as err:
            pytest.exit(f"--mi-report {config.stash[_RUN_DIR_KEY]}: cannot write the run folder: {err}",
                        returncode=pytest.ExitCode.USAGE_ERROR)
        worker = _worker_id(config) or "main"
        sess = SuiteSession(config.stash[_SETTINGS_KEY], config.stash[_RUN_DIR_KEY], worker, _progress(config))
        sess.registry = _registry(config)
        sess.claim_files = config.stash.setdefault(_CLAIM_FILES_KEY, [])  # the users' claim files collected
        config.stash[_SESSION_KEY] = sess
    return config.stash[_SESSION_KEY]


def _progress(config):
    """Progress lines for this process's claims (``--progress``), written past pytest's output capture."""
    from mechinterp.suite.progress import Progress

    interval = config.stash[_SETTINGS_KEY].progress
    if interval is None:
        return None
    worker = _worker_id(config)
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if terminal is not None and not worker:
                terminal.write_line(line)
            else:  # an xdist worker: its stderr is the controller's
                sys.stderr.write(line + "\n")
                sys.stderr.flush()

    total = None if worker else config.stash.get(_CLAIM_COUNT_KEY, None)
    return Progress(write, interval, prefix=f"mechinterp {worker}" if worker else "mechinterp", total=total)


def _record_evidence(config, node, result) -> None:
    """Give pytest's own junit the claim's evidence: as the test's captured stdout (its ``<system-out>`` with
    ``junit_logging = system-out``; shown by ``-rA`` and beside a failure), and as testcase properties only
    for ``junit_family = legacy``/``xunit1``: the common schema xunit2 targets has none in a testcase."""
    from mechinterp.report.junit import claim_text, junit_properties

    node.add_report_section("call", "stdout", claim_text(result) + "\n")
    try:
        family = config.getini("junit_family")
    except ValueError:  # pytest's junitxml plugin is off (-p no:junitxml)
        return
    if family in ("legacy", "xunit1"):
        node.user_properties.extend(junit_properties(result))


def run_claim(config, claim, node) -> None:
    """Run a claim (the test ``node``) and turn its decision into the test outcome (pass / fail / xfail / skip)."""
    from mechinterp.suite.runner import ClaimSkipped
    from mechinterp.suite.session import ModelUnavailable

    sess = _session(config)
    strict = config.stash[_SETTINGS_KEY].strict
    try:
        outcome = sess.check(claim, sess.registry)
    except ClaimSkipped as err:
        reason = str(err)
        outcome = None
    except ModelUnavailable as err:  # one clear error for the whole run, not one traceback per claim
        pytest.exit(str(err), returncode=pytest.ExitCode.USAGE_ERROR)
    if outcome is None:
        if strict:  # CI: a claim that was not decided is not a pass
            pytest.fail(f"skipped (a failure under --mi-strict): {reason}", pytrace=False)
        pytest.skip(reason)
    _record_evidence(config, node, outcome.result())
    decision = outcome.decision.value
    if decision == "refuted":
        pytest.fail(f"refuted: {outcome.summary()}", pytrace=False)
    if decision == "inconclusive":
        if strict:
            pytest.fail(f"inconclusive (a failure under --mi-strict): {outcome.summary()}", pytrace=False)
        pytest.xfail(f"inconclusive: {outcome.summary()}")


@pytest.fixture
def check_claim(request):
    """``check_claim(claim)``: run, judge and decide a claim; the decision is the test outcome."""
    return lambda claim: run_claim(request.config, claim, request.node)


# -- user claims as data files -----------------------------------------------------------------------
def pytest_collect_file(file_path: Path, parent):
    """Collect ``*.claims.toml`` files: each claim in them becomes a test."""
    if file_path.name.endswith(".claims.toml"):
        return ClaimFile.from_parent(parent, path=file_path)
    return None


class ClaimFile(pytest.File):
    """A user's claim file (same schema as the shipped ``mechinterp/claims/registry.toml``)."""

    def collect(self):
        """One ``ClaimItem`` per claim in the file (its claims join the session's registry), each
        checked first: its id new to the session, its sites on the model (see :func:`check_claim_sites`)."""
        from mechinterp.claims import load_registry

        registry = _registry(self.config)
        earlier = self.config.stash.setdefault(_CLAIM_FILES_KEY, [])
        # read after the paper's registry and the run's earlier claim files: its relations may name their
        # claims, and an id one of them defines is one error naming where
        claims = load_registry(self.path, after=list(earlier))
        earlier.append(str(self.path))
        for claim in claims:
            check_claim_sites(self.config, claim, self.path)
        for claim in claims:
            registry[claim.id] = claim
            item = ClaimItem.from_parent(self, name=claim_test_id(claim), claim=claim)
            for mark in claim_marks(claim):
                item.add_marker(mark)
            yield item

    def repr_failure(self, excinfo):
        """A bad claim file is one message naming the file and what is wrong, not a traceback."""
        if excinfo.errisinstance((ClaimFileError, ValueError)):
            return f"{self.path}: {excinfo.value}" if str(self.path) not in str(excinfo.value) else str(excinfo.value)
        return super().repr_failure(excinfo)


class ClaimFileError(ValueError):
    """A claim file that cannot run: a duplicate claim id, or a site that is not on the model."""


def check_claim_sites(config, claim, path) -> None:
    """``ClaimFileError`` when a site of ``claim`` exists neither on ``--model`` nor on the paper's model
    (a typo such as ``double.99`` would otherwise fail, or be remapped, only once it runs). A model that
    is not on this machine is checked when it loads."""
    from mechinterp.resources import default_model
    from mechinterp.suite.prereqs import outline_runner
    from mechinterp.suite.runner import ClaimSkipped

    spec = config.stash[_SETTINGS_KEY].model or default_model(claim.family)  # the model the claim will run on
    runner = outline_runner(spec, config.__dict__.setdefault("_mechinterp_outlines", {}))
    if runner is None:
        return
    try:
        runner.check_sites(claim)
    except ClaimSkipped:
        return  # a paper site this model has no counterpart of: skipped with its reason when it runs
    except ValueError as err:
        raise ClaimFileError(f"{path}: claim {claim.id!r}: {err}") from None


class ClaimItem(pytest.Item):
    """One claim from a user's claim file."""

    def __init__(self, *, claim, **kwargs):
        super().__init__(**kwargs)
        self.claim = claim

    def runtest(self) -> None:
        """Run, judge and decide the claim."""
        run_claim(self.config, self.claim, self)

    def reportinfo(self):
        """Where the claim comes from, for pytest's reports."""
        return self.path, None, f"claim {self.claim.id}"


# -- the run folder and reports ----------------------------------------------------------------------
def pytest_sessionfinish(session, exitstatus) -> None:
    """Workers save their metadata; the controller merges every part into one run folder and reports."""
    config = session.config
    if _USAGE_ERROR_KEY in config.stash:  # under xdist: a worker refused the -m selection
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
    run_dir: Path = config.stash.get(_RUN_DIR_KEY, None)
    sess = config.stash.get(_SESSION_KEY, None)
    if run_dir is None:
        return
    if sess is not None:
        sess.write_metadata()
    outcomes = config.stash.get(_OUTCOMES_KEY, None)
    if outcomes:
        from mechinterp.suite.runfolder import record_settings
        from mechinterp.suite.session import write_outcomes

        record_settings(run_dir, config.stash[_SETTINGS_KEY])
        # a claim still saved as crashed was interrupted (Ctrl-C), not crashed: left out, as if never run
        finished = {cid: o for cid, o in outcomes.items() if not o.get("crashed")}
        write_outcomes(run_dir, _worker_id(config) or "main", finished)
    if _worker_id(config) or not (run_dir / PARTS).is_dir():
        return
    from mechinterp.suite.report import finish_run

    config._mechinterp_report = finish_run(run_dir)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Say where the run's reports are, and each damaged cache entry the run found (path and reason)."""
    if _USAGE_ERROR_KEY in config.stash:
        terminalreporter.write_line(f"ERROR: {config.stash[_USAGE_ERROR_KEY]}", red=True)
    report = getattr(config, "_mechinterp_report", None)
    if report:
        terminalreporter.write_sep("-", "mechinterp")
        terminalreporter.write_line(f"run folder: {report['run_dir']}")
        terminalreporter.write_line(f"report:     {report['html']}")
        terminalreporter.write_line(f"junit:      {report['junit']}")
        terminalreporter.write_line("decisions:  " + ", ".join(f"{k} {v}" for k, v in sorted(report["decisions"].items())))
        for d in report.get("damaged", []):  # every worker's, pooled in run.json: each once, with path and reason
            terminalreporter.write_line(f"damaged cache entry: {d['path']}: {d['reason']}", yellow=True)
