"""How often the whole run config is handed down, followed from `train.train_and_evaluate`.

    python -m research.config_walk            # today's package
    python -m research.config_walk --source OLD_CHECKOUT

Walks the call graph of the installed package's source from train_and_evaluate (calls
to functions of jaxcifar's own modules, by name) and counts the call sites in the
functions it reaches that pass the TrainConfig itself (an argument named `config`)
to another function: each is a place where a lower layer reads the top-level settings
again instead of the few values it needs. Prints the count, the files, and each site.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _functions(package: Path) -> dict[tuple[str, str], ast.FunctionDef]:
    """(module, function name) -> its definition, methods included under their own names."""
    out = {}
    for file in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.FunctionDef):
                out.setdefault((file.stem, node.name), node)
    return out


def _imports(package: Path) -> dict[str, dict[str, str]]:
    """module -> {local name: module it names (for `from jaxcifar import x` / `import ... as`) or
    module of an imported function (for `from jaxcifar.m import f`)}."""
    out: dict[str, dict[str, str]] = {}
    for file in sorted(package.glob("*.py")):
        names: dict[str, str] = {}
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "jaxcifar":
                names.update({a.asname or a.name: a.name for a in node.names})
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxcifar."):
                names.update({a.asname or a.name: node.module.split(".")[1] for a in node.names})
        out[file.stem] = names
    return out


def walk(package: Path) -> list[str]:
    """ "module.function: callee" for every call passing `config` along, reachable from train_and_evaluate."""
    functions, imports = _functions(package), _imports(package)
    seen, todo, sites = set(), [("train", "train_and_evaluate")], []
    while todo:
        key = todo.pop()
        if key in seen or key not in functions:
            continue
        seen.add(key)
        module = key[0]
        for node in ast.walk(functions[key]):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                target = (imports[module].get(func.value.id, ""), func.attr)
            elif isinstance(func, ast.Name):
                target = (imports[module].get(func.id, module), func.id)
            else:
                continue
            todo.append(target)
            args = [*node.args, *(k.value for k in node.keywords)]
            if any(isinstance(a, ast.Name) and a.id == "config" for a in args) and target in functions:
                sites.append(f"{module}.{key[1]}: {target[0]}.{target[1]}")
    return sorted(sites)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m research.config_walk", description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="a checkout whose jaxcifar/ to walk (default: this)")
    args = parser.parse_args(argv)
    sites = walk(args.source / "jaxcifar")
    files = sorted({s.split(":")[1].strip().split(".")[0] for s in sites})
    result = {"sites": len(sites), "files": files, "each": sites}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
