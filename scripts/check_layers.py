#!/usr/bin/env python3
"""Checks Hearth's layers: every include under src/ and include/, and every link between our
libraries in src/CMakeLists.txt, against the table in docs/architecture.md ("Layers").

Usage: scripts/check_layers.py [SOURCE_ROOT]   (default: the repository holding this script)

The table is the only statement of the rules: the check reads it from between the markers
`<!-- layers:begin -->` and `<!-- layers:end -->`, so the document and the check cannot drift.
Each rule broken is printed as `file:line: ... [rule]`; the exit status is 1 when any was found,
2 when the table itself is missing or inconsistent, 0 otherwise.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

BEGIN = "<!-- layers:begin -->"
END = "<!-- layers:end -->"
DOC = "docs/architecture.md"
CMAKE = "src/CMakeLists.txt"
SOURCE_SUFFIXES = (".cpp", ".hpp", ".h", ".cc", ".ipp", ".in")
FRONTENDS = "src/frontends/"
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


class TableError(Exception):
    """The table in docs/architecture.md cannot be read or contradicts itself."""


@dataclass
class Layer:
    directory: str  # relative to the source root, e.g. "src/core"
    targets: list[str]
    uses: list[str]
    line: int  # of its row in docs/architecture.md
    below: set[str] = field(default_factory=set)  # every layer it may include, itself excluded

    @property
    def public(self) -> bool:
        # include/ holds the interfaces every layer builds on.
        return self.directory.startswith("include/")

    @property
    def frontend(self) -> bool:
        return self.directory.startswith(FRONTENDS)


@dataclass
class Rules:
    layers: dict[str, Layer]
    # (include prefix, directories allowed to include it)
    restricted: list[tuple[str, set[str]]]


def cells(line: str) -> list[str]:
    parts = line.strip().strip("|").split("|")
    return [p.strip() for p in parts]


def names(cell: str) -> list[str]:
    """The `quoted` names of a cell; anything else in it is prose."""
    return [name.strip().rstrip("/") for name in re.findall(r"`([^`]+)`", cell)]


def read_rules(root: Path) -> Rules:
    path = root / DOC
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TableError(f"{DOC}: cannot read: {e}") from e
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise TableError(f"{DOC}: no table between {BEGIN} and {END}")
    layers: dict[str, Layer] = {}
    restricted: list[tuple[str, set[str]]] = []
    table = None
    first = text.count("\n", 0, start) + 1
    for number, line in enumerate(text[start:end].splitlines(), start=first):
        if not line.strip().startswith("|"):
            table = None
            continue
        row = cells(line)
        if all(re.fullmatch(r":?-+:?", c) for c in row):
            continue
        if table is None:  # a header row names the table
            head = row[0].lower()
            table = "layers" if head.startswith("layer") else "headers" if "header" in head else None
            if table is None:
                raise TableError(f"{DOC}: unknown table headed {row[0]!r}")
            continue
        if table == "layers":
            if len(row) != 3:
                raise TableError(f"{DOC}: a layer row needs 3 cells: {line.strip()}")
            directory = names(row[0])
            if len(directory) != 1:
                raise TableError(f"{DOC}:{number}: a layer row starts with one `directory`")
            layers[directory[0]] = Layer(directory[0], names(row[1]), names(row[2]), number)
        else:
            if len(row) != 2:
                raise TableError(f"{DOC}: a header row needs 2 cells: {line.strip()}")
            for prefix in names(row[0]):
                restricted.append((prefix, set(names(row[1]))))
    if not layers:
        raise TableError(f"{DOC}: the layers table between the markers is empty")
    for layer in layers.values():
        for used in layer.uses:
            if used not in layers:
                raise TableError(f"{DOC}: {layer.directory} uses {used}, which is no layer")
            if layer.frontend and layers[used].frontend:
                raise TableError(f"{DOC}: {layer.directory} uses {used}: one front-end may not "
                                 "use another")
    for _, allowed in restricted:
        for directory in allowed:
            if directory not in layers:
                raise TableError(f"{DOC}: headers allowed in {directory}, which is no layer")
    for layer in layers.values():
        layer.below = closure(layer, layers)
    return Rules(layers, restricted)


def closure(layer: Layer, layers: dict[str, Layer]) -> set[str]:
    seen: set[str] = set()
    stack = [(used, (layer.directory, used)) for used in layer.uses]
    while stack:
        current, chain = stack.pop()
        if current == layer.directory:
            raise TableError(f"{DOC}: the layers form a cycle: {' -> '.join(chain)}")
        if current in seen:
            continue
        seen.add(current)
        stack.extend((used, chain + (used,)) for used in layers[current].uses)
    return seen


def layer_of(relative: str, layers: dict[str, Layer]) -> Layer | None:
    best = None
    for directory, layer in layers.items():
        if relative == directory or relative.startswith(directory + "/"):
            if best is None or len(directory) > len(best.directory):
                best = layer
    return best


def resolve(root: Path, source: Path, kind: str, target: str) -> str | None:
    """The included file relative to the root, or None for a header from outside the repository.
    Includes are spelt from include/ or src/; the build gives each layer's target only its own
    part of src/ (hearth_configure_target's LAYER), but the check looks in all of it, to name what
    the table refuses rather than what the compiler cannot find."""
    candidates = []
    if kind == '"':
        candidates.append(source.parent / target)
    candidates += [root / "include" / target, root / "src" / target]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve().relative_to(root.resolve()).as_posix()
    # Not there (yet): a quoted include still names a file of ours, spelt from src/.
    return f"src/{target}" if kind == '"' else None


def check_includes(root: Path, rules: Rules) -> list[str]:
    problems = []
    files = []
    for top in ("src", "include"):
        if (root / top).is_dir():
            files += [p for p in (root / top).rglob("*") if p.is_file()]
    for path in sorted(files):
        if not path.name.endswith(SOURCE_SUFFIXES):
            continue
        relative = path.relative_to(root).as_posix()
        layer = layer_of(relative, rules.layers)
        if layer is None:
            problems.append(f"{relative}:1: belongs to no layer [every source file is in a layer "
                            f"of the table in {DOC}]")
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, start=1):
            match = INCLUDE.match(line)
            if match is None:
                continue
            kind, target = match.groups()
            where = f"{relative}:{number}: #include {kind}{target}{'>' if kind == '<' else kind}"
            for prefix, allowed in rules.restricted:
                if target.startswith(prefix) and layer.directory not in allowed:
                    problems.append(f"{where}: {prefix} only in {', '.join(sorted(allowed))} "
                                    "[stream headers stay in the network layer]")
            included = resolve(root, path, kind, target)
            if included is None:
                continue
            other = layer_of(included, rules.layers)
            if other is None:
                problems.append(f"{where}: {included} belongs to no layer [includes stay "
                                "within the layers]")
            elif other is layer or other.public or other.directory in layer.below:
                continue
            elif layer.frontend and other.frontend:
                problems.append(f"{where}: {layer.directory} includes {other.directory} "
                                "[one front-end may not include another]")
            else:
                allowed = ", ".join(sorted(layer.below)) or "nothing else"
                problems.append(f"{where}: {layer.directory} includes {other.directory}, not "
                                f"below it (it may include include/, itself and {allowed}) "
                                "[a layer includes only itself and the layers below it]")
    return problems


def cmake_commands(text: str, command: str) -> list[tuple[int, list[str]]]:
    """(line, arguments) of each call of `command` in CMake source."""
    # Bracket arguments and comments first, keeping line numbers: they may hold anything.
    text = re.sub(r"\[(=*)\[.*?\]\1\]", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"#[^\n]*", "", text)
    out = []
    for match in re.finditer(rf"\b{command}\s*\(([^)]*)\)", text):
        line = text.count("\n", 0, match.start()) + 1
        out.append((line, match.group(1).split()))
    return out


def check_links(root: Path, rules: Rules) -> list[str]:
    path = root / CMAKE
    if not path.is_file():
        return [f"{CMAKE}:1: missing [the layers' targets are defined there]"]
    text = path.read_text(encoding="utf-8")
    owner = {t: layer for layer in rules.layers.values() for t in layer.targets}
    problems = []
    defined = {}
    for command in ("add_library", "add_executable"):
        for line, args in cmake_commands(text, command):
            if args and args[0].startswith("hearth"):
                defined[args[0]] = line
    for target, line in sorted(defined.items()):
        if target not in owner:
            problems.append(f"{CMAKE}:{line}: {target} is in no layer [every library of ours is "
                            f"a layer of the table in {DOC}]")
    for target, layer in sorted(owner.items()):
        if target not in defined:
            problems.append(f"{DOC}:{layer.line}: {layer.directory}'s target {target} is not defined in "
                            f"{CMAKE} [the table names the build's targets]")
    for line, args in cmake_commands(text, "target_link_libraries"):
        if not args or args[0] not in owner:
            continue
        layer = owner[args[0]]
        for item in args[1:]:
            if item not in owner:
                continue
            other = owner[item]
            if other is layer or other.directory in layer.below:
                continue
            rule = ("one front-end may not include another" if layer.frontend and other.frontend
                    else "a layer links only the layers below it")
            problems.append(f"{CMAKE}:{line}: {args[0]} links {item} ({other.directory} is not "
                            f"below {layer.directory}) [{rule}]")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    root = Path(argv[1]) if len(argv) == 2 else Path(__file__).resolve().parent.parent
    try:
        rules = read_rules(root)
    except TableError as e:
        print(f"check_layers: {e}", file=sys.stderr)
        return 2
    problems = check_includes(root, rules) + check_links(root, rules)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_layers: {len(problems)} problem(s); the layers are in {DOC} (Layers)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
