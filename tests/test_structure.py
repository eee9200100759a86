"""The package's shape: one concept per module, dependencies one way, no import dodges inside functions."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jaxcifar"
# Imports inside functions that are allowed: heavy or optional dependencies a code path alone needs.
LATE_IMPORTS = {
    ("augment", "albumentations"),  # the albumentations path only (and its online check is switched off first)
    ("augment", "cv2"),
    ("console", "tqdm.auto"),  # terminals only
    ("records", "jax"),  # data and augment use records and import no JAX
    ("data", "tensorflow_datasets"),  # --data tfds only
    ("data", "PIL"),  # image-folder sources only
    ("bench.benchmark", "jaxcifar.bench.torch_reference"),  # where torch is installed
    ("bench.cpu_variants", "jaxcifar.bench.torch_reference"),
    ("bench.conv_layers", "jaxcifar.bench.torch_reference"),
}


def modules() -> dict[str, ast.Module]:
    return {
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts): ast.parse(p.read_text())
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py"
    }


def imported(tree: ast.AST) -> list[tuple[str, bool]]:
    """(module, inside a function) for every import of the tree."""
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((a.name, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.extend((f"{child.module}.{a.name}", in_function) for a in child.names)
            visit(child, inner)

    visit(tree, False)
    return found


def local_graph() -> dict[str, set[str]]:
    trees = modules()
    graph = {}
    for name, tree in trees.items():
        deps = set()
        for module, _ in imported(tree):
            if module.startswith("jaxcifar."):
                target = module[len("jaxcifar.") :]
                while target and target not in trees:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = local_graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            assert state.get(dep) != 1, "import circle: " + " -> ".join([*path, node, dep])
            if dep not in state:
                visit(dep, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_imports_inside_functions_are_only_heavy_optional_ones():
    def allowed(name, module):
        return any(name == n and (module == m or module.startswith(m + ".")) for n, m in LATE_IMPORTS)

    late = {(name, module) for name, tree in modules().items() for module, inside in imported(tree) if inside}
    assert {pair for pair in late if not allowed(*pair)} == set()


def test_the_layers_point_one_way():
    graph = local_graph()
    # The driver is imported by nothing in the package but the multi-run tools.
    assert {m for m, deps in graph.items() if "train" in deps} == {"seeds", "rules_study", "jpeg_study"}
    assert "train" not in graph["lr_range"] and "train" not in graph["gradcam"]
    assert graph["model"] == set() and graph["schedule"] <= {"plots", "records", "errors"}
    assert {"steps", "loader"} <= graph["lr_range"] and "checkpoint" in graph["gradcam"]
    for numpy_only in ("data", "augment", "loader"):
        assert not {"steps", "train", "checkpoint", "model"} & graph[numpy_only], numpy_only


def commands():
    from jaxcifar import augment, evidence, gradcam, investigation, lr_range, model, rules_study, schedule, seeds, train
    from jaxcifar.bench import augment_speed, benchmark, cpu_variants, ctrl_c, device_check

    return [
        *(train, lr_range, gradcam, schedule, augment, model, seeds, evidence, investigation, rules_study),
        *(benchmark, augment_speed, device_check, ctrl_c, cpu_variants),
    ]


def parser_of(main, monkeypatch):
    """The argparse parser a command's main builds (caught before it parses)."""
    import argparse

    import pytest

    caught = {}

    def catch(self, *args, **kwargs):
        caught["parser"] = self
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(SystemExit):
        main([])
    return caught["parser"]


def test_every_flag_of_every_command_says_what_it_does_and_its_default(monkeypatch):
    import argparse

    for module in commands():
        parser = parser_of(module.main, monkeypatch)
        assert parser.description and not parser.description.startswith(module.__name__), module.__name__
        for action in parser._actions:
            if action.dest == "help" or action.help == argparse.SUPPRESS:  # help and hidden internals
                continue
            text = action.help or ""
            documented = "default" in text or "required" in text or action.required or not action.option_strings
            assert text and documented, f"{module.__name__}: {action.option_strings or action.dest}"


def test_the_lr_range_test_lists_only_its_own_flags(monkeypatch):
    from jaxcifar import lr_range

    flags = {o for a in parser_of(lr_range.main, monkeypatch)._actions for o in a.option_strings}
    assert {"--lr-range-iters", "--lr-range-rule", "--batch-size", "--width", "--data"} <= flags
    assert not flags & {"--epochs", "--resume", "--tta", "--lr-range-json", "--peak-epoch", "--checkpoint-every"}


def run_python(code: str, xla_flags: str | None) -> str:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


CONV_HLO = (
    "import jax, jax.numpy as jnp; "
    "x = jnp.zeros((8, 16, 16, 32)); k = jnp.zeros((3, 3, 32, 32)); "
    "f = jax.jit(lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME', "
    "dimension_numbers=('NHWC', 'HWIO', 'NHWC'))); "
    "print('__ynn_fusion' in f.lower(x, k).compile().as_text())"
)


def test_importing_jaxcifar_switches_ynnpack_off_on_cpu_and_keeps_the_users_flags():
    # YNNPACK's convolution gradients halved the CPU step's speed at batch 512 (jaxcifar/__init__.py).
    assert run_python(CONV_HLO, None).strip() == "True"  # JAX's default: YNNPACK
    assert run_python("import jaxcifar; " + CONV_HLO, None).strip() == "False"
    shown = "import jaxcifar, os; print(os.environ['XLA_FLAGS'])"
    flags = run_python(shown, "--xla_force_host_platform_device_count=2").split()
    assert flags == ["--xla_force_host_platform_device_count=2", "--xla_cpu_experimental_ynn_fusion_type="]
    own = "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
    assert run_python(shown, own).split() == [own]  # a user's own choice stays
    kept = run_python("import os; os.environ['JAXCIFAR_YNNPACK'] = '1'; import jaxcifar; " + CONV_HLO, None)
    assert kept.strip() == "True"  # JAXCIFAR_YNNPACK=1: JAX's default


def test_the_commands_start_again_once_with_huge_pages_on_linux(monkeypatch):
    import os
    import subprocess
    import sys

    import jaxcifar

    calls = []
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("JAXCIFAR_HUGE_PAGES", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    jaxcifar.exec_with_huge_pages("jaxcifar.train", ["--quick"], execve=lambda *a: calls.append(a))
    ((path, argv, env),) = calls
    assert path == sys.executable and argv == [sys.executable, "-m", "jaxcifar.train", "--quick"]
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1" and env["PATH"] == os.environ["PATH"]
    calls.clear()
    for name, value in (("GLIBC_TUNABLES", "glibc.malloc.arena_max=2"), ("JAXCIFAR_HUGE_PAGES", "0")):
        with monkeypatch.context() as m:  # the user's own tunables, or the switch off: no restart
            m.setenv(name, value)
            jaxcifar.exec_with_huge_pages("jaxcifar.train", [], execve=lambda *a: calls.append(a))
    monkeypatch.setattr(sys, "platform", "darwin")
    jaxcifar.exec_with_huge_pages("jaxcifar.train", [], execve=lambda *a: calls.append(a))
    assert calls == []
    monkeypatch.undo()
    if sys.platform == "linux":  # the real restart: the module runs in the same process, with the variable
        code = "from jaxcifar import exec_with_huge_pages as e; e('jaxcifar.model', ['--width', '4'])"
        env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "JAXCIFAR_HUGE_PAGES")}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert "Total params: 26,340" in done.stdout
