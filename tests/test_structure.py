"""The package's shape: one concept per module, dependencies one way, no import dodges inside functions."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "jaxcifar"  # the product: what a user installs and imports
RESEARCH = REPO / "research"  # the studies, benchmarks and evidence beside it, never installed
# Imports inside functions that are allowed: heavy or optional dependencies a code path alone needs.
LATE_IMPORTS = {
    ("augment", "albumentations"),  # the albumentations path only (and its online check is switched off first)
    ("augment", "cv2"),
    ("console", "tqdm.auto"),  # terminals only
    ("runlog", "tensorboardX"),  # --tensorboard only
    ("records", "jax"),  # data and augment use records and import no JAX
    ("data", "tensorflow_datasets"),  # --data tfds only
    ("data", "PIL"),  # image-folder sources only
    ("research.benchmark", "research.torch_reference"),  # where torch is installed
    ("research.cpu_variants", "research.torch_reference"),
    ("research.conv_layers", "research.torch_reference"),
}


def modules() -> dict[str, ast.Module]:
    """Product modules by their name in the package ("train"), research ones as "research.X"."""
    product = {p.stem: ast.parse(p.read_text()) for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    research = {
        f"research.{p.stem}": ast.parse(p.read_text()) for p in RESEARCH.glob("*.py") if p.name != "__init__.py"
    }
    return {**product, **research}


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
            if module.startswith(("jaxcifar.", "research.")):
                target = module.removeprefix("jaxcifar.")
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
    product = {m for m in graph if not m.startswith("research.")}
    assert len(product) == 25 and not {d for m in product for d in graph[m]} - product  # research is never imported
    # The driver is imported by nothing in the package but the seeds command (and by the studies).
    assert {m for m, deps in graph.items() if "train" in deps} == {
        "seeds",
        "research.lr_rules",
        "research.jpeg_quality",
        "research.gpu_all",
    }
    assert "train" not in graph["lr_range"] and "train" not in graph["gradcam"]
    assert graph["model"] == {"kernels"} and graph["kernels"] == set()  # the network and its layers: Flax only
    # The computing modules reach no command line and no figure, through any chain of imports
    # (jaxcifar.show and jaxcifar.flags do that for them).
    trees = modules()

    def reached(name: str) -> set[str]:
        seen, todo = set(), [name]
        while todo:
            for dep in graph[todo.pop()] - seen:
                seen.add(dep)
                todo.append(dep)
        return seen

    computing = ("config", "schedule", "model", "kernels", "steps", "augment", "augment_device", "data", "parallel")
    for name in (*computing, "loader"):
        outside = {m.partition(".")[0] for mod in {name} | reached(name) for m, _ in imported(trees[mod])}
        assert not {"plots", "show", "flags", "train"} & reached(name), name
        assert not {"argparse", "matplotlib"} & outside, name
    assert graph["schedule"] == set() and "data" not in graph["steps"] and "steps" not in graph["checkpoint"]
    assert "checkpoint" not in graph["runlog"]
    assert {"steps", "loader"} <= graph["lr_range"] and "checkpoint" in graph["predict"]
    assert "predict" in graph["gradcam"] and not {"train", "gradcam"} & graph["predict"]  # loads, no training
    for numpy_only in ("data", "augment", "loader"):
        assert not {"steps", "train", "checkpoint", "model"} & graph[numpy_only], numpy_only


def commands():
    from jaxcifar import gradcam, lr_range, predict, seeds, show, train
    from research import (
        benchmark,
        benchmark_augment,
        carry_copy,
        collect_run,
        config_walk,
        conv_layers,
        cpu24_runs,
        cpu_variants,
        ctrl_c_latency,
        device_check,
        jpeg_quality,
        lr_rule_stability,
        lr_rules,
        readme_tables,
        step_digest,
    )

    return [
        *(train, lr_range, gradcam, predict, show, seeds),
        *(benchmark, benchmark_augment, carry_copy, collect_run, config_walk, conv_layers),
        *(cpu24_runs, cpu_variants, ctrl_c_latency, device_check, jpeg_quality, lr_rules, readme_tables, step_digest),
        lr_rule_stability,
    ]  # and research.torch_reference, which needs torch: test_bench reads its flags where torch is


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
        parsers = [parser_of(module.main, monkeypatch)]
        for parser in parsers:
            assert parser.description and not parser.description.startswith(module.__name__), module.__name__
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):  # a subcommand's flags are checked too
                    parsers.extend(action.choices.values())
                if action.dest in ("help", "version") or action.help == argparse.SUPPRESS:  # help, version, internals
                    continue
                text = action.help or ""
                documented = "default" in text or "required" in text or action.required or not action.option_strings
                assert text and documented, f"{module.__name__} {parser.prog}: {action.option_strings or action.dest}"


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


def test_importing_jaxcifar_changes_nothing_and_the_cpu_flags_switch_ynnpack_off():
    # YNNPACK's convolution gradients halved the CPU step's speed at batch 512 (jaxcifar/startup.py).
    from jaxcifar import startup

    knows = startup.jaxlib_knows(startup.YNN_FLAG)
    assert not startup.jaxlib_knows("--xla_jaxcifar_no_such_flag")
    # JAX's default: YNNPACK, in a jaxlib that has it (0.10); the oldest we test (0.7) has neither it nor the flag
    assert run_python(CONV_HLO, None).strip() == str(knows)
    same = "import os; e = dict(os.environ); import jaxcifar.train, jaxcifar.lr_range; print(dict(os.environ) == e)"
    assert run_python(same, None).strip() == "True"  # importing the package sets nothing
    assert run_python("from jaxcifar import startup; startup.set_cpu_flags(); " + CONV_HLO, None).strip() == "False"
    shown = "import os; from jaxcifar import startup; startup.set_cpu_flags(); print(os.environ['XLA_FLAGS'])"
    flags = run_python(shown, "--xla_force_host_platform_device_count=2").split()
    if not knows:  # no flag its XLA would abort on
        assert flags == ["--xla_force_host_platform_device_count=2"]
        env = {"JAX_PLATFORMS": "cpu"}
        assert not startup.set_cpu_flags(env) and env == {"JAX_PLATFORMS": "cpu"}
        return
    assert flags == ["--xla_force_host_platform_device_count=2", "--xla_cpu_experimental_ynn_fusion_type="]
    own = "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
    assert run_python(shown, own).split() == [own]  # a user's own choice stays
    env = {"JAXCIFAR_YNNPACK": "1"}
    assert not startup.set_cpu_flags(env) and env == {"JAXCIFAR_YNNPACK": "1"}  # JAX's default kept
    env = {"JAX_PLATFORMS": "cuda"}
    assert not startup.set_cpu_flags(env) and env == {"JAX_PLATFORMS": "cuda"}  # not on a GPU
    env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_dump_to=/tmp/x"}
    assert startup.set_cpu_flags(env) and env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x " + startup.YNN_FLAG + "="


def imported_by(argv: list[str]) -> tuple[str, set[str]]:
    """(stdout, the top-level modules it imported) of `python -X importtime ARGV`."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, check=True)
    names = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    return done.stdout, names


def test_help_answers_before_jax_loads():
    for module in ("jaxcifar.train", "jaxcifar.lr_range"):
        out, names = imported_by(["-m", module, "--help"])
        assert out.startswith(f"usage: python -m {module}") and "--lr-range-rule" in out, module
        assert {"jaxcifar", "numpy"} <= names and not names & {"jax", "jaxlib", "flax", "optax", "orbax", "matplotlib"}


def test_the_commands_start_again_once_with_huge_pages_on_linux(monkeypatch):
    import os
    import subprocess
    import sys

    from jaxcifar import startup

    calls = []
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("JAXCIFAR_HUGE_PAGES", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    startup.exec_with_huge_pages("jaxcifar.train", ["--quick"], execve=lambda *a: calls.append(a))
    ((path, argv, env),) = calls
    assert path == sys.executable and argv == [sys.executable, "-m", "jaxcifar.train", "--quick"]
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1" and env["PATH"] == os.environ["PATH"]
    calls.clear()
    for name, value in (("GLIBC_TUNABLES", "glibc.malloc.arena_max=2"), ("JAXCIFAR_HUGE_PAGES", "0")):
        with monkeypatch.context() as m:  # the user's own tunables, or the switch off: no restart
            m.setenv(name, value)
            startup.exec_with_huge_pages("jaxcifar.train", [], execve=lambda *a: calls.append(a))
    monkeypatch.setattr(sys, "platform", "darwin")
    startup.exec_with_huge_pages("jaxcifar.train", [], execve=lambda *a: calls.append(a))
    assert calls == []
    monkeypatch.undo()
    if sys.platform == "linux":  # the real restart: the module runs in the same process, with the variable
        code = "from jaxcifar.startup import exec_with_huge_pages as e; e('jaxcifar.show', ['model', '--width', '4'])"
        env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "JAXCIFAR_HUGE_PAGES")}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert "Total params: 26,340" in done.stdout


def test_the_wheel_holds_the_product_alone(tmp_path):
    # pip builds it as a user's install would (setuptools from the index, in isolation).
    import subprocess
    import sys
    import zipfile

    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("jaxcifar-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    modules = {n.removeprefix("jaxcifar/") for n in names if n.startswith("jaxcifar/")}
    assert modules == {p.name for p in PACKAGE.glob("*.py")}  # every product module, nothing else
    assert {n.split("/")[0] for n in names} == {"jaxcifar", wheel.name.rsplit("-", 3)[0] + ".dist-info"}


def test_one_version_the_projects():
    import re

    import jaxcifar

    (declared,) = re.findall(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert jaxcifar.__version__ == declared  # read from the installed metadata, not written twice


def test_ctrl_c_while_a_command_imports_is_one_line_and_130():
    import os
    import signal
    import subprocess
    import sys

    from jaxcifar import errors

    code = (
        "import os, signal, time; from jaxcifar import startup; "
        "startup.prepare('jaxcifar.train', [], None); os.kill(os.getpid(), signal.SIGINT); time.sleep(30)"
    )
    env = {**os.environ, "JAXCIFAR_HUGE_PAGES": "0"}  # no restart: this very process gets the signal
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 130 and done.stderr == "interrupted (Ctrl-C) while starting; nothing was written\n"
    # a command's entry point gives Ctrl-C back to Python (KeyboardInterrupt, answered by the command)
    previous = signal.signal(signal.SIGINT, errors.interrupted_while_starting)
    try:
        errors.end_startup()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def pins_of(name: str) -> tuple[list, dict[str, str]]:
    """pyproject's requirements (with the dev extra) and a constraints file's pins, by normalised name."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in (*project["dependencies"], *project["optional-dependencies"]["dev"])]
    lines = [line.split("#")[0].strip() for line in (REPO / name).read_text().splitlines()]
    pins = dict(line.split("==", 1) for line in lines if line)
    return wanted, {k.lower().replace("_", "-"): v for k, v in pins.items()}


def test_constraints_pin_every_dependency_within_pyprojects_ranges():
    wanted, pins = pins_of("constraints.txt")
    for requirement in wanted:
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{requirement.name}=={pins[name]} is outside {requirement}"


def test_the_lowest_constraints_pin_each_dependency_at_pyprojects_lowest_version():
    # .ci/run runs the suite again on these: each lowest version pyproject.toml allows is one tested
    from packaging.version import Version

    wanted, pins = pins_of("constraints-lowest.txt")
    for requirement in wanted:
        name = requirement.name.lower().replace("_", "-")
        (spec,) = requirement.specifier  # one lower bound each
        assert name in pins and spec.operator == ">=", f"{requirement} is not pinned at its lowest version"
        assert Version(pins[name]) == Version(spec.version), f"{requirement}: pinned {pins[name]}"
    assert "constraints-lowest.txt" in (REPO / ".ci" / "run").read_text()
