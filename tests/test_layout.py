"""The package's shape: imports point one way (models ← data ← eval; train and eval apart; recipes, serve and the CLI
on top), and test modules have unique names (the suite imports them by basename)."""

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "mmlink"
# package -> the mmlink packages it must not import (at module level or inside a function)
FORBIDDEN = {
    "models": {"data", "eval", "train", "recipes", "serve"},
    "data": {"eval", "train", "recipes", "serve"},
    "eval": {"train", "recipes", "serve"},
    "train": {"eval", "recipes", "serve"},
    "serve": {"train", "recipes"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def test_imports_point_one_way():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        package = path.relative_to(SRC).parts[0]
        for line, name in _imports(path):
            parts = name.split(".")
            if parts[0] == "mmlink" and len(parts) > 1 and parts[1] in FORBIDDEN.get(package, ()):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {package} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_a_forbidden_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from mmlink.eval.harness import evaluate\n")
    assert (2, "mmlink.eval.harness") in _imports(probe)


def test_test_modules_have_unique_names():
    names = Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert not [n for n, k in names.items() if k > 1], names.most_common(3)



def test_no_source_file_grows_past_about_700_lines():
    long = {str(p.relative_to(ROOT)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 720}
    assert not long, f"split these by role: {long}"
