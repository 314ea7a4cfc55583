#!/usr/bin/env python3
"""Mutation check of the test suite: the driver behind scripts/mutation-check.sh.

Applies the mutations of a list (scripts/mutations.txt by default) to the sources one at a time,
builds the tests, runs the tests a developer would run for that code, and records whether the
suite notices: "killed" (the tests fail or crash), "survived" (they pass), "timeout", or
"compile error" (the mutant does not build; not a kill, fix the mutation). Every mutated file is
restored from a copy kept in memory and on disk (.build/mutation-check/backup, restored by the
next run if this one was killed outright), on success, failure, Ctrl-C, SIGTERM and SIGHUP, and
checked afterwards: same bytes as before and, for a file that was clean, `git diff --quiet`.

The list format (one block per mutation, blank lines between blocks, `#` comments):

    id: norm-layer-pullback-no-centering
    file: Sources/LongConvTensors/Ops/Normalization.swift
    filter: LongConvTensorsTests.NormalizationTests
    filter: LongConvTensorsTests.GradientCheckTests      (optional further filters)
    what: LayerNorm's pullback without the mean projection
    from: for j in 0..<d { dr[j] -= m }
    to: for j in 0..<d { dr[j] -= 0 * m }

`from` and `to` are literal text (everything after "from: " / "to: " on the line); `from` must
occur exactly once in `file`, or the whole list is rejected before anything is touched, so that a
list whose code has moved on fails loudly instead of testing nothing. Each `filter` is passed to
`swift test --filter` (a regular expression on `Target.Suite/test()`); each must match at least
one test of `swift test list`.

Slow by design (a debug build of the tests per mutation): run it by hand, never in CI.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Mutation:
    id: str
    file: str
    filters: list[str]
    what: str
    original: str
    replacement: str
    line: int = 0  # where the list defines it, for messages


@dataclass
class Outcome:
    mutation: Mutation
    result: str  # killed, survived, timeout, compile error, not run
    detail: str = ""  # the failing tests, or why
    build_seconds: float = 0
    test_seconds: float = 0
    source_line: int = 0  # line of the mutated text in the file


class Interrupted(Exception):
    pass


# MARK: List


def parse_list(path: Path) -> list[Mutation]:
    keys = {"id", "file", "filter", "what", "from", "to"}
    mutations: list[Mutation] = []
    block: dict[str, list[str]] = {}
    start = 0
    problems: list[str] = []

    def finish():
        nonlocal block
        if not block:
            return
        missing = [k for k in ("id", "file", "filter", "what", "from", "to") if k not in block]
        if missing:
            problems.append(f"{path}:{start}: block lacks {', '.join(missing)}")
        else:
            for k in ("id", "file", "what", "from", "to"):
                if len(block[k]) != 1:
                    problems.append(f"{path}:{start}: '{k}' given {len(block[k])} times")
            mutations.append(
                Mutation(
                    id=block["id"][0].strip(),
                    file=block["file"][0].strip(),
                    filters=[f.strip() for f in block["filter"]],
                    what=block["what"][0].strip(),
                    original=block["from"][0],
                    replacement=block["to"][0],
                    line=start,
                )
            )
        block = {}

    for number, raw in enumerate(path.read_text().splitlines(), 1):
        if raw.strip() == "":
            finish()
            continue
        if raw.lstrip().startswith("#"):
            continue
        match = re.match(r"^([a-z]+): ?(.*)$", raw)
        if not match or match.group(1) not in keys:
            problems.append(f"{path}:{number}: expected 'key: value' with key in {sorted(keys)}, got {raw!r}")
            continue
        if not block:
            start = number
        block.setdefault(match.group(1), []).append(match.group(2))
    finish()
    seen: set[str] = set()
    for m in mutations:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", m.id):
            problems.append(f"{path}:{m.line}: id {m.id!r} must be letters, digits, '-', '_' or '.'")
        if m.id in seen:
            problems.append(f"{path}:{m.line}: duplicate id {m.id}")
        seen.add(m.id)
        if m.original == m.replacement:
            problems.append(f"{path}:{m.line}: {m.id}: 'from' and 'to' are the same text")
        if m.original.strip() == "":
            problems.append(f"{path}:{m.line}: {m.id}: empty 'from'")
        if Path(m.file).is_absolute() or ".." in Path(m.file).parts:
            problems.append(f"{path}:{m.line}: {m.id}: file must be a path inside the package, got {m.file}")
        for f in m.filters:
            if f == "":
                problems.append(f"{path}:{m.line}: {m.id}: empty filter")
                continue
            try:
                re.compile(f)
            except re.error as error:
                problems.append(f"{path}:{m.line}: {m.id}: filter {f!r} is not a regular expression ({error})")
    if not mutations:
        problems.append(f"{path}: no mutations")
    if problems:
        fail("the mutation list is malformed:\n  " + "\n  ".join(problems))
    return mutations


def check_sources(root: Path, mutations: list[Mutation]) -> dict[str, int]:
    """Every `from` text occurs exactly once in its file; returns each mutation's line number."""
    problems: list[str] = []
    lines: dict[str, int] = {}
    for m in mutations:
        path = root / m.file
        if not path.is_file():
            problems.append(f"{m.id}: no such file {m.file}")
            continue
        text = path.read_text()
        count = text.count(m.original)
        if count != 1:
            problems.append(
                f"{m.id}: the original text occurs {count} times in {m.file} (must be exactly once): {m.original!r}"
            )
            continue
        lines[m.id] = text[: text.index(m.original)].count("\n") + 1
    if problems:
        fail("the mutation list does not match the sources (update scripts/mutations.txt):\n  " + "\n  ".join(problems))
    return lines


# MARK: Processes


CHILD: subprocess.Popen | None = None


def run(cmd: list[str], cwd: Path, log: Path, timeout: float | None) -> tuple[int | None, float, str]:
    """Runs `cmd` in its own process group, output to `log`; (status or None on timeout, seconds, output)."""
    global CHILD
    started = time.monotonic()
    with open(log, "w") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        CHILD = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            status: int | None = CHILD.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_child()
            status = None
        finally:
            CHILD = None
    return status, time.monotonic() - started, log.read_text(errors="replace")


def kill_child():
    global CHILD
    child = CHILD
    if child is None or child.poll() is not None:
        return
    # Only the group this script started (start_new_session): the build or test run and its children.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def on_signal(number, _frame):
    raise Interrupted(signal.Signals(number).name)


# MARK: Backups


class Restorer:
    """Keeps the original bytes of the file being mutated, in memory and on disk."""

    def __init__(self, root: Path, state: Path):
        self.root = root
        self.dir = state / "backup"
        self.current: tuple[Path, bytes, bool] | None = None

    def recover_stale(self):
        manifest = self.dir / "manifest.json"
        if not manifest.exists():
            return
        entry = json.loads(manifest.read_text())
        target = self.root / entry["file"]
        saved = (self.dir / "original").read_bytes()
        if hashlib.sha256(saved).hexdigest() != entry["sha256"]:
            fail(f"a stale backup in {self.dir} is damaged; restore {entry['file']} by hand (git checkout)")
        if target.read_bytes() != saved:
            target.write_bytes(saved)
            print(f"restored {entry['file']} from a previous run that was stopped before it could", flush=True)
        manifest.unlink()

    def save(self, relative: str):
        path = self.root / relative
        original = path.read_bytes()
        clean = git_clean(self.root, relative)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "original").write_bytes(original)
        (self.dir / "manifest.json").write_text(
            json.dumps({"file": relative, "sha256": hashlib.sha256(original).hexdigest()})
        )
        self.current = (path, original, clean)

    def restore(self):
        if self.current is None:
            return
        # No signal handler may run between writing the file and forgetting the backup.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
        try:
            self._restore()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def _restore(self):
        path, original, clean = self.current
        # The original bytes with a new modification time, so that the next build recompiles the
        # file (putting the old time back would leave the mutant's objects in .build).
        path.write_bytes(original)
        if path.read_bytes() != original:
            fail(f"could not restore {path}; its original is in {self.dir / 'original'}")
        relative = str(path.relative_to(self.root))
        if clean and not git_clean(self.root, relative):
            fail(f"{relative} differs from git after restoring it; its original is in {self.dir / 'original'}")
        (self.dir / "manifest.json").unlink(missing_ok=True)
        self.current = None


def git_clean(root: Path, relative: str) -> bool:
    return subprocess.run(["git", "diff", "--quiet", "--", relative], cwd=root).returncode == 0


# MARK: Tests


def failing_tests(xml_path: Path, output: str) -> list[str]:
    names: list[str] = []
    for path in (xml_path, xml_path.with_name(xml_path.stem + "-swift-testing.xml")):
        if not path.exists():
            continue
        try:
            for case in ET.parse(path).getroot().iter("testcase"):
                if case.find("failure") is not None or case.find("error") is not None:
                    suite = case.get("classname", "").split(".")[-1]
                    names.append(f"{suite}/{case.get('name', '?')}" if suite else case.get("name", "?"))
        except ET.ParseError:
            pass
    if not names:
        for match in re.finditer(r"✘ Test (.+?) (?:failed|recorded an issue)", output):
            if match.group(1) not in names:
                names.append(match.group(1))
    if not names:
        crash = re.search(r"(unexpected signal code \d+|Fatal error: [^\n]*|Precondition failed[^\n]*)", output)
        if crash:
            names.append("crash: " + crash.group(1)[:100])
    return list(dict.fromkeys(names))


def filter_args(filters: list[str]) -> list[str]:
    args: list[str] = []
    for f in filters:
        args += ["--filter", f]
    return args


def list_tests(swift: str, root: Path, logs: Path) -> list[str]:
    status, _, output = run([swift, "test", "list", "--skip-build"], root, logs / "list.log", 600)
    if status != 0:
        fail(f"`swift test list` failed; see {logs / 'list.log'}")
    return [line.strip() for line in output.splitlines()[1:] if re.match(r"^\S+\.\S+/\S+", line.strip())]


# MARK: Report


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def summary_counts(outcomes: list[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.result] = counts.get(o.result, 0) + 1
    return counts


def markdown(root: Path, outcomes: list[Outcome], command: str, started: datetime.datetime, seconds: float) -> str:
    counts = summary_counts(outcomes)
    scored = [o for o in outcomes if o.result in ("killed", "survived", "timeout")]
    killed = counts.get("killed", 0)
    lines = [
        "| id | file | what | result | killed by |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        m = o.mutation
        where = f"`{m.file.removeprefix('Sources/')}:{o.source_line}`"
        detail = o.detail.replace("|", "\\|")
        lines.append(f"| `{m.id}` | {where} | {m.what} | **{o.result}** | {detail} |")
    survivors = [o.mutation.id for o in outcomes if o.result == "survived"]
    head = [
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: `{git(root, 'rev-parse', '--short=12', 'HEAD')}` ({git(root, 'rev-parse', '--abbrev-ref', 'HEAD')})",
        f"- CPU: {cpu_name()}, {os.cpu_count()} logical cores",
        f"- command: `{command}`",
        f"- wall time: {seconds / 60:.1f} min",
        f"- **{killed} killed of {len(scored)}** mutants that build"
        + (f" ({counts.get('timeout', 0)} timeout)" if counts.get("timeout") else "")
        + (f"; {counts['compile error']} did not compile (not counted)" if counts.get("compile error") else "")
        + (f"; {counts['not run']} not run" if counts.get("not run") else ""),
        f"- survivors: {', '.join(f'`{s}`' for s in survivors) if survivors else 'none'}",
        "",
    ]
    return "\n".join(head + lines) + "\n"


def fail(message: str):
    print(f"mutation-check: {message}", file=sys.stderr)
    raise SystemExit(2)


# MARK: Main


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/mutation-check.sh",
        description="Apply each mutation of a list, build the tests and run the relevant ones; "
        "report which mutants the suite kills. Slow: never run in CI.",
    )
    parser.add_argument("--root", type=Path, required=True, help=argparse.SUPPRESS)
    parser.add_argument("--mutations", type=Path, help="the list (default scripts/mutations.txt)")
    parser.add_argument("--only", action="append", default=[], metavar="ID[,ID...]",
                        help="run only these mutations (repeatable, comma-separated)")
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    parser.add_argument("--check", action="store_true",
                        help="only check the list against the sources (each text found once) and exit")
    parser.add_argument("--report", type=Path, help="Markdown report (default .build/mutation-check/report.md)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip checking that the unmutated tree passes the selected filters")
    parser.add_argument("--test-timeout", type=float, default=0,
                        help="seconds per test run (default: 4x the baseline run's time plus 60 s, or 600)")
    parser.add_argument("--build-timeout", type=float, default=1800, help="seconds per build (default 1800)")
    args = parser.parse_args()

    root = args.root.resolve()
    os.chdir(root)
    list_path = (args.mutations or root / "scripts" / "mutations.txt").resolve()
    mutations = parse_list(list_path)
    # One run per tree (two would mutate and build the same sources); whoever holds the lock
    # first puts back a file that a run killed outright (SIGKILL) left mutated.
    state = root / ".build" / "mutation-check"
    state.mkdir(parents=True, exist_ok=True)
    lock = open(state / "lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = True
    except BlockingIOError:
        locked = False
    if locked:
        Restorer(root, state).recover_stale()
    else:
        print("mutation-check: a run is in progress in this tree; a file it has mutated may not match",
              file=sys.stderr)
    lines = check_sources(root, mutations)

    if args.only:
        wanted = [i for group in args.only for i in group.split(",") if i]
        unknown = [i for i in wanted if i not in {m.id for m in mutations}]
        if unknown:
            fail(f"no mutation with id {', '.join(unknown)} (see --list)")
        mutations = [m for m in mutations if m.id in wanted]

    if args.list:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `--list | head` ends quietly
        for m in mutations:
            print(f"{m.id}\t{m.file}:{lines[m.id]}\t{' '.join(m.filters)}\t{m.what}")
        return 0
    if args.check:
        print(f"{len(mutations)} mutations; every original text occurs exactly once in its file")
        return 0

    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    report = (args.report or state / "report.md").resolve()
    swift = shutil.which("swift") or "/opt/swift/usr/bin/swift"
    command = "scripts/mutation-check.sh " + " ".join(
        a for a in sys.argv[1:] if not a.startswith("--root") and a != str(args.root)
    )
    started_at = datetime.datetime.now(datetime.timezone.utc)
    started = time.monotonic()

    if not locked:
        fail(f"another mutation check is running in {root}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    restorer = Restorer(root, state)
    outcomes: list[Outcome] = []
    try:
        # Baseline: the unmutated tree builds, every filter selects tests, and they pass.
        print(f"building the unmutated tree ({swift} build --build-tests) ...", flush=True)
        status, seconds, _ = run([swift, "build", "--build-tests"], root, logs / "baseline.build.log",
                                 args.build_timeout)
        if status != 0:
            fail(f"the unmutated tree does not build; see {logs / 'baseline.build.log'}")
        tests = list_tests(swift, root, logs)
        filters = list(dict.fromkeys(f for m in mutations for f in m.filters))
        empty = [f for f in filters if not any(re.search(f, t) for t in tests)]
        if empty:
            fail("these filters select no test (see `swift test list`): " + ", ".join(empty))
        baseline = 0.0
        if not args.no_baseline:
            # One run of every selected filter together: the unmutated tree must pass them all.
            print(f"baseline: {len(filters)} filters on the unmutated tree ...", end=" ", flush=True)
            status, baseline, _ = run([swift, "test", "--skip-build", *filter_args(filters)], root,
                                      logs / "baseline.test.log", 3600)
            print(f"{baseline:.0f} s", flush=True)
            if status != 0:
                fail(f"the unmutated tree fails the selected tests; see {logs / 'baseline.test.log'}")

        for index, m in enumerate(mutations, 1):
            print(f"[{index}/{len(mutations)}] {m.id}: {m.what}", flush=True)
            outcome = Outcome(m, "not run", source_line=lines[m.id])
            outcomes.append(outcome)
            restorer.save(m.file)
            try:
                path = root / m.file
                text = path.read_text()
                path.write_text(text.replace(m.original, m.replacement, 1))
                status, outcome.build_seconds, output = run(
                    [swift, "build", "--build-tests"], root, logs / f"{m.id}.build.log", args.build_timeout)
                if status is None:
                    outcome.result, outcome.detail = "compile error", f"build timed out after {args.build_timeout:.0f} s"
                elif status != 0:
                    error = re.search(r"error: ([^\n]*)", output)
                    outcome.result = "compile error"
                    outcome.detail = (error.group(1)[:120] if error else "build failed")
                else:
                    timeout = args.test_timeout or (4 * baseline + 60 if baseline else 600)
                    xml = logs / f"{m.id}.xunit.xml"
                    for stale in (xml, xml.with_name(xml.stem + "-swift-testing.xml")):
                        stale.unlink(missing_ok=True)
                    status, outcome.test_seconds, output = run(
                        [swift, "test", "--skip-build", *filter_args(m.filters), "--xunit-output", str(xml)],
                        root, logs / f"{m.id}.test.log", timeout)
                    if status is None:
                        outcome.result, outcome.detail = "timeout", f"tests still running after {timeout:.0f} s"
                    elif status == 0:
                        outcome.result = "survived"
                    else:
                        outcome.result = "killed"
                        names = failing_tests(xml, output)
                        outcome.detail = ", ".join(f"`{n}`" for n in names[:3]) + (
                            f" (+{len(names) - 3} more)" if len(names) > 3 else "") if names else f"exit status {status}"
            finally:
                restorer.restore()
            print(f"    -> {outcome.result} (build {outcome.build_seconds:.0f} s, tests {outcome.test_seconds:.0f} s)"
                  + (f": {outcome.detail}" if outcome.detail else ""), flush=True)
    except Interrupted as signal_name:
        kill_child()
        restorer.restore()
        print(f"\nmutation-check: stopped by {signal_name}; {restorer.root} restored", file=sys.stderr)
        if outcomes and outcomes[-1].result == "not run":
            outcomes[-1].detail = "interrupted"
        write_report(report, root, outcomes, command, started_at, time.monotonic() - started)
        return 130
    finally:
        kill_child()
        restorer.restore()

    write_report(report, root, outcomes, command, started_at, time.monotonic() - started)
    counts = summary_counts(outcomes)
    print()
    width = max([len(o.mutation.id) for o in outcomes] + [2])
    print(f"{'id':<{width}}  {'result':<13}  killed by")
    for o in outcomes:
        print(f"{o.mutation.id:<{width}}  {o.result:<13}  {o.detail.replace('`', '')}")
    scored = sum(counts.get(k, 0) for k in ("killed", "survived", "timeout"))
    print(f"\n{counts.get('killed', 0)} killed of {scored} that build; "
          + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + f"\nreport: {report}")
    (state / "results.json").write_text(json.dumps(
        [{"id": o.mutation.id, "file": o.mutation.file, "result": o.result, "detail": o.detail,
          "build_seconds": round(o.build_seconds, 1), "test_seconds": round(o.test_seconds, 1)} for o in outcomes],
        indent=1))
    return 0 if counts.get("compile error", 0) == 0 else 1


def write_report(path: Path, root: Path, outcomes, command, started_at, seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Mutation check\n\n" + markdown(root, outcomes, command, started_at, seconds))


if __name__ == "__main__":
    sys.exit(main())
